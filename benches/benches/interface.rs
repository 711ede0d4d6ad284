//! Does the codec interface cost anything the library does not? Encoding
//! and decoding through `Format` against direct calls of serde_json,
//! postcard, prost and thrift (TCompactProtocol over its generated
//! structs), on Multiply and a 1,000-record Digest batch, and of
//! apache-avro (its schema-aware serde path) on Multiply. Prints the ratio
//! interface/direct; the target is at most 1.05.
//!
//! Each pair is timed in alternating rounds (see `interleaved`) and the
//! medians compared, so drift of the machine hits both sides alike.
//! `cargo bench --bench interface` (`-- --test` runs one short round;
//! `-- thrift avro` runs only the rows whose names contain those words).
//!
//! A Multiply row times a few nanoseconds of inlined code, so its ratio
//! also depends on where rustc placed and inlined each side in this build:
//! an edit elsewhere in this file has moved postcard's Multiply decode
//! from 1.01 to 1.5. `-- --instructions` counts instead: the bench runs
//! itself under valgrind's callgrind, counts only the calls of each side
//! (client requests around them), and prints instructions per call and
//! their ratio, the same for every run of one build. It needs valgrind
//! (Debian: `apt-get install valgrind`).

#![allow(clippy::unwrap_used, missing_docs)] // benches fail loudly by design

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::ResolvedSchema;
use apache_avro::writer::datum::GenericDatumWriter;
use prost::Message;
use serde::{Deserialize, Serialize};
use thrift::TConfiguration;
use thrift::protocol::{TCompactInputProtocol, TCompactOutputProtocol, TSerializable};
use wirebench::{instructions, valgrind};
use wirebench_benches::{batch_for, interleaved, test_mode};
use wirebench_formats::dataset::{DEFAULT_SEED, MULTIPLY_OPERANDS};
use wirebench_formats::format::avro::{Avro, check_lengths};
use wirebench_formats::format::json::Json;
use wirebench_formats::format::postcard::Postcard;
use wirebench_formats::format::thrift::{ThriftCompact, ThriftRequest, th};
use wirebench_formats::protobuf::{PbRequest, Protobuf, pb};
use wirebench_formats::{Batch, Dataset, Format, Method, OwnedRequest, Workload};

/// What a serde_json or postcard user would write for Multiply.
#[derive(Serialize, Deserialize)]
struct MultiplyRequest {
    a: i64,
    b: i64,
}

struct Row {
    name: String,
    direct: f64,
    interface: f64,
}

/// Thrift's decoding limits for a message of `len` bytes: no string or
/// container longer than the message.
fn bounded(len: usize) -> TConfiguration {
    TConfiguration::builder()
        .max_message_size(Some(len))
        .max_frame_size(Some(len))
        .max_string_size(Some(len))
        .max_container_size(Some(len))
        .build()
        .unwrap()
}

/// The rows asked for: every row whose name contains one of the words
/// given after `--` (`cargo bench --bench interface -- thrift avro`), or
/// every row when none is given.
fn wanted(name: &str) -> bool {
    let words = filter_words();
    words.is_empty() || words.iter().any(|w| name.contains(w.as_str()))
}

/// The words given after `--` that are not options.
fn filter_words() -> Vec<String> {
    std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect()
}

/// Exits 2 when the filter words matched no row, naming them, rather
/// than printing an empty table.
fn exit_if_no_row(rows: usize) {
    if rows == 0 {
        eprintln!(
            "interface: no row's name contains any of {:?} (rows are named like \"postcard multiply decode\")",
            filter_words()
        );
        std::process::exit(2);
    }
}

/// Calls of each side counted per row under callgrind: enough that the
/// loop's own few instructions are shared alike, few enough for the
/// 1,000-record rows to stay short under valgrind.
const COUNTED_CALLS: u32 = 16;

/// Under callgrind (the child of `--instructions`): counts `COUNTED_CALLS`
/// calls of `f`, after one uncounted warm-up call, into one profile
/// labelled `label`.
fn count(label: &str, f: &mut dyn FnMut()) {
    f();
    valgrind::zero_stats();
    valgrind::toggle_collect();
    for _ in 0..COUNTED_CALLS {
        f();
    }
    valgrind::toggle_collect();
    valgrind::dump_stats_at(label);
}

