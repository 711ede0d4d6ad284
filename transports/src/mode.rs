//! The call modes beyond request-response, as plain types and pure code:
//! what a oneway message carries and the server's count of a oneway
//! session (with its encoding on the wire), and the deliveries of a
//! publish/subscribe topic. Each transport carries them its own way
//! (`docs/protocol.md`); a transport opts into a mode by implementing the
//! matching [`crate::Client`] method, whose default answers
//! [`crate::CallError::Unsupported`].
//!
//! Oneway latency is measured on the server, from the send time the
//! message carries to its receipt: both read `CLOCK_MONOTONIC`
//! ([`monotonic_ns`]), which is one clock for every process of one
//! machine, and meaningless between two machines.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::CallError;
pub use crate::frame::{NO_BIN, Oneway};

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock a oneway or published
/// message's send time is read from, and its receipt compared with.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid timespec to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        // CLOCK_MONOTONIC exists on every Linux; if it ever failed, a zero
        // shows as a huge latency rather than a plausible one.
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// What a oneway message carries beside its method, format and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnewayMeta {
    /// The client's session: the server counts each session apart.
    pub session: u32,
    /// The message's number in its session, from 1.
    pub seq: u32,
    /// [`monotonic_ns`] at the send.
    pub sent_ns: u64,
    /// The sub-window of the client's measured window the send fell in, or
    /// [`NO_BIN`] outside it (warm-up, probes).
    pub bin: u32,
}

impl OnewayMeta {
    /// The frame extension carrying it (the sequence number travels as
    /// the request id).
    pub fn extension(self) -> Oneway {
        Oneway { sent_ns: self.sent_ns, session: self.session, bin: self.bin }
    }

    /// From a frame's request id and extension.
    pub fn from_frame(seq: u32, oneway: Oneway) -> OnewayMeta {
        OnewayMeta { session: oneway.session, seq, sent_ns: oneway.sent_ns, bin: oneway.bin }
    }
}

/// The highest latency the oneway histograms hold: 60 s, like the
/// harness's.
pub const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Significant digits of a session's whole-window histogram.
pub const SESSION_DIGITS: u8 = 3;
/// Significant digits of a session's per-sub-window histograms: fewer, so
/// a session with many sub-windows stays small on the server (one
/// 3-digit histogram is about 230 KB, one 2-digit one about 30 KB).
pub const BIN_DIGITS: u8 = 2;

/// An empty latency histogram with `digits` significant digits.
pub fn latency_histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, digits.clamp(1, 5))
        .unwrap_or_else(|_| unreachable!("constant bounds with 1 to 5 digits are valid"))
}

/// The oneway-report control call's request: whose count, and how long
/// to wait for messages still on their way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportRequest {
    /// The session.
    pub session: u32,
    /// How many messages the client sent in it: the server answers as soon
    /// as that many arrived.
    pub expected: u64,
    /// Otherwise it answers once no message of the session arrived for
    /// this long...
    pub quiet_ms: u32,
    /// ...or this long after the request, whichever comes first.
    pub deadline_ms: u32,
}

impl ReportRequest {
    /// Bytes on the wire.
    pub const LEN: usize = 20;

    /// Its bytes: session u32, expected u64, quiet u32, deadline u32, all BE.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..4].copy_from_slice(&self.session.to_be_bytes());
        out[4..12].copy_from_slice(&self.expected.to_be_bytes());
        out[12..16].copy_from_slice(&self.quiet_ms.to_be_bytes());
        out[16..20].copy_from_slice(&self.deadline_ms.to_be_bytes());
        out
    }

    /// Parses exactly [`ReportRequest::LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<ReportRequest, ReportError> {
        if bytes.len() != Self::LEN {
            return Err(ReportError::Length { what: "report request", got: bytes.len(), expected: Self::LEN });
        }
        let mut r = Reader { bytes, at: 0 };
        Ok(ReportRequest { session: r.u32()?, expected: r.u64()?, quiet_ms: r.u32()?, deadline_ms: r.u32()? })
    }

    /// The quiet period.
    pub fn quiet(&self) -> Duration {
        Duration::from_millis(u64::from(self.quiet_ms))
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(u64::from(self.deadline_ms))
    }
}

/// The messages of one sub-window of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct BinCount {
    /// The window bin the messages carried.
    pub index: u32,
    /// How many arrived.
    pub delivered: u64,
    /// Their send-to-receipt latency, ns ([`BIN_DIGITS`] digits); `None`
    /// when the server's limit on such histograms was reached.
    pub latency: Option<Histogram<u64>>,
}

