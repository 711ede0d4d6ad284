//! Golden bytes: the encoding of every format for every workload, pinned
//! as hex files in `tests/golden/<format>/`. A change in these bytes is a
//! change of the wire format and must be deliberate: rerun with
//! `WIREBENCH_BLESS=1` to rewrite them, and review the diff.
//!
//! That the pinned bytes are each format's *standard* encoding is checked
//! by `scripts/crosscheck-wire.sh`, which feeds them to the reference
//! implementations (protoc, capnp, flatc, Python's json and msgpack).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use wirebench_formats::dataset::{DEFAULT_SEED, Dataset, Expected, MULTIPLY_OPERANDS};
use wirebench_formats::{Batch, Format, FormatId, FormatVisitor, OwnedRequest, Reply, Workload};

/// The golden workloads: small enough to read as hex.
fn workloads() -> [Workload; 3] {
    [Workload::Multiply, Workload::Echo { size: 16 }, Workload::Digest { records: 2 }]
}

fn path(format: &str, workload: Workload, what: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format).join(format!("{workload}.{what}.hex"))
}

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for line in bytes.chunks(32) {
        for b in line {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('\n');
    }
    out
}

fn from_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
}

fn check(format: &str, workload: Workload, what: &str, bytes: &[u8]) {
    let path = path(format, workload, what);
    let text = format!("# {format} {workload} {what}, {} bytes\n{}", bytes.len(), to_hex(bytes));
    if std::env::var_os("WIREBENCH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with WIREBENCH_BLESS=1 to create it", path.display()));
    assert!(
        from_hex(&golden) == bytes,
        "{format} {workload} {what}: the encoding changed from {}.\nnow:\n{}",
        path.display(),
        to_hex(bytes)
    );
}

struct Golden(Workload);

impl FormatVisitor for Golden {
    type Output = ();
    fn visit<F: Format>(self) {
        let data = Dataset::generate(self.0, DEFAULT_SEED);
        let method = self.0.method();
        let model = match self.0 {
            Workload::Multiply => OwnedRequest::Multiply { a: MULTIPLY_OPERANDS.0, b: MULTIPLY_OPERANDS.1 },
            Workload::Echo { .. } => OwnedRequest::Echo { payload: data.payload.clone() },
            Workload::Digest { .. } => OwnedRequest::<Batch>::Digest { batch: data.batch.clone() },
        };
        let reply = match data.expected {
            Expected::Product(product) => Reply::Multiply { product },
            Expected::SamePayload => Reply::Echo { payload: data.payload.clone().into() },
            Expected::Digest(d) => Reply::Digest(d),
        };
        let mut scratch = F::Scratch::default();
        let request = F::encode_request(&mut scratch, &F::prepare(&model)).unwrap().to_vec();
        check(F::NAME, self.0, "request", &request);
        let encoded_reply = F::encode_reply(&mut scratch, &reply).unwrap().to_vec();
        check(F::NAME, self.0, "reply", &encoded_reply);

        // The golden files decode to the contract's values.
        if std::env::var_os("WIREBENCH_BLESS").is_none() {
            let golden = from_hex(&std::fs::read_to_string(path(F::NAME, self.0, "request")).unwrap());
            assert_eq!(F::to_model(F::decode_request(method, &golden).unwrap()), model);
            let golden = from_hex(&std::fs::read_to_string(path(F::NAME, self.0, "reply")).unwrap());
            assert_eq!(F::decode_reply(method, &golden).unwrap(), reply);
        }
    }
}

#[test]
fn encodings_match_the_golden_bytes() {
    for workload in workloads() {
        for format in FormatId::ALL {
            format.visit(Golden(workload));
        }
    }
}

/// JSON is text: its golden request must read as the contract says.
#[test]
fn json_multiply_is_readable() {
    let text = std::fs::read_to_string(path("json", Workload::Multiply, "request")).unwrap();
    let bytes = from_hex(&text);
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), r#"{"a":1234567891,"b":-987654}"#);
}
