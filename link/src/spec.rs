//! What a link is: the `--link` grammar, its bounds, its canonical form and
//! the named profiles.
//!
//! `rtt=40ms,loss=0.5%,rate=100mbit,queue=64KiB,jitter=1ms`, every key
//! optional, or a profile name optionally followed by keys that override
//! it (`wan,loss=1%`). Values are kept as integers (nanoseconds, parts per
//! million, bit/s, bytes), so two specs that mean the same link compare
//! equal and print the same canonical string.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The largest round-trip time accepted.
pub const MAX_RTT: Duration = Duration::from_secs(10);
/// The largest jitter accepted (per direction).
pub const MAX_JITTER: Duration = Duration::from_secs(1);
/// The slowest rate accepted, bit/s.
pub const MIN_RATE_BPS: u64 = 1_000;
/// The fastest rate accepted, bit/s (far beyond what the emulator forwards;
/// the bound only keeps the arithmetic honest).
pub const MAX_RATE_BPS: u64 = 100_000_000_000;
/// The smallest queue accepted: one full-size packet at the link's MTU.
pub const MIN_QUEUE_BYTES: u64 = 1_500;
/// The largest queue accepted.
pub const MAX_QUEUE_BYTES: u64 = 1 << 30;
/// The smallest queue a rate gets when the spec names none; otherwise the
/// default is one bandwidth-delay product (the classic buffer-sizing rule).
pub const MIN_DEFAULT_QUEUE_BYTES: u64 = 64 * 1024;

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const PPM_PER_PERCENT: u64 = 10_000;

/// The named profiles: name, canonical spec, what it stands for. The same
/// table is in the crate doc, `docs/link.md` and the README (a test checks
/// the first two).
pub const PROFILES: [(&str, &str, &str); 4] = [
    ("lan", "rtt=0.5ms,rate=1gbit,queue=256KiB", "gigabit Ethernet through a switch or two, no loss"),
    ("wan", "rtt=40ms,rate=100mbit,queue=512KiB", "a continental Internet path, one bandwidth-delay product of buffer"),
    ("lossy", "rtt=40ms,loss=1%,rate=100mbit,queue=512KiB", "`wan` with 1% random loss in each direction"),
    (
        "mobile",
        "rtt=60ms,loss=0.2%,rate=20mbit,queue=256KiB,jitter=5ms",
        "an LTE-like path: deep buffer, jitter, residual loss",
    ),
];

/// A link's settings. Every direction of the link gets the same figures:
/// half the round-trip time as propagation delay, `loss` as the probability
/// that a packet in that direction is lost, `rate` and `queue` as its
/// bottleneck, `jitter` as extra delay drawn per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct LinkSpec {
    rtt_ns: u64,
    loss_ppm: u32,
    rate_bps: Option<u64>,
    /// Set exactly when `rate_bps` is.
    queue_bytes: Option<u64>,
    jitter_ns: u64,
}

impl LinkSpec {
    /// A link with no delay, no loss and no rate limit: only the emulator
    /// itself (what [`crate::validate`] measures its own latency on).
    pub const ZERO: LinkSpec = LinkSpec { rtt_ns: 0, loss_ppm: 0, rate_bps: None, queue_bytes: None, jitter_ns: 0 };

    /// The round-trip propagation delay; each direction gets half.
    pub fn rtt(&self) -> Duration {
        Duration::from_nanos(self.rtt_ns)
    }

    /// The propagation delay of one direction (`rtt / 2`, to the nanosecond).
    pub fn one_way(&self) -> Duration {
        Duration::from_nanos(self.rtt_ns / 2)
    }

    /// Loss probability of one direction, in parts per million.
    pub fn loss_ppm(&self) -> u32 {
        self.loss_ppm
    }

    /// Loss probability of one direction, 0 to 1.
    pub fn loss(&self) -> f64 {
        f64::from(self.loss_ppm) / 1e6
    }

    /// The bottleneck rate of each direction in bit/s; `None` is unlimited.
    pub fn rate_bps(&self) -> Option<u64> {
        self.rate_bps
    }

    /// The drop-tail queue of each direction in bytes (`Some` exactly when
    /// there is a rate).
    pub fn queue_bytes(&self) -> Option<u64> {
        self.queue_bytes
    }

