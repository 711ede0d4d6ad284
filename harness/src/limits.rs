//! The range of every numeric, size and duration option, in one place.
//!
//! Clap calls these parsers, so an out-of-range value fails before any
//! server starts or any memory is reserved, with one line naming the
//! option, the value and the range. The matrix file (`--config`) goes
//! through the same functions, so a value means the same wherever it is
//! written. Ranges are generous for real use and small enough that no
//! value inside them can exhaust the machine or overflow a clock.

use std::ffi::OsStr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use wirebench_formats::Workload;
use wirebench_formats::dataset::{format_size, parse_size};

/// An inclusive range of whole numbers, with the unit it counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// Smallest accepted.
    pub min: u64,
    /// Largest accepted.
    pub max: u64,
}

/// Calls in flight per cell (each value of `--concurrency`).
pub const CONCURRENCY: Count = Count { min: 1, max: 4096 };
/// Connections per cell.
pub const CONNECTIONS: Count = Count { min: 1, max: 1024 };
/// Sub-window samples per cell and pass.
pub const SAMPLES: Count = Count { min: 1, max: 1000 };
/// Interleaved passes over the matrix.
pub const PASSES: Count = Count { min: 1, max: 100 };
/// Records of a Digest batch.
pub const RECORDS: Count = Count { min: 1, max: 100_000 };
/// Server runtime worker threads.
pub const WORKER_THREADS: Count = Count { min: 1, max: 256 };
/// The data seed: any 64-bit value.
pub const SEED: Count = Count { min: 0, max: u64::MAX };

/// An inclusive range of byte counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes {
    /// Smallest accepted.
    pub min: usize,
    /// Largest accepted.
    pub max: usize,
}

/// Echo payload sizes.
pub const ECHO_SIZE: Bytes = Bytes { min: 1, max: 64 << 20 };
/// The largest message a server accepts (and a client expects).
pub const MAX_MESSAGE: Bytes = Bytes { min: 1 << 10, max: 1 << 30 };
/// The udp datagram limit, header included: room for the 12-byte header
/// and a 16-byte raw ping at the bottom, the largest UDP payload of IPv4 at
/// the top.
pub const MAX_DATAGRAM: Bytes = Bytes { min: 64, max: 65_507 };

/// The most memory a cell's messages may need on the client side: calls in
/// flight times (request + reply) of the largest format in the matrix.
pub const CLIENT_MESSAGE_MEMORY: usize = 8 << 30;

/// An inclusive range of durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Shortest accepted.
    pub min: Duration,
    /// Longest accepted.
    pub max: Duration,
}

/// The measured window of a cell (per pass).
pub const DURATION: Span = Span { min: Duration::from_millis(1), max: Duration::from_secs(3600) };
/// The discarded warm-up of a cell.
pub const WARMUP: Span = Span { min: Duration::ZERO, max: Duration::from_secs(600) };
/// The deadline of one call.
pub const TIMEOUT: Span = Span { min: Duration::from_millis(1), max: Duration::from_secs(600) };
/// Test-only server pauses and crash delays.
pub const TEST_DELAY: Span = Span { min: Duration::ZERO, max: Duration::from_secs(3600) };

/// Open-loop target rates, calls per second.
pub const RATE: (f64, f64) = (0.0, 10_000_000.0);

impl Count {
    /// Parses `s` as a whole number in this range.
    pub fn parse(self, s: &str) -> Result<u64, String> {
        let s = s.trim();
        s.parse::<u64>()
            .ok()
            .filter(|n| (self.min..=self.max).contains(n))
            .ok_or_else(|| format!("expected a whole number from {} to {}", self.min, self.max))
    }

    /// Checks an already parsed value.
    pub fn check(self, n: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("expected a whole number from {} to {}, not {n}", self.min, self.max))
        }
    }
}

impl Bytes {
    /// Parses `16`, `16B`, `1KiB`, `1MiB` in this range.
    pub fn parse(self, s: &str) -> Result<usize, String> {
        parse_size(s).filter(|n| (self.min..=self.max).contains(n)).ok_or_else(|| self.expected())
    }

    /// Checks an already parsed value.
    pub fn check(self, n: usize) -> Result<usize, String> {
        if (self.min..=self.max).contains(&n) { Ok(n) } else { Err(format!("{}, not {}", self.expected(), n)) }
    }

    fn expected(self) -> String {
        format!("expected a size from {} to {}, like 16B, 1KiB or 1MiB", format_size(self.min), format_size(self.max))
    }
}

impl Span {
    /// Parses `250ms`, `2s`, `1.5s`, `100us`, `1m`, `1h` in this range.
    pub fn parse(self, s: &str) -> Result<Duration, String> {
        parse_duration(s).ok().filter(|d| (self.min..=self.max).contains(d)).ok_or_else(|| {
            format!(
                "expected a duration from {} to {}, like 250ms or 2s",
                human_duration(self.min),
                human_duration(self.max)
            )
        })
    }
}

