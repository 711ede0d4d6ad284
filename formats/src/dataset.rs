//! Workloads and the seeded data they send.
//!
//! Every run, every format and every machine sees identical data: the
//! generator is a SplitMix64 stream defined here (not a library RNG whose
//! algorithm may change between versions), seeded with [`DEFAULT_SEED`]
//! unless `--seed` says otherwise. Golden test vectors depend on this, so
//! changing the generator is a breaking change of the results.

use std::fmt;
use std::str::FromStr;

use crate::checksum::Checksum;
use crate::contract::{Attribute, Batch, DigestReply, Kind, Location, Method, OwnedRequest, Record, Reply};

/// The documented default seed ("wirebench" in a phone keypad's digits).
pub const DEFAULT_SEED: u64 = 947_324_362;

/// The operands of every Multiply call: large enough to need 64 bits and
/// several varint bytes, small enough not to overflow.
pub const MULTIPLY_OPERANDS: (i64, i64) = (1_234_567_891, -987_654);

/// One kind of call at one size: the rows of the comparison matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Multiply two i64.
    Multiply,
    /// Echo a payload of this many bytes.
    Echo {
        /// Payload bytes.
        size: usize,
    },
    /// Digest a batch of this many records.
    Digest {
        /// Records in the batch.
        records: usize,
    },
}

impl Workload {
    /// The echo sizes of the default matrix.
    pub const DEFAULT_ECHO_SIZES: [usize; 4] = [16, 1024, 64 * 1024, 1024 * 1024];
    /// The batch sizes of the default matrix.
    pub const DEFAULT_DIGEST_RECORDS: [usize; 3] = [1, 100, 1000];

    /// The default matrix's workloads, in order.
    pub fn defaults() -> Vec<Workload> {
        let mut all = vec![Workload::Multiply];
        all.extend(Self::DEFAULT_ECHO_SIZES.map(|size| Workload::Echo { size }));
        all.extend(Self::DEFAULT_DIGEST_RECORDS.map(|records| Workload::Digest { records }));
        all
    }

    /// The method this workload calls.
    pub fn method(self) -> Method {
        match self {
            Workload::Multiply => Method::Multiply,
            Workload::Echo { .. } => Method::Echo,
            Workload::Digest { .. } => Method::Digest,
        }
    }

    /// The workload's kind without its size: `multiply`, `echo`, `digest`.
    pub fn kind(self) -> &'static str {
        match self {
            Workload::Multiply => "multiply",
            Workload::Echo { .. } => "echo",
            Workload::Digest { .. } => "digest",
        }
    }

    /// The size parameter: payload bytes for echo, records for digest.
    pub fn size(self) -> Option<usize> {
        match self {
            Workload::Multiply => None,
            Workload::Echo { size } => Some(size),
            Workload::Digest { records } => Some(records),
        }
    }
}

/// `multiply`, `echo-1KiB`, `digest-100`: the id used in cell keys, CLI
/// flags and reports.
impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Workload::Multiply => f.write_str("multiply"),
            Workload::Echo { size } => write!(f, "echo-{}", format_size(size)),
            Workload::Digest { records } => write!(f, "digest-{records}"),
        }
    }
}

/// An error parsing a workload or a size.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid workload {input:?}: {reason}")]
pub struct ParseWorkloadError {
    input: String,
    reason: &'static str,
}

impl FromStr for Workload {
    type Err = ParseWorkloadError;

    fn from_str(s: &str) -> Result<Workload, ParseWorkloadError> {
        let err = |reason| ParseWorkloadError { input: s.to_owned(), reason };
        let (kind, size) = match s.split_once('-') {
            Some((kind, size)) => (kind, Some(size)),
            None => (s, None),
        };
        match (kind, size) {
            ("multiply", None) => Ok(Workload::Multiply),
            ("echo", Some(size)) => {
                let size = parse_size(size).ok_or_else(|| err("echo size must look like 16B, 1KiB or 1MiB"))?;
                Ok(Workload::Echo { size })
            }
            ("digest", Some(records)) => {
                let records = records.parse().map_err(|_| err("digest takes a record count, e.g. digest-100"))?;
                Ok(Workload::Digest { records })
            }
            ("echo" | "digest", None) => Err(err("needs a size, e.g. echo-1KiB or digest-100")),
            _ => Err(err("expected multiply, echo-<size> or digest-<records>")),
        }
    }
}