fn compare(rows: &mut Vec<Row>, name: &str, direct: impl FnMut(), interface: impl FnMut()) {
    if !wanted(name) {
        return;
    }
    let mut direct = direct;
    let mut interface = interface;
    if valgrind::running_on_valgrind() {
        count(&format!("{name} direct"), &mut direct);
        count(&format!("{name} interface"), &mut interface);
        return;
    }
    let (rounds, target) = if test_mode() { (2, Duration::from_millis(2)) } else { (41, Duration::from_millis(20)) };
    let batch = batch_for(target, &mut direct);
    let (d, i) = interleaved(rounds, batch, &mut direct, &mut interface);
    rows.push(Row { name: name.to_owned(), direct: d, interface: i });
}

fn main() {
    if std::env::args().any(|a| a == "--instructions") && !valgrind::running_on_valgrind() {
        if let Err(e) = instructions() {
            eprintln!("interface --instructions: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let mut rows = Vec::new();
    let (a, b) = MULTIPLY_OPERANDS;
    let digest = Dataset::generate(Workload::Digest { records: 1000 }, DEFAULT_SEED);
    let batch: &Batch = &digest.batch;

    // serde_json, Multiply.
    let owned = OwnedRequest::<Batch>::Multiply { a, b };
    let (mut direct_buf, mut scratch) = (Vec::new(), Vec::new());
    compare(
        &mut rows,
        "json multiply encode",
        || {
            direct_buf.clear();
            serde_json::to_writer(&mut direct_buf, black_box(&MultiplyRequest { a, b })).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(Json::encode_request(&mut scratch, black_box(&owned)).unwrap());
        },
    );
    let bytes = serde_json::to_vec(&MultiplyRequest { a, b }).unwrap();
    compare(
        &mut rows,
        "json multiply decode",
        || {
            black_box(serde_json::from_slice::<MultiplyRequest>(black_box(&bytes)).unwrap());
        },
        || {
            black_box(Json::decode_request(Method::Multiply, black_box(&bytes)).unwrap());
        },
    );

    // serde_json, Digest of 1,000 records.
    let owned = OwnedRequest::Digest { batch: batch.clone() };
    compare(
        &mut rows,
        "json digest-1000 encode",
        || {
            direct_buf.clear();
            serde_json::to_writer(&mut direct_buf, black_box(batch)).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(Json::encode_request(&mut scratch, black_box(&owned)).unwrap());
        },
    );
    let bytes = serde_json::to_vec(batch).unwrap();
    compare(
        &mut rows,
        "json digest-1000 decode",
        || {
            black_box(serde_json::from_slice::<Batch>(black_box(&bytes)).unwrap());
        },
        || {
            black_box(Json::decode_request(Method::Digest, black_box(&bytes)).unwrap());
        },
    );

    // postcard, Multiply. A postcard user reusing a buffer hands it to
    // `to_extend` and gets it back.
    let owned = OwnedRequest::<Batch>::Multiply { a, b };
    compare(
        &mut rows,
        "postcard multiply encode",
        || {
            direct_buf.clear();
            direct_buf =
                postcard::to_extend(black_box(&MultiplyRequest { a, b }), std::mem::take(&mut direct_buf)).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(Postcard::encode_request(&mut scratch, black_box(&owned)).unwrap());
        },
    );
    let bytes = postcard::to_allocvec(&MultiplyRequest { a, b }).unwrap();
    compare(
        &mut rows,
        "postcard multiply decode",
        || {
            let (request, rest) = postcard::take_from_bytes::<MultiplyRequest>(black_box(&bytes)).unwrap();
            assert!(rest.is_empty());
            black_box(request);
        },
        || {
            black_box(Postcard::decode_request(Method::Multiply, black_box(&bytes)).unwrap());
        },
    );

    // postcard, Digest of 1,000 records.
    let owned = OwnedRequest::Digest { batch: batch.clone() };
    compare(
        &mut rows,
        "postcard digest-1000 encode",
        || {
            direct_buf.clear();
            direct_buf = postcard::to_extend(black_box(batch), std::mem::take(&mut direct_buf)).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(Postcard::encode_request(&mut scratch, black_box(&owned)).unwrap());
        },
    );
    // `from_bytes` ignores bytes after the message; a user who must refuse
    // them, as every decoder here does, calls `take_from_bytes` and checks
    // the rest (as `Format` does), so that is the direct call compared.
    let bytes = postcard::to_allocvec(batch).unwrap();
    compare(
        &mut rows,
        "postcard digest-1000 decode",
        || {
            let (batch, rest) = postcard::take_from_bytes::<Batch>(black_box(&bytes)).unwrap();
            assert!(rest.is_empty());
            black_box(batch);
        },
        || {
            black_box(Postcard::decode_request(Method::Digest, black_box(&bytes)).unwrap());
        },
    );

    // prost, Multiply.
    let message = pb::MultiplyRequest { a, b };
    let native = PbRequest::Multiply(message);
    compare(
        &mut rows,
        "protobuf multiply encode",
        || {
            direct_buf.clear();
            black_box(&message).encode(&mut direct_buf).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(Protobuf::encode_request(&mut scratch, black_box(&native)).unwrap());
        },
    );
    let bytes = message.encode_to_vec();
    compare(
        &mut rows,
        "protobuf multiply decode",
        || {
            black_box(pb::MultiplyRequest::decode(black_box(&bytes[..])).unwrap());
        },
        || {
            black_box(Protobuf::decode_request(Method::Multiply, black_box(&bytes)).unwrap());
        },
    );

    // prost, Digest of 1,000 records.
    let message = wirebench_formats::protobuf::to_pb(batch);
    let native = PbRequest::Digest(message.clone());
    compare(
        &mut rows,
        "protobuf digest-1000 encode",
        || {
            direct_buf.clear();
            black_box(&message).encode(&mut direct_buf).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(Protobuf::encode_request(&mut scratch, black_box(&native)).unwrap());
        },
    );
    let bytes = message.encode_to_vec();
    compare(
        &mut rows,
        "protobuf digest-1000 decode",
        || {
            black_box(pb::Batch::decode(black_box(&bytes[..])).unwrap());
        },
        || {
            black_box(Protobuf::decode_request(Method::Digest, black_box(&bytes)).unwrap());
        },
    );

    // thrift, TCompactProtocol, Multiply: what a thrift user writes to turn
    // a generated struct into bytes and back. A user who must bound what a
    // hostile message can make the decoder allocate, as every decoder here
    // does, reads with a configuration whose limits are the message's
    // length and refuses trailing bytes, so that is the direct call
    // compared (`TCompactInputProtocol::new` alone allows 100 MB strings).
    let message = th::MultiplyRequest { a, b };
    let native = ThriftRequest::Multiply(message.clone());
    compare(
        &mut rows,
        "thrift-compact multiply encode",
        || {
            direct_buf.clear();
            black_box(&message).write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut direct_buf)).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(ThriftCompact::encode_request(&mut scratch, black_box(&native)).unwrap());
        },
    );
    let bytes = ThriftCompact::encode_request(&mut Vec::new(), &native).unwrap().to_vec();
    compare(
        &mut rows,
        "thrift-compact multiply decode",
        || {
            let mut input = black_box(&bytes[..]);
            let config = bounded(input.len());
            let request =
                th::MultiplyRequest::read_from_in_protocol(&mut TCompactInputProtocol::with_config(&mut input, config));
            assert!(input.is_empty());
            black_box(request.unwrap());
        },
        || {
            black_box(ThriftCompact::decode_request(Method::Multiply, black_box(&bytes)).unwrap());
        },
    );

    // thrift, TCompactProtocol, Digest of 1,000 records.
    let message = wirebench_formats::format::thrift::to_thrift(batch);
    let native = ThriftRequest::Digest(message.clone());
    compare(
        &mut rows,
        "thrift-compact digest-1000 encode",
        || {
            direct_buf.clear();
            black_box(&message).write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut direct_buf)).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(ThriftCompact::encode_request(&mut scratch, black_box(&native)).unwrap());
        },
    );
    let bytes = ThriftCompact::encode_request(&mut Vec::new(), &native).unwrap().to_vec();
    compare(
        &mut rows,
        "thrift-compact digest-1000 decode",
        || {
            let mut input = black_box(&bytes[..]);
            let config = bounded(input.len());
            let batch = th::Batch::read_from_in_protocol(&mut TCompactInputProtocol::with_config(&mut input, config));
            assert!(input.is_empty());
            black_box(batch.unwrap());
        },
        || {
            black_box(ThriftCompact::decode_request(Method::Digest, black_box(&bytes)).unwrap());
        },
    );

    // avro (apache-avro), Multiply: what an apache-avro user writes with the
    // crate's schema-aware serde path, a reader and writer built once from
    // the MultiplyRequest record of `bench.avsc`. The crate allocates a
    // claimed length before reading it and offers only a process-wide cap,
    // so a user who must bound a hostile message per message walks it
    // against the schema first, as our decoder does: the direct call uses
    // the same public `check_lengths`.
    let parsed = Schema::parse_str(wirebench_formats::format::avro::SCHEMA).unwrap();
    let Schema::Union(union) = &parsed else { panic!("bench.avsc is a union of records") };
    let record =
        union.variants().iter().find(|s| matches!(s, Schema::Record(r) if r.name.name() == "MultiplyRequest")).unwrap();
    let resolved = || ResolvedSchema::try_from(record).unwrap();
    let names = resolved();
    let writer = GenericDatumWriter::builder(record).resolved_schemata(resolved()).build().unwrap();
    let reader = GenericDatumReader::builder(record).resolved_writer_schemata(resolved()).build().unwrap();
    let owned = OwnedRequest::<Batch>::Multiply { a, b };
    compare(
        &mut rows,
        "avro multiply encode",
        || {
            direct_buf.clear();
            writer.write_ser(&mut direct_buf, black_box(&MultiplyRequest { a, b })).unwrap();
            black_box(direct_buf.as_slice());
        },
        || {
            black_box(Avro::encode_request(&mut scratch, black_box(&owned)).unwrap());
        },
    );
    let bytes = Avro::encode_request(&mut Vec::new(), &owned).unwrap().to_vec();
    compare(
        &mut rows,
        "avro multiply decode",
        || {
            let input = black_box(&bytes[..]);
            let mut rest = input;
            check_lengths(record, names.get_names(), &mut rest, 0).unwrap();
            assert!(rest.is_empty());
            let mut rest = input;
            black_box(reader.read_deser::<MultiplyRequest>(&mut rest).unwrap());
        },
        || {
            black_box(Avro::decode_request(Method::Multiply, black_box(&bytes)).unwrap());
        },
    );

    if valgrind::running_on_valgrind() {
        return; // the counts are in the profiles; the parent prints them
    }
    exit_if_no_row(rows.len());
    println!("{:<34} {:>14} {:>14} {:>8}", "interface overhead", "direct ns", "interface ns", "ratio");
    let mut worst: f64 = 0.0;
    for row in &rows {
        let ratio = row.interface / row.direct;
        worst = worst.max(ratio);
        println!("{:<34} {:>14.1} {:>14.1} {:>8.3}", row.name, row.direct, row.interface, ratio);
    }
    println!("worst ratio {worst:.3} (target: at most 1.05)");
}