    /// The largest extra delay a packet gets in one direction.
    pub fn jitter(&self) -> Duration {
        Duration::from_nanos(self.jitter_ns)
    }

    /// The profile these figures are, if they are exactly one.
    pub fn profile(&self) -> Option<&'static str> {
        PROFILES
            .iter()
            .find(|(_, spec, _)| spec.parse::<LinkSpec>().is_ok_and(|p| p == *self))
            .map(|(name, _, _)| *name)
    }

    /// The profile named `name`.
    pub fn named(name: &str) -> Option<LinkSpec> {
        let (_, spec, _) = PROFILES.iter().find(|(n, _, _)| *n == name)?;
        // The table is parsed by a unit test, so this cannot fail; if it
        // ever did, `None` reads as "no such profile" rather than a panic.
        spec.parse().ok()
    }

    /// The default queue for `rate_bps` at `rtt_ns`: one bandwidth-delay
    /// product rounded up to a KiB, at least [`MIN_DEFAULT_QUEUE_BYTES`].
    fn default_queue(rate_bps: u64, rtt_ns: u64) -> u64 {
        let bdp = (u128::from(rate_bps) * u128::from(rtt_ns)).div_ceil(8 * 1_000_000_000);
        let kib = u64::try_from(bdp.div_ceil(1024)).unwrap_or(u64::MAX / 1024);
        (kib * 1024).clamp(MIN_DEFAULT_QUEUE_BYTES, MAX_QUEUE_BYTES)
    }
}

/// Why a `--link` value was refused. Every message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Nothing was given.
    #[error("empty link spec: give keys (rtt, loss, rate, queue, jitter) or a profile (lan, wan, lossy, mobile)")]
    Empty,
    /// An item is neither `key=value` nor a profile name in first place.
    #[error("`{item}` is not key=value, and not a profile (lan, wan, lossy, mobile) in first place")]
    NotAnItem {
        /// The offending item.
        item: String,
    },
    /// A key this grammar does not know.
    #[error("unknown link key `{key}`: the keys are rtt, loss, rate, queue and jitter")]
    UnknownKey {
        /// The key as given.
        key: String,
    },
    /// A key given twice.
    #[error("link key `{key}` is given twice")]
    Duplicate {
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse: missing or unknown unit, not a number,
    /// too precise.
    #[error("{key} `{value}`: {reason}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong, and what is expected.
        reason: String,
    },
    /// A value outside its range.
    #[error("{key} must be between {min} and {max}, not {value}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The smallest accepted value, with its unit.
        min: String,
        /// The largest accepted value, with its unit.
        max: String,
        /// The value as given.
        value: String,
    },
    /// A queue without a rate: nothing would ever wait in it.
    #[error("queue `{queue}` needs a rate: without a bottleneck nothing ever waits in the queue")]
    QueueWithoutRate {
        /// The queue as given.
        queue: String,
    },
}

