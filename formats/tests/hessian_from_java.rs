//! Hessian written by Caucho's Java Hessian 4.0.38 decodes here to what Java
//! wrote: shared objects (references), typed lists, Java's string and
//! binary chunks, surrogate pairs, every compact number form.
//!
//! The messages come from `scripts/reference/HessianCrosscheck.java`, which
//! `scripts/crosscheck-wire.sh` compiles and runs before it runs this test
//! with `WIREBENCH_HESSIAN_FROM_JAVA` set to the directory Java wrote them
//! to (`<name>.<request|reply>.hex`, and `expected.json` with the values).
//! Without the variable the test says it was skipped: a fresh machine may
//! have no Java; CI has.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use serde_json::Value;
use wirebench_formats::contract::{Attribute, Kind, Location};
use wirebench_formats::format::hessian::Hessian;
use wirebench_formats::{
    Batch, Checksum, DigestReply, Format, FormatId, Method, OwnedRequest, Record, Reply, ServerScratch, Service,
};

fn from_hex(text: &str) -> Vec<u8> {
    let digits: String = text.lines().filter(|l| !l.starts_with('#')).collect::<String>().split_whitespace().collect();
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}

fn record(v: &Value) -> Record {
    let strings = |v: &Value| v.as_array().unwrap().iter().map(text).collect::<Vec<_>>();
    Record {
        id: int(&v["id"]) as u64,
        user_id: int(&v["userId"]) as i32 as u32,
        timestamp_micros: int(&v["timestampMicros"]),
        name: text(&v["name"]),
        email: text(&v["email"]),
        kind: Kind::from_value(int(&v["kind"]) as u32).unwrap(),
        score: f64::from_bits(int(&v["scoreBits"]) as u64),
        weight: f32::from_bits(int(&v["weightBits"]) as u32),
        active: v["active"].as_bool().unwrap(),
        tags: strings(&v["tags"]),
        attributes: v["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| Attribute { key: text(&a[0]), value: text(&a[1]) })
            .collect(),
        location: (!v["location"].is_null()).then(|| Location {
            latitude: f64::from_bits(int(&v["location"]["latitudeBits"]) as u64),
            longitude: f64::from_bits(int(&v["location"]["longitudeBits"]) as u64),
            city: text(&v["location"]["city"]),
        }),
        fingerprint: from_hex(&text(&v["fingerprint"])),
    }
}

#[test]
fn messages_written_by_java_decode_to_what_java_wrote() {
    let Some(dir) = std::env::var_os("WIREBENCH_HESSIAN_FROM_JAVA").map(PathBuf::from) else {
        eprintln!(
            "skipped: set WIREBENCH_HESSIAN_FROM_JAVA to the directory scripts/reference/HessianCrosscheck.java \
             writes (scripts/crosscheck-wire.sh does)"
        );
        return;
    };
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert!(expected.len() >= 6, "expected.json lists {} messages", expected.len());
    let service = Service::new();
    for entry in &expected {
        let file = text(&entry["file"]);
        let bytes = from_hex(&std::fs::read_to_string(dir.join(&file)).unwrap());
        let value = &entry["value"];
        let method = Method::from_name(&text(&entry["method"])).unwrap();
        match text(&entry["what"]).as_str() {
            "request" => {
                let want = match method {
                    Method::Multiply => OwnedRequest::Multiply { a: int(&value["a"]), b: int(&value["b"]) },
                    Method::Echo => OwnedRequest::Echo { payload: from_hex(&text(&value["payload"])) },
                    Method::Digest => OwnedRequest::Digest {
                        batch: Batch { records: value["records"].as_array().unwrap().iter().map(record).collect() },
                    },
                };
                let got = Hessian::decode_request(method, &bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(got, want, "{file}");
                // Java's batch has references and typed lists, and its
                // binary chunks follow its 8 KiB buffer: forms our encoder
                // never writes, so the bytes differ from ours.
                if method != Method::Multiply {
                    let ours = Hessian::encode_request(&mut Vec::new(), &got).unwrap().to_vec();
                    assert_ne!(ours, bytes, "{file}: Java wrote what we write; the test proves nothing new");
                }
                // The server reads every field of it.
                let mut scratch = ServerScratch::default();
                let served = wirebench_formats::serve(&service, &mut scratch, FormatId::Hessian, method, &bytes);
                match (&want, served) {
                    (OwnedRequest::Digest { batch }, Ok(reply)) => {
                        let Reply::Digest(d) = Hessian::decode_reply(method, reply).unwrap() else { unreachable!() };
                        assert_eq!(d, Checksum::of_batch(batch), "{file}");
                        assert_eq!(d.records as usize, batch.records.len());
                    }
                    (OwnedRequest::Multiply { .. }, Err(status)) => {
                        assert_eq!(status.code, wirebench_formats::Code::OutOfRange, "{file}: {status}");
                    }
                    (_, served) => {
                        served.unwrap_or_else(|e| panic!("{file}: {e}"));
                    }
                }
                println!("ok   {file}: {} bytes from Java decode to Java's values", bytes.len());
            }
            _ => {
                let want = match method {
                    Method::Multiply => Reply::Multiply { product: int(&value["product"]) },
                    Method::Echo => Reply::Echo { payload: from_hex(&text(&value["payload"])).into() },
                    Method::Digest => Reply::Digest(DigestReply {
                        records: int(&value["records"]) as i32 as u32,
                        checksum: int(&value["checksum"]) as u64,
                    }),
                };
                let got = Hessian::decode_reply(method, &bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(got, want, "{file}");
                println!("ok   {file}: {} bytes from Java decode to Java's values", bytes.len());
            }
        }
    }
}