/// A server's count of one oneway session, as the oneway-report control
/// call returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct OnewayReport {
    /// Messages of the session that arrived, in or outside the window.
    pub delivered: u64,
    /// Of those, messages the service refused (undecodable, unknown
    /// method or format).
    pub errors: u64,
    /// The first refusal's reason.
    pub first_error: Option<String>,
    /// Messages whose window bin was over the server's limit on bins per
    /// session: counted in `delivered`, in no bin.
    pub overflow: u64,
    /// Send-to-receipt latency of every message with a window bin, ns
    /// ([`SESSION_DIGITS`] digits).
    pub latency: Histogram<u64>,
    /// Per window bin, ascending.
    pub bins: Vec<BinCount>,
}

impl Default for OnewayReport {
    fn default() -> OnewayReport {
        OnewayReport {
            delivered: 0,
            errors: 0,
            first_error: None,
            overflow: 0,
            latency: latency_histogram(SESSION_DIGITS),
            bins: Vec::new(),
        }
    }
}

/// The longest first-error message a report carries.
pub const MAX_ERROR_LEN: usize = 512;

/// Why a oneway report (or its request) does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Fewer bytes than a field needs.
    #[error("oneway report truncated at byte {at}: {need} more bytes needed")]
    Truncated {
        /// Where.
        at: usize,
        /// How many were missing.
        need: usize,
    },
    /// A fixed-size message of the wrong size.
    #[error("a {what} of {got} bytes, expected {expected}")]
    Length {
        /// Which message.
        what: &'static str,
        /// Its size.
        got: usize,
        /// The size it must have.
        expected: usize,
    },
    /// Bytes after the last field.
    #[error("{0} bytes after the oneway report")]
    Trailing(usize),
    /// A histogram whose declared precision is not 1 to 5 digits.
    #[error("a latency histogram declares {0} significant digits")]
    Digits(u8),
    /// A histogram value over the 60 s bound, or bins out of order.
    #[error("oneway report has an invalid value: {0}")]
    Invalid(String),
}

/// Reads big-endian fields off a byte slice, every length checked first.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ReportError> {
        let rest = self.bytes.len() - self.at;
        if rest < n {
            return Err(ReportError::Truncated { at: self.at, need: n - rest });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, ReportError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ReportError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ReportError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, ReportError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// `digits u8 | n u32 | n × (value u64 | count u64)`; digits 0 is no
    /// histogram.
    fn histogram(&mut self) -> Result<Option<Histogram<u64>>, ReportError> {
        let digits = self.u8()?;
        let n = self.u32()? as usize;
        if digits == 0 && n == 0 {
            return Ok(None);
        }
        if !(1..=5).contains(&digits) {
            return Err(ReportError::Digits(digits));
        }
        // The declared count is checked against the bytes there before
        // anything is allocated for it.
        let need = n.saturating_mul(16);
        if need > self.remaining() {
            return Err(ReportError::Truncated { at: self.at, need: need - self.remaining() });
        }
        let mut h = latency_histogram(digits);
        for _ in 0..n {
            let (value, count) = (self.u64()?, self.u64()?);
            if value > MAX_LATENCY_NS.saturating_mul(2) {
                return Err(ReportError::Invalid(format!("latency {value} ns")));
            }
            h.saturating_record_n(value.max(1), count);
        }
        Ok(Some(h))
    }
}

/// Appends `h` as `digits u8 | n u32 | n × (value u64 | count u64)`: each
/// recorded bucket by its highest equivalent value, which falls in the
/// same bucket when recorded again.
fn put_histogram(out: &mut Vec<u8>, h: Option<&Histogram<u64>>) {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        out.push(0);
        out.extend_from_slice(&0u32.to_be_bytes());
        return;
    };
    out.push(h.sigfig());
    let count_at = out.len();
    out.extend_from_slice(&0u32.to_be_bytes());
    let mut n = 0u32;
    for v in h.iter_recorded() {
        out.extend_from_slice(&v.value_iterated_to().to_be_bytes());
        out.extend_from_slice(&v.count_at_value().to_be_bytes());
        n += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&n.to_be_bytes());
}