impl FromStr for LinkSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<LinkSpec, SpecError> {
        let items: Vec<&str> = s.split(',').map(str::trim).collect();
        if items.iter().all(|i| i.is_empty()) {
            return Err(SpecError::Empty);
        }
        let mut spec = LinkSpec::ZERO;
        let mut seen: Vec<&'static str> = Vec::new();
        let mut queue: Option<(u64, String)> = None;
        let mut rate_from_profile = false;
        for (index, item) in items.iter().enumerate() {
            let Some((key, value)) = item.split_once('=') else {
                let profile = if index == 0 { PROFILES.iter().find(|(n, _, _)| n == item) } else { None };
                let Some((_, text, _)) = profile else {
                    return Err(SpecError::NotAnItem { item: (*item).to_owned() });
                };
                // Profiles are written in this grammar without a profile in
                // them, so this recursion is one level deep.
                spec = text.parse()?;
                rate_from_profile = spec.rate_bps.is_some();
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let key: &'static str = match key {
                "rtt" => "rtt",
                "loss" => "loss",
                "rate" => "rate",
                "queue" => "queue",
                "jitter" => "jitter",
                _ => return Err(SpecError::UnknownKey { key: key.to_owned() }),
            };
            if seen.contains(&key) {
                return Err(SpecError::Duplicate { key });
            }
            seen.push(key);
            match key {
                "rtt" => spec.rtt_ns = parse_duration(key, value, MAX_RTT)?,
                "jitter" => spec.jitter_ns = parse_duration(key, value, MAX_JITTER)?,
                "loss" => spec.loss_ppm = parse_loss(value)?,
                "rate" => {
                    spec.rate_bps = Some(parse_rate(value)?);
                    rate_from_profile = false;
                }
                _ => queue = Some((parse_queue(value)?, value.to_owned())),
            }
        }
        match (spec.rate_bps, queue) {
            (None, Some((_, text))) => return Err(SpecError::QueueWithoutRate { queue: text }),
            (Some(_), Some((bytes, _))) => spec.queue_bytes = Some(bytes),
            // A profile's own queue stays unless its rate was overridden.
            (Some(_), None) if rate_from_profile => {}
            (Some(rate), None) => spec.queue_bytes = Some(LinkSpec::default_queue(rate, spec.rtt_ns)),
            (None, None) => spec.queue_bytes = None,
        }
        Ok(spec)
    }
}

/// The canonical form: `rtt` always, then `loss`, `rate` with `queue`, and
/// `jitter` when they are not off. It parses back to the same spec, and
/// contains no `/`, so it can sit in a cell key or a file name.
impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtt={}", fmt_ms(self.rtt_ns))?;
        if self.loss_ppm > 0 {
            write!(f, ",loss={}%", fmt_decimal(u64::from(self.loss_ppm), PPM_PER_PERCENT))?;
        }
        if let Some(rate) = self.rate_bps {
            write!(f, ",rate={}", fmt_rate(rate))?;
        }
        if let Some(queue) = self.queue_bytes {
            write!(f, ",queue={}", fmt_bytes(queue))?;
        }
        if self.jitter_ns > 0 {
            write!(f, ",jitter={}", fmt_ms(self.jitter_ns))?;
        }
        Ok(())
    }
}

/// Splits `40ms` into (`40`, `ms`) at the first character that cannot be
/// part of a decimal number.
fn split_unit(value: &str) -> (&str, &str) {
    let at = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    (&value[..at], value[at..].trim())
}

/// `number × factor` as an integer, exactly, or why not. `number` is a
/// plain decimal (`12`, `0.5`, `.25`); `base` names the integer unit in the
/// message when the product is fractional.
fn scaled(key: &'static str, value: &str, number: &str, factor: u64, base: &str) -> Result<u64, SpecError> {
    let bad = |reason: String| SpecError::BadValue { key, value: value.to_owned(), reason };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') || int.len() + frac.len() > 24 {
        return Err(bad("expected a decimal number followed by a unit".to_owned()));
    }
    let digits: u128 = format!("{int}{frac}").parse().map_err(|_| bad("expected a decimal number".to_owned()))?;
    let denominator = 10u128.pow(frac.len() as u32);
    let product = digits * u128::from(factor);
    if !product.is_multiple_of(denominator) {
        return Err(bad(format!("must be a whole number of {base}")));
    }
    // Saturating: every caller checks a range far below u64::MAX.
    Ok(u64::try_from(product / denominator).unwrap_or(u64::MAX))
}

fn parse_duration(key: &'static str, value: &str, max: Duration) -> Result<u64, SpecError> {
    let (number, unit) = split_unit(value);
    let factor = match unit {
        "us" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => 1_000_000_000,
        "" => {
            return Err(SpecError::BadValue {
                key,
                value: value.to_owned(),
                reason: "needs a unit: us, ms or s".to_owned(),
            });
        }
        _ => {
            return Err(SpecError::BadValue {
                key,
                value: value.to_owned(),
                reason: format!("unknown unit `{unit}`: use us, ms or s"),
            });
        }
    };
    // Parse in microseconds so a sub-microsecond value is refused by name.
    let us = scaled(key, value, number, factor / NS_PER_US, "microseconds")?;
    let max_ns = max.as_nanos() as u64;
    let ns = us.saturating_mul(NS_PER_US);
    if ns > max_ns {
        return Err(SpecError::OutOfRange { key, min: "0ms".into(), max: fmt_ms(max_ns), value: value.to_owned() });
    }
    Ok(ns)
}