/// Formats a byte count the way workload ids and reports show it: `16B`,
/// `1KiB`, `64KiB`, `1MiB`; counts that are not whole KiB/MiB stay in bytes.
pub fn format_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{}KiB", bytes / KIB)
    } else {
        format!("{bytes}B")
    }
}

/// Parses `16`, `16B`, `1KiB`, `64KiB`, `1MiB` (also `k`/`KB`/`m`/`MB` as
/// binary units).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: usize = number.parse().ok()?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// The data of one workload, generated once before anything is timed, and
/// the reply the server must give for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Which workload.
    pub workload: Workload,
    /// The echo payload (empty for other workloads).
    pub payload: Vec<u8>,
    /// The digest batch (empty for other workloads).
    pub batch: Batch,
    /// The correct reply.
    pub expected: Expected,
}

/// The correct reply of a workload, to check every reply against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The product of [`MULTIPLY_OPERANDS`].
    Product(i64),
    /// The echoed payload equals the request's.
    SamePayload,
    /// The digest of the batch.
    Digest(DigestReply),
}

impl Dataset {
    /// Generates the data of `workload` from `seed`.
    pub fn generate(workload: Workload, seed: u64) -> Dataset {
        let mut rng = SplitMix64::new(seed);
        let (payload, batch, expected) = match workload {
            Workload::Multiply => {
                let (a, b) = MULTIPLY_OPERANDS;
                (Vec::new(), Batch::default(), Expected::Product(a * b))
            }
            Workload::Echo { size } => (rng.bytes(size), Batch::default(), Expected::SamePayload),
            Workload::Digest { records } => {
                let batch = generate_batch(&mut rng, records);
                let expected = Expected::Digest(Checksum::of_batch(&batch));
                (Vec::new(), batch, expected)
            }
        };
        Dataset { workload, payload, batch, expected }
    }
}

/// A reply that decoded but says the wrong thing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("wrong reply: {0}")]
pub struct WrongReply(pub String);

impl Dataset {
    /// The request as model values (cloned; call outside timed loops).
    pub fn request(&self) -> OwnedRequest<Batch> {
        match self.workload {
            Workload::Multiply => OwnedRequest::Multiply { a: MULTIPLY_OPERANDS.0, b: MULTIPLY_OPERANDS.1 },
            Workload::Echo { .. } => OwnedRequest::Echo { payload: self.payload.clone() },
            Workload::Digest { .. } => OwnedRequest::Digest { batch: self.batch.clone() },
        }
    }

    /// The correct reply as a value (for encoding it, e.g. to size it).
    pub fn reply(&self) -> Reply<'_> {
        match self.expected {
            Expected::Product(product) => Reply::Multiply { product },
            Expected::SamePayload => Reply::Echo { payload: (&self.payload[..]).into() },
            Expected::Digest(d) => Reply::Digest(d),
        }
    }

    /// Checks a decoded reply: the product, every echoed byte, the digest.
    pub fn verify(&self, reply: &Reply<'_>) -> Result<(), WrongReply> {
        match (self.expected, reply) {
            (Expected::Product(want), Reply::Multiply { product }) if *product == want => Ok(()),
            (Expected::Product(want), Reply::Multiply { product }) => {
                Err(WrongReply(format!("product {product}, expected {want}")))
            }
            (Expected::SamePayload, Reply::Echo { payload }) if payload.as_ref() == self.payload.as_slice() => Ok(()),
            (Expected::SamePayload, Reply::Echo { payload }) => {
                let at = payload.iter().zip(&self.payload).position(|(a, b)| a != b);
                Err(WrongReply(match at {
                    Some(i) => format!("echoed payload differs at byte {i} of {}", self.payload.len()),
                    None => format!("echoed {} bytes, sent {}", payload.len(), self.payload.len()),
                }))
            }
            (Expected::Digest(want), Reply::Digest(got)) if *got == want => Ok(()),
            (Expected::Digest(want), Reply::Digest(got)) => Err(WrongReply(format!(
                "digest of {} records {:#018x}, expected {} records {:#018x}",
                got.records, got.checksum, want.records, want.checksum
            ))),
            (_, other) => Err(WrongReply(format!("a {} reply to a {} call", other.method(), self.workload.method()))),
        }
    }
}