impl OnewayReport {
    /// Appends the report's bytes:
    ///
    /// ```text
    /// delivered u64 | errors u64 | overflow u64 | error_len u16 | error (UTF-8)
    /// | latency histogram | bins u32 | bins × (index u32 | delivered u64 | histogram)
    /// histogram = digits u8 | n u32 | n × (value u64 | count u64)   (digits 0, n 0: none)
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.delivered.to_be_bytes());
        out.extend_from_slice(&self.errors.to_be_bytes());
        out.extend_from_slice(&self.overflow.to_be_bytes());
        let error = self.first_error.as_deref().unwrap_or("");
        let mut cut = error.len().min(MAX_ERROR_LEN);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        out.extend_from_slice(&(cut as u16).to_be_bytes());
        out.extend_from_slice(&error.as_bytes()[..cut]);
        put_histogram(out, Some(&self.latency));
        out.extend_from_slice(&(self.bins.len() as u32).to_be_bytes());
        for bin in &self.bins {
            out.extend_from_slice(&bin.index.to_be_bytes());
            out.extend_from_slice(&bin.delivered.to_be_bytes());
            put_histogram(out, bin.latency.as_ref());
        }
    }

    /// Parses a whole report; the peer's bytes, so every count is checked
    /// against the bytes present before anything is allocated.
    pub fn parse(bytes: &[u8]) -> Result<OnewayReport, ReportError> {
        let mut r = Reader { bytes, at: 0 };
        let delivered = r.u64()?;
        let errors = r.u64()?;
        let overflow = r.u64()?;
        let error_len = r.u16()? as usize;
        let error = r.take(error_len)?;
        let first_error = (!error.is_empty()).then(|| String::from_utf8_lossy(error).into_owned());
        let latency = r.histogram()?.unwrap_or_else(|| latency_histogram(SESSION_DIGITS));
        let n = r.u32()? as usize;
        // A bin takes at least 17 bytes.
        if n.saturating_mul(17) > r.remaining() {
            return Err(ReportError::Truncated { at: r.at, need: n.saturating_mul(17) - r.remaining() });
        }
        let mut bins = Vec::with_capacity(n);
        for _ in 0..n {
            let index = r.u32()?;
            if bins.last().is_some_and(|b: &BinCount| b.index >= index) {
                return Err(ReportError::Invalid(format!("bin {index} out of order")));
            }
            let delivered = r.u64()?;
            bins.push(BinCount { index, delivered, latency: r.histogram()? });
        }
        if r.remaining() > 0 {
            return Err(ReportError::Trailing(r.remaining()));
        }
        Ok(OnewayReport { delivered, errors, first_error, overflow, latency, bins })
    }
}

/// What a published message carries beside its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishMeta {
    /// The publisher's message number.
    pub seq: u64,
    /// [`monotonic_ns`] at the publish.
    pub sent_ns: u64,
}

/// One message as a subscriber received it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The publisher's message number.
    pub seq: u64,
    /// The publisher's send time ([`monotonic_ns`]).
    pub sent_ns: u64,
    /// When the subscriber's transport read it off its socket: deliveries
    /// pass through a channel to their reader, and that hop is not timed.
    pub received: Instant,
    /// The format's bytes of the message.
    pub body: Bytes,
}

/// Deliveries a subscription buffers before its transport stops reading
/// (backpressure, not loss).
pub const SUBSCRIPTION_BUFFER: usize = 4096;

/// A subscription to one topic: the deliveries its transport's task reads,
/// in arrival order. Dropping it stops the task.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Result<Delivery, CallError>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The sending half of a subscription's channel.
pub type DeliverySender = mpsc::Sender<Result<Delivery, CallError>>;

impl Subscription {
    /// A subscription fed by `task` through the sending half of
    /// [`Subscription::channel`].
    pub fn new(rx: mpsc::Receiver<Result<Delivery, CallError>>, task: tokio::task::JoinHandle<()>) -> Subscription {
        Subscription { rx, task: Some(task) }
    }

    /// The channel a transport's subscriber task sends deliveries into.
    pub fn channel() -> (DeliverySender, mpsc::Receiver<Result<Delivery, CallError>>) {
        mpsc::channel(SUBSCRIPTION_BUFFER)
    }

    /// Hands `delivery` to the subscription's reader, from its transport's
    /// task: false once the subscription is over (the reader dropped it,
    /// or `delivery` was the error that ends it), and the task should end.
    pub async fn forward(tx: &DeliverySender, delivery: Result<Delivery, CallError>) -> bool {
        let ended = delivery.is_err();
        tx.send(delivery).await.is_ok() && !ended
    }