fn parse_loss(value: &str) -> Result<u32, SpecError> {
    let (number, unit) = split_unit(value);
    if unit != "%" {
        return Err(SpecError::BadValue {
            key: "loss",
            value: value.to_owned(),
            reason: "must be a percentage, e.g. 0.5%".to_owned(),
        });
    }
    let ppm = scaled("loss", value, number, PPM_PER_PERCENT, "0.0001%")?;
    if ppm > 100 * PPM_PER_PERCENT {
        return Err(SpecError::OutOfRange {
            key: "loss",
            min: "0%".into(),
            max: "100%".into(),
            value: value.to_owned(),
        });
    }
    // At most 1_000_000 after the check above.
    Ok(ppm as u32)
}

fn parse_rate(value: &str) -> Result<u64, SpecError> {
    let (number, unit) = split_unit(value);
    let factor = match unit.to_ascii_lowercase().as_str() {
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        _ => {
            return Err(SpecError::BadValue {
                key: "rate",
                value: value.to_owned(),
                reason: "needs a unit: kbit, mbit or gbit (bits per second)".to_owned(),
            });
        }
    };
    let bps = scaled("rate", value, number, factor, "bit/s")?;
    if !(MIN_RATE_BPS..=MAX_RATE_BPS).contains(&bps) {
        return Err(SpecError::OutOfRange {
            key: "rate",
            min: fmt_rate(MIN_RATE_BPS),
            max: fmt_rate(MAX_RATE_BPS),
            value: value.to_owned(),
        });
    }
    Ok(bps)
}

fn parse_queue(value: &str) -> Result<u64, SpecError> {
    let (number, unit) = split_unit(value);
    let factor = match unit {
        "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => {
            return Err(SpecError::BadValue {
                key: "queue",
                value: value.to_owned(),
                reason: "needs a unit: B, KiB or MiB".to_owned(),
            });
        }
    };
    let bytes = scaled("queue", value, number, factor, "bytes")?;
    if !(MIN_QUEUE_BYTES..=MAX_QUEUE_BYTES).contains(&bytes) {
        return Err(SpecError::OutOfRange {
            key: "queue",
            min: fmt_bytes(MIN_QUEUE_BYTES),
            max: fmt_bytes(MAX_QUEUE_BYTES),
            value: value.to_owned(),
        });
    }
    Ok(bytes)
}