/// Generates `records` rows from `seed` (what `--records N --seed S` gives).
pub fn batch(records: usize, seed: u64) -> Batch {
    generate_batch(&mut SplitMix64::new(seed), records)
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever here.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting at `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// One element of `items` (non-empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    fn alphanumeric(&mut self, min: u64, max: u64) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let len = min + self.below(max - min + 1);
        (0..len).map(|_| char::from(*self.pick(CHARS))).collect()
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger", "Radia", "Tim", "Sophie",
    "Guido", "Hedy", "Bjarne", "Anita", "Niklaus", "Shafi", "Yukihiro", "Zoë", "José", "Łukasz",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Wilson",
    "van Rossum",
    "Lamarr",
    "Stroustrup",
    "Borg",
    "Wirth",
    "Goldwasser",
    "Matsumoto",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "example.net", "mail.example.io"];
const TAGS: &[&str] = &[
    "mobile",
    "desktop",
    "beta",
    "returning",
    "new",
    "promo",
    "eu",
    "us",
    "apac",
    "vip",
    "trial",
    "referral",
    "newsletter",
    "dark-mode",
    "a/b:variant-7",
];
const ATTRIBUTE_KEYS: &[&str] = &["utm_source", "utm_campaign", "plan", "locale", "device", "region", "experiment"];
const CITIES: &[(&str, f64, f64)] = &[
    ("Lisbon", 38.72, -9.14),
    ("München", 48.14, 11.58),
    ("São Paulo", -23.55, -46.63),
    ("東京", 35.68, 139.69),
    ("Nairobi", -1.29, 36.82),
    ("Reykjavík", 64.15, -21.94),
    ("Montréal", 45.50, -73.57),
    ("Zürich", 47.37, 8.54),
];

/// 2026-01-01T00:00:00Z in microseconds.
const EPOCH_2026_MICROS: i64 = 1_767_225_600_000_000;

fn generate_batch(rng: &mut SplitMix64, records: usize) -> Batch {
    let first_id = rng.below(1 << 40);
    let records = (0..records)
        .map(|i| {
            let first = *rng.pick(FIRST_NAMES);
            let last = *rng.pick(LAST_NAMES);
            let email = format!(
                "{}.{}{}@{}",
                first.to_lowercase(),
                last.to_lowercase().replace(' ', ""),
                rng.below(1000),
                rng.pick(DOMAINS)
            );
            let tags = (0..rng.below(6)).map(|_| (*rng.pick(TAGS)).to_owned()).collect();
            let attributes = (0..rng.below(5))
                .map(|_| Attribute { key: (*rng.pick(ATTRIBUTE_KEYS)).to_owned(), value: rng.alphanumeric(4, 20) })
                .collect();
            let location = (rng.below(10) < 7).then(|| {
                let (city, lat, lon) = *rng.pick(CITIES);
                Location {
                    latitude: lat + (rng.unit() - 0.5) * 0.2,
                    longitude: lon + (rng.unit() - 0.5) * 0.2,
                    city: city.to_owned(),
                }
            });
            Record {
                id: first_id + i as u64,
                user_id: rng.below(1_000_000) as u32,
                timestamp_micros: EPOCH_2026_MICROS + rng.below(365 * 86_400 * 1_000_000) as i64,
                name: format!("{first} {last}"),
                email,
                kind: *rng.pick(&Kind::ALL),
                score: (rng.unit() * 100_000.0).round() / 100.0,
                weight: rng.unit() as f32,
                active: rng.below(4) != 0,
                tags,
                attributes,
                location,
                fingerprint: rng.bytes(16),
            }
        })
        .collect();
    Batch { records }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_values() {
        // First outputs of SplitMix64 seeded with 0, from the reference C code.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn generation_is_deterministic_and_seed_dependent() {
        let a = Dataset::generate(Workload::Digest { records: 50 }, DEFAULT_SEED);
        let b = Dataset::generate(Workload::Digest { records: 50 }, DEFAULT_SEED);
        let c = Dataset::generate(Workload::Digest { records: 50 }, DEFAULT_SEED + 1);
        assert_eq!(a, b);
        assert_ne!(a.batch, c.batch);
        assert_ne!(a.expected, c.expected);
    }

    #[test]
    fn batches_are_varied() {
        let batch = batch(200, DEFAULT_SEED);
        let with_location = batch.records.iter().filter(|r| r.location.is_some()).count();
        assert!((100..190).contains(&with_location), "{with_location}");
        assert!(batch.records.iter().any(|r| r.tags.is_empty()));
        assert!(batch.records.iter().any(|r| r.tags.len() >= 3));
        assert!(batch.records.iter().any(|r| !r.attributes.is_empty()));
        for kind in Kind::ALL {
            assert!(batch.records.iter().any(|r| r.kind == kind), "{kind:?} never generated");
        }
        assert!(batch.records.iter().any(|r| !r.name.is_ascii()));
        assert!(batch.records.iter().all(|r| r.fingerprint.len() == 16));
    }

    #[test]
    fn workload_ids_round_trip() {
        for w in Workload::defaults() {
            assert_eq!(w.to_string().parse::<Workload>(), Ok(w));
        }
        assert_eq!("echo-1KiB".parse(), Ok(Workload::Echo { size: 1024 }));
        assert_eq!("echo-100".parse(), Ok(Workload::Echo { size: 100 }));
        assert!("echo".parse::<Workload>().is_err());
        assert!("digest-x".parse::<Workload>().is_err());
        assert!("nope".parse::<Workload>().is_err());
        assert_eq!(Workload::Echo { size: 1000 }.to_string(), "echo-1000B");
    }

    #[test]
    fn verify_catches_every_kind_of_wrong_reply() {
        use std::borrow::Cow;
        let m = Dataset::generate(Workload::Multiply, DEFAULT_SEED);
        assert!(m.verify(&m.reply()).is_ok());
        assert!(m.verify(&Reply::Multiply { product: 1 }).is_err());
        let e = Dataset::generate(Workload::Echo { size: 64 }, DEFAULT_SEED);
        assert!(e.verify(&e.reply()).is_ok());
        let mut flipped = e.payload.clone();
        flipped[63] ^= 1;
        let err = e.verify(&Reply::Echo { payload: Cow::Owned(flipped) }).unwrap_err();
        assert!(err.0.contains("byte 63"), "{err}");
        assert!(e.verify(&Reply::Echo { payload: Cow::Borrowed(&e.payload[..10]) }).is_err());
        let d = Dataset::generate(Workload::Digest { records: 5 }, DEFAULT_SEED);
        assert!(d.verify(&d.reply()).is_ok());
        assert!(d.verify(&Reply::Digest(DigestReply { records: 5, checksum: 0 })).is_err());
        assert!(d.verify(&m.reply()).is_err(), "a reply of another method");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("16"), Some(16));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("1GiB"), None);
        assert_eq!(parse_size(""), None);
    }
}