/// Parses a duration with a unit (`h`, `m`, `s`, `ms`, `us`, `ns`; a bare
/// number is seconds). Refuses what `Duration` cannot hold.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("bad duration {s:?}: expected e.g. 250ms or 2s"))?;
    let seconds = match unit {
        "s" | "" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "ns" => number / 1e9,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("bad duration unit {other:?} in {s:?}: use h, m, s, ms, us or ns")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("bad duration {s:?}"))
}

/// `1h`, `10min`, `2s`, `250ms`, `1ms`, `0s`: the shortest exact form.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if d.is_zero() {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses an open-loop rate in calls per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let (min, max) = RATE;
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > min && *r <= max)
        .ok_or_else(|| format!("expected calls per second above {min} and at most {max}"))
}

/// Parses a workload id, with its size or record count in range.
pub fn parse_workload(s: &str) -> Result<Workload, String> {
    let workload: Workload = s.trim().parse().map_err(|e| format!("{e}"))?;
    match workload {
        Workload::Echo { size } => {
            ECHO_SIZE.check(size).map_err(|e| format!("echo payload: {e}"))?;
        }
        Workload::Digest { records } => {
            RECORDS.check(records as u64).map_err(|e| format!("digest records: {e}"))?;
        }
        Workload::Multiply => {}
    }
    Ok(workload)
}

/// A clap parser over one of the functions above, so its messages name the
/// option: `invalid value '0' for '--samples <N>': expected a whole number
/// from 1 to 1000`.
#[derive(Clone)]
pub struct Parser<T> {
    parse: std::sync::Arc<ParseFn<T>>,
}

type ParseFn<T> = dyn Fn(&str) -> Result<T, String> + Send + Sync;

impl<T> Parser<T> {
    /// Wraps `parse`.
    pub fn new(parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static) -> Parser<T> {
        Parser { parse: std::sync::Arc::new(parse) }
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Parser<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        (self.parse)(&text).map_err(|reason| {
            let name = arg.map_or_else(|| "the value".to_owned(), |a| format!("'{a}'"));
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for {name}: {reason}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// A whole number in `range`.
pub fn count(range: Count) -> Parser<u64> {
    Parser::new(move |s| range.parse(s))
}

/// A whole number in `range`, as a `usize`.
pub fn count_usize(range: Count) -> Parser<usize> {
    Parser::new(move |s| range.parse(s).map(|n| n as usize))
}

/// A byte count in `range`.
pub fn bytes(range: Bytes) -> Parser<usize> {
    Parser::new(move |s| range.parse(s))
}

/// A duration in `range`.
pub fn span(range: Span) -> Parser<Duration> {
    Parser::new(move |s| range.parse(s))
}

impl<T> std::fmt::Debug for Parser<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parser")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_refuse_what_is_out_of_range_or_not_a_number() {
        assert_eq!(SAMPLES.parse("10"), Ok(10));
        for bad in ["0", "1001", "-1", "ten", "NaN", "1e3", "", "99999999999999999999999"] {
            let e = SAMPLES.parse(bad).unwrap_err();
            assert_eq!(e, "expected a whole number from 1 to 1000", "{bad:?}");
        }
        assert_eq!(SEED.parse("0"), Ok(0));
    }

    #[test]
    fn durations_parse_within_their_range() {
        assert_eq!(DURATION.parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(DURATION.parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(WARMUP.parse("0"), Ok(Duration::ZERO));
        for bad in ["0", "2h", "99999999999999999999s", "5000000000000000h", "-1s", "NaN", "fast", "1parsec"] {
            let e = DURATION.parse(bad).unwrap_err();
            assert!(e.contains("from 1ms to 1h"), "{bad}: {e}");
        }
        assert!(TIMEOUT.parse("0s").is_err());
        assert_eq!(human_duration(Duration::from_secs(600)), "10min");
    }

    #[test]
    fn sizes_and_workloads_name_their_limits() {
        assert_eq!(ECHO_SIZE.parse("1KiB"), Ok(1024));
        let e = ECHO_SIZE.parse("10GiB").unwrap_err();
        assert!(e.contains("from 1B to 64MiB"), "{e}");
        assert!(ECHO_SIZE.parse("0").is_err());
        assert!(parse_workload("echo-65MiB").unwrap_err().contains("64MiB"));
        assert!(parse_workload("digest-0").unwrap_err().contains("from 1 to 100000"));
        assert_eq!(parse_workload("digest-100"), Ok(Workload::Digest { records: 100 }));
        assert!(MAX_DATAGRAM.parse("70000").is_err() && MAX_DATAGRAM.parse("0").is_err());
    }

    #[test]
    fn rates_must_be_positive_and_finite() {
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        for bad in ["0", "-5", "NaN", "inf", "1e30", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