/// `value / unit` in decimal with trailing zeros trimmed.
fn fmt_decimal(value: u64, unit: u64) -> String {
    let (int, frac) = (value / unit, value % unit);
    if frac == 0 {
        return int.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

fn fmt_ms(ns: u64) -> String {
    format!("{}ms", fmt_decimal(ns, NS_PER_MS))
}

fn fmt_rate(bps: u64) -> String {
    // The largest unit the value reaches and that shows it exactly in at
    // most three decimals; kbit always does (rates are whole bit/s).
    for (unit, factor) in [("gbit", 1_000_000_000), ("mbit", 1_000_000)] {
        if bps >= factor && bps.is_multiple_of(factor / 1_000) {
            return format!("{}{unit}", fmt_decimal(bps, factor));
        }
    }
    format!("{}kbit", fmt_decimal(bps, 1_000))
}

fn fmt_bytes(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{}MiB", bytes / (1024 * 1024))
    } else if bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> LinkSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> String {
        s.parse::<LinkSpec>().expect_err(s).to_string()
    }

    #[test]
    fn the_issue_example_parses_to_exact_integers() {
        let spec = parse("rtt=40ms,loss=0.5%,rate=100mbit,queue=64KiB,jitter=1ms");
        assert_eq!(spec.rtt(), Duration::from_millis(40));
        assert_eq!(spec.one_way(), Duration::from_millis(20));
        assert_eq!(spec.loss_ppm(), 5_000);
        assert_eq!(spec.rate_bps(), Some(100_000_000));
        assert_eq!(spec.queue_bytes(), Some(65_536));
        assert_eq!(spec.jitter(), Duration::from_millis(1));
        assert_eq!(spec.to_string(), "rtt=40ms,loss=0.5%,rate=100mbit,queue=64KiB,jitter=1ms");
    }

    #[test]
    fn every_key_is_optional_and_the_canonical_form_omits_what_is_off() {
        assert_eq!(parse("rtt=10ms").to_string(), "rtt=10ms");
        assert_eq!(parse("loss=1%").to_string(), "rtt=0ms,loss=1%");
        assert_eq!(parse("jitter=250us").to_string(), "rtt=0ms,jitter=0.25ms");
        assert_eq!(parse("rtt=0ms"), LinkSpec::ZERO);
        assert_eq!(parse(" rtt = 1.5ms , loss=0.0001% ").to_string(), "rtt=1.5ms,loss=0.0001%");
        assert_eq!(parse("rtt=1s").to_string(), "rtt=1000ms");
        assert_eq!(parse("rtt=7us").to_string(), "rtt=0.007ms");
    }

    #[test]
    fn a_rate_without_a_queue_gets_one_bandwidth_delay_product() {
        // 100 Mbit/s × 40 ms = 500000 bytes, rounded up to 489 KiB.
        assert_eq!(parse("rtt=40ms,rate=100mbit").queue_bytes(), Some(489 * 1024));
        // Small products get the floor.
        assert_eq!(parse("rate=10mbit").queue_bytes(), Some(MIN_DEFAULT_QUEUE_BYTES));
        assert_eq!(parse("rtt=10s,rate=100gbit").queue_bytes(), Some(MAX_QUEUE_BYTES));
        // The canonical form shows the queue it resolved to, so the same link
        // always prints the same.
        let spec = parse("rtt=40ms,rate=100mbit");
        assert_eq!(spec.to_string(), "rtt=40ms,rate=100mbit,queue=489KiB");
        assert_eq!(parse(&spec.to_string()), spec);
    }

    #[test]
    fn units_of_rate_and_queue() {
        assert_eq!(parse("rate=1kbit").rate_bps(), Some(1_000));
        assert_eq!(parse("rate=1.5Mbit").rate_bps(), Some(1_500_000));
        assert_eq!(parse("rate=2gbit").rate_bps(), Some(2_000_000_000));
        assert_eq!(parse("rate=1.5mbit").to_string(), "rtt=0ms,rate=1.5mbit,queue=64KiB");
        assert_eq!(parse("rate=1500kbit").to_string(), "rtt=0ms,rate=1.5mbit,queue=64KiB");
        assert_eq!(parse("rate=1.2345mbit").to_string(), "rtt=0ms,rate=1234.5kbit,queue=64KiB");
        assert_eq!(parse("rate=1mbit,queue=1500B").queue_bytes(), Some(1_500));
        assert_eq!(parse("rate=1mbit,queue=1.5KiB").to_string(), "rtt=0ms,rate=1mbit,queue=1536B");
        assert_eq!(parse("rate=1mbit,queue=2MiB").to_string(), "rtt=0ms,rate=1mbit,queue=2MiB");
        assert_eq!(parse("rate=1mbit,queue=1024MiB").to_string(), "rtt=0ms,rate=1mbit,queue=1024MiB");
    }

    #[test]
    fn canonical_form_round_trips_and_has_no_slash() {
        for s in [
            "rtt=40ms,loss=0.5%,rate=100mbit,queue=64KiB,jitter=1ms",
            "rtt=0.001ms",
            "rate=999999kbit,queue=1234567B",
            "loss=100%",
            "rtt=10s,jitter=1s,loss=33.3333%",
        ] {
            let spec = parse(s);
            let text = spec.to_string();
            assert!(!text.contains('/'), "{text}");
            assert_eq!(parse(&text), spec, "{s} -> {text}");
            assert_eq!(parse(&text).to_string(), text);
        }
    }

    #[test]
    fn profiles_parse_name_themselves_and_take_overrides() {
        for (name, text, _) in PROFILES {
            let spec = parse(name);
            assert_eq!(spec.to_string(), text, "the profile table is written in canonical form");
            assert_eq!(spec.profile(), Some(name));
            assert_eq!(LinkSpec::named(name), Some(spec));
        }
        let wan = parse("wan");
        let lossy = parse("wan,loss=1%");
        assert_eq!(lossy, parse("lossy"));
        assert_eq!(lossy.profile(), Some("lossy"));
        assert_eq!(parse("wan,rtt=20ms").queue_bytes(), wan.queue_bytes(), "the profile's queue stays");
        // A new rate without a queue gets its own default queue.
        assert_eq!(parse("wan,rate=10mbit").queue_bytes(), Some(64 * 1024));
        assert_eq!(parse("rtt=3ms").profile(), None);
        assert_eq!(LinkSpec::named("moon"), None);
    }

    #[test]
    fn profiles_match_the_docs() {
        let doc = include_str!("../../docs/link.md");
        let crate_doc = include_str!("lib.rs");
        for (name, text, what) in PROFILES {
            let row = format!("| `{name}` | `{text}` | {what} |");
            assert!(doc.contains(&row), "docs/link.md lacks {row}");
            assert!(crate_doc.contains(&format!("//! {row}")), "lib.rs lacks {row}");
        }
    }

    #[test]
    fn errors_name_the_key_and_the_range() {
        assert_eq!(error("loss=150%"), "loss must be between 0% and 100%, not 150%");
        assert_eq!(error("rtt=11s"), "rtt must be between 0ms and 10000ms, not 11s");
        assert_eq!(error("jitter=2s"), "jitter must be between 0ms and 1000ms, not 2s");
        assert_eq!(error("rate=999bit"), "rate `999bit`: needs a unit: kbit, mbit or gbit (bits per second)");
        assert_eq!(error("rate=0.5kbit"), "rate must be between 1kbit and 100gbit, not 0.5kbit");
        assert_eq!(error("rate=101gbit"), "rate must be between 1kbit and 100gbit, not 101gbit");
        assert_eq!(error("rate=1mbit,queue=2GiB"), "queue `2GiB`: needs a unit: B, KiB or MiB");
        assert_eq!(error("rate=1mbit,queue=1025MiB"), "queue must be between 1500B and 1024MiB, not 1025MiB");
        assert_eq!(error("rate=1mbit,queue=100B"), "queue must be between 1500B and 1024MiB, not 100B");
        assert_eq!(
            error("queue=64KiB"),
            "queue `64KiB` needs a rate: without a bottleneck nothing ever waits in the queue"
        );
        assert_eq!(error("rtt=40"), "rtt `40`: needs a unit: us, ms or s");
        assert_eq!(error("rtt=40ns"), "rtt `40ns`: unknown unit `ns`: use us, ms or s");
        assert_eq!(error("rtt=0.5us"), "rtt `0.5us`: must be a whole number of microseconds");
        assert_eq!(error("rtt=1.2.3ms"), "rtt `1.2.3ms`: expected a decimal number followed by a unit");
        assert_eq!(error("rtt=ms"), "rtt `ms`: expected a decimal number followed by a unit");
        assert_eq!(error("loss=0.5"), "loss `0.5`: must be a percentage, e.g. 0.5%");
        assert_eq!(error("loss=0.00001%"), "loss `0.00001%`: must be a whole number of 0.0001%");
        assert_eq!(error("rtt=1ms,rtt=2ms"), "link key `rtt` is given twice");
        assert_eq!(error("delay=1ms"), "unknown link key `delay`: the keys are rtt, loss, rate, queue and jitter");
        assert_eq!(
            error("rtt=1ms,wan"),
            "`wan` is not key=value, and not a profile (lan, wan, lossy, mobile) in first place"
        );
        assert_eq!(
            error("moon"),
            "`moon` is not key=value, and not a profile (lan, wan, lossy, mobile) in first place"
        );
        assert_eq!(error(""), SpecError::Empty.to_string());
        assert_eq!(error(" , "), SpecError::Empty.to_string());
        assert!(error(&format!("rtt={}ms", "9".repeat(40))).contains("expected a decimal number"));
        assert_eq!(
            error(&format!("rtt={}ms", "9".repeat(20))),
            format!("rtt must be between 0ms and 10000ms, not {}ms", "9".repeat(20))
        );
    }
}