/// `--instructions`: runs this bench under callgrind with counting off
/// but for each side's calls (see `count`), then prints instructions per
/// call from the profiles, which callgrind numbers in the order they were
/// written and labels with `count`'s label.
fn instructions() -> anyhow::Result<()> {
    let version = instructions::valgrind_version(Path::new("valgrind"))?;
    let dir = tempfile::tempdir().context("cannot create a directory for callgrind's profiles")?;
    let out = dir.path().join("interface.out");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = Command::new("valgrind")
        .args(["--tool=callgrind", "--collect-atstart=no", "--quiet"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(std::env::current_exe().context("cannot find this bench's binary")?)
        .args(&args)
        .status()
        .context("cannot run valgrind")?;
    if !status.success() {
        bail!("the bench under callgrind failed: {status}");
    }
    let mut counts: Vec<(String, f64)> = Vec::new();
    for i in 1.. {
        let path = PathBuf::from(format!("{}.{i}", out.display()));
        let Ok(profile) = std::fs::read_to_string(&path) else { break };
        let label = profile
            .lines()
            .find_map(|l| l.strip_prefix("desc: Trigger: Client Request: "))
            .with_context(|| format!("{} has no client request label", path.display()))?;
        let total = instructions::total(&profile).with_context(|| format!("no total in {}", path.display()))?;
        counts.push((label.to_owned(), total as f64 / f64::from(COUNTED_CALLS)));
    }
    exit_if_no_row(counts.len());
    if !counts.len().is_multiple_of(2) {
        bail!("callgrind wrote {} profiles, not a direct and an interface one per row", counts.len());
    }
    println!("{version}, callgrind: instructions per call, {COUNTED_CALLS} calls a side");
    println!("{:<34} {:>14} {:>14} {:>8}", "interface overhead", "direct", "interface", "ratio");
    let mut worst: f64 = 0.0;
    for pair in counts.chunks(2) {
        let (Some(name), Some(other)) = (pair[0].0.strip_suffix(" direct"), pair[1].0.strip_suffix(" interface"))
        else {
            bail!("profiles out of order: {:?} then {:?}", pair[0].0, pair[1].0);
        };
        if name != other {
            bail!("profiles out of order: {name:?} then {other:?}");
        }
        let ratio = pair[1].1 / pair[0].1;
        worst = worst.max(ratio);
        println!("{name:<34} {:>14.1} {:>14.1} {ratio:>8.3}", pair[0].1, pair[1].1);
    }
    println!("worst instruction ratio {worst:.3} (target: at most 1.05)");
    Ok(())
}