    /// The next delivery, or an error that ended the subscription; `None`
    /// once it ended.
    pub async fn next(&mut self) -> Option<Result<Delivery, CallError>> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Golden bytes: docs/protocol.md, the oneway-report control call.
    #[test]
    fn report_request_and_report_golden() {
        let request = ReportRequest { session: 0xa1b2_c3d4, expected: 1000, quiet_ms: 250, deadline_ms: 10_000 };
        assert_eq!(hex(&request.to_bytes()), "a1b2c3d400000000000003e8000000fa00002710");
        assert_eq!(ReportRequest::parse(&request.to_bytes()), Ok(request));
        assert!(ReportRequest::parse(&request.to_bytes()[..19]).is_err());

        let mut latency = latency_histogram(SESSION_DIGITS);
        latency.record_n(1000, 2).unwrap();
        let mut bin = latency_histogram(BIN_DIGITS);
        bin.record(1000).unwrap();
        let report = OnewayReport {
            delivered: 3,
            errors: 1,
            first_error: Some("bad".into()),
            overflow: 0,
            latency,
            bins: vec![BinCount { index: 2, delivered: 1, latency: Some(bin) }],
        };
        let mut out = Vec::new();
        report.encode(&mut out);
        let expected = [
            "0000000000000003", // delivered
            "0000000000000001", // errors
            "0000000000000000", // overflow
            "0003626164",       // "bad"
            "03",
            "00000001",
            "00000000000003e8",
            "0000000000000002", // latency: 2 at 1000 ns
            "00000001",         // one bin
            "00000002",
            "0000000000000001", // bin 2: 1 message
            // Its histogram: at 2 digits, 1000 ns shares a bucket with
            // 1001 to 1003, and travels as the bucket's highest value.
            "02",
            "00000001",
            "00000000000003eb",
            "0000000000000001",
        ]
        .concat();
        assert_eq!(hex(&out), expected);
        let back = OnewayReport::parse(&out).unwrap();
        assert_eq!(back, report, "the same buckets, so equal histograms");
    }

    #[test]
    fn hostile_reports_are_refused_without_allocating() {
        let mut out = Vec::new();
        OnewayReport::default().encode(&mut out);
        assert_eq!(OnewayReport::parse(&out), Ok(OnewayReport::default()));
        for cut in 0..out.len() {
            assert!(OnewayReport::parse(&out[..cut]).is_err(), "cut {cut}");
        }
        let mut trailing = out.clone();
        trailing.push(0);
        assert_eq!(OnewayReport::parse(&trailing), Err(ReportError::Trailing(1)));
        // A histogram declaring four billion buckets in a few bytes.
        let mut huge = vec![0u8; 26];
        huge.extend_from_slice(&[3, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(OnewayReport::parse(&huge), Err(ReportError::Truncated { .. })));
        let mut digits = vec![0u8; 26];
        digits.extend_from_slice(&[9, 0, 0, 0, 1]);
        digits.extend_from_slice(&[0; 16]);
        assert_eq!(OnewayReport::parse(&digits), Err(ReportError::Digits(9)));
        // Four billion bins.
        let mut bins = out[..out.len() - 4].to_vec();
        bins.extend_from_slice(&[0xff; 4]);
        assert!(matches!(OnewayReport::parse(&bins), Err(ReportError::Truncated { .. })));
    }

    proptest::proptest! {
        #[test]
        fn report_parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = OnewayReport::parse(&bytes);
            let _ = ReportRequest::parse(&bytes);
        }

        #[test]
        fn reports_round_trip(values in proptest::collection::vec(1u64..MAX_LATENCY_NS, 0..50), errors: u64) {
            let mut latency = latency_histogram(SESSION_DIGITS);
            let mut bin = latency_histogram(BIN_DIGITS);
            for v in &values {
                latency.record(*v).unwrap();
                bin.record(*v).unwrap();
            }
            let report = OnewayReport {
                delivered: values.len() as u64,
                errors,
                first_error: None,
                overflow: 1,
                latency: latency.clone(),
                bins: vec![BinCount { index: 0, delivered: values.len() as u64, latency: Some(bin) }],
            };
            let mut out = Vec::new();
            report.encode(&mut out);
            let back = OnewayReport::parse(&out).unwrap();
            proptest::prop_assert_eq!(back.latency.len(), latency.len());
            proptest::prop_assert_eq!(back.latency.value_at_quantile(0.5), latency.value_at_quantile(0.5));
            proptest::prop_assert_eq!(back.latency.max(), latency.max());
        }
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b > a + 1_000_000, "{a} then {b}");
    }
}
