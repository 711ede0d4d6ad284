//! One direction of a link as a queue over timestamped packets: no I/O, no
//! clock, no sleeping. The driver feeds it packets with the time they were
//! read and takes them out when their departure time has come; tests feed it
//! made-up times.
//!
//! The model, in the order a packet meets it (mahimahi's mm-link for the
//! bottleneck, then a fixed propagation delay):
//!
//! 1. **Bottleneck.** With a rate, the link transmits one packet at a time:
//!    a packet starts when the link has finished the bytes before it and
//!    takes `len × 8 / rate` to send. While it waits to start it sits in a
//!    drop-tail byte queue; a packet that would make the waiting bytes
//!    exceed `queue` is dropped (*queue drop*). The packet being
//!    transmitted does not count against the queue. Without a rate there is
//!    no bottleneck and no queue. Sizes are IP packet bytes: no link-layer
//!    framing is added.
//! 2. **Loss.** Each transmitted packet is lost with the direction's
//!    probability, from a seeded [`SplitMix64`] stream (*loss drop*). A lost
//!    packet has used its transmission time, as on a real wire.
//! 3. **Propagation.** The packet departs (is delivered at the far end)
//!    `delay` after its transmission ended, plus a jitter drawn uniformly
//!    from `0..=jitter` (a second seeded stream). Jitter never reorders: a
//!    packet never departs before the one sent ahead of it, as on most real
//!    paths (netem's jitter reorders; a path's queues do not). So under load
//!    closely spaced packets see the running maximum of their draws.
//!
//! Times are nanoseconds on any monotonic clock. Serialization is exact:
//! the fraction of a nanosecond each packet leaves is carried to the next,
//! so a million packets at a rate take exactly as long as their bits do.

use std::collections::VecDeque;

use crate::rng::SplitMix64;
use crate::spec::LinkSpec;

/// The figures of one direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectionConfig {
    /// Propagation delay, ns.
    pub delay_ns: u64,
    /// Largest extra delay per packet, ns.
    pub jitter_ns: u64,
    /// Loss probability, parts per million.
    pub loss_ppm: u32,
    /// Bottleneck rate, bit/s; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// Drop-tail queue in bytes (used only with a rate).
    pub queue_bytes: u64,
    /// The emulator's own memory bound: packets held at once (waiting,
    /// transmitting or propagating); more are dropped as [`Verdict::Full`].
    pub max_packets: usize,
}

/// The default of [`DirectionConfig::max_packets`]: 1 Gbit/s of full-size
/// packets over a one-way delay of 2.4 s, about 200 MiB of buffers.
pub const DEFAULT_MAX_PACKETS: usize = 200_000;

impl DirectionConfig {
    /// One direction of `spec`: half its RTT, its loss, rate, queue, jitter.
    pub fn from_spec(spec: &LinkSpec) -> DirectionConfig {
        DirectionConfig {
            delay_ns: spec.one_way().as_nanos() as u64,
            jitter_ns: spec.jitter().as_nanos() as u64,
            loss_ppm: spec.loss_ppm(),
            rate_bps: spec.rate_bps(),
            queue_bytes: spec.queue_bytes().unwrap_or(0),
            max_packets: DEFAULT_MAX_PACKETS,
        }
    }
}

/// What became of a pushed packet. Dropped packets are handed back, so the
/// caller can reuse their buffers.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<T> {
    /// It will depart at this time (ns).
    Queued {
        /// Departure time, ns.
        departure: u64,
    },
    /// The loss draw took it (after it used the link).
    Lost(T),
    /// The drop-tail queue was full.
    QueueDrop(T),
    /// The emulator holds [`DirectionConfig::max_packets`] already.
    Full(T),
}

/// Packets and bytes of one direction, by fate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets that departed.
    pub forwarded: u64,
    /// Their bytes.
    pub forwarded_bytes: u64,
    /// Packets lost to the loss draw.
    pub lost: u64,
    /// Their bytes.
    pub lost_bytes: u64,
    /// Packets dropped by the full drop-tail queue.
    pub queue_dropped: u64,
    /// Their bytes.
    pub queue_dropped_bytes: u64,
    /// Packets dropped by the emulator's own packet limit.
    pub limit_dropped: u64,
    /// Their bytes.
    pub limit_dropped_bytes: u64,
}

impl Counters {
    /// Every packet pushed so far that is no longer held.
    pub fn dropped(&self) -> u64 {
        self.lost + self.queue_dropped + self.limit_dropped
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            forwarded: self.forwarded - earlier.forwarded,
            forwarded_bytes: self.forwarded_bytes - earlier.forwarded_bytes,
            lost: self.lost - earlier.lost,
            lost_bytes: self.lost_bytes - earlier.lost_bytes,
            queue_dropped: self.queue_dropped - earlier.queue_dropped,
            queue_dropped_bytes: self.queue_dropped_bytes - earlier.queue_dropped_bytes,
            limit_dropped: self.limit_dropped - earlier.limit_dropped,
            limit_dropped_bytes: self.limit_dropped_bytes - earlier.limit_dropped_bytes,
        }
    }
}

/// A packet waiting for the transmitter: when it starts, and its size.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    start: u64,
    len: u64,
}

#[derive(Debug)]
struct InFlight<T> {
    departure: u64,
    len: u64,
    item: T,
}

/// One direction of a link. See the module doc for the model.
#[derive(Debug)]
pub struct LinkQueue<T> {
    config: DirectionConfig,
    loss_rng: SplitMix64,
    jitter_rng: SplitMix64,
    /// The transmitter is busy until `busy_until + busy_frac / rate` ns.
    busy_until: u64,
    busy_frac: u64,
    waiting: VecDeque<Waiting>,
    waiting_bytes: u64,
    in_flight: VecDeque<InFlight<T>>,
    last_departure: u64,
    counters: Counters,
}

impl<T> LinkQueue<T> {
    /// An empty direction drawing its losses and jitter from two streams.
    pub fn new(config: DirectionConfig, loss_rng: SplitMix64, jitter_rng: SplitMix64) -> LinkQueue<T> {
        LinkQueue {
            config,
            loss_rng,
            jitter_rng,
            busy_until: 0,
            busy_frac: 0,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            in_flight: VecDeque::new(),
            last_departure: 0,
            counters: Counters::default(),
        }
    }

    /// The figures this direction runs with.
    pub fn config(&self) -> &DirectionConfig {
        &self.config
    }

    /// Offers a packet of `len` bytes that arrived at `now`.
    ///
    /// `now` should not go backwards between calls (the driver reads one
    /// monotonic clock); if it does, departures still never go backwards,
    /// so a misuse can only delay a packet.
    pub fn push(&mut self, now: u64, len: usize, item: T) -> Verdict<T> {
        let len = len as u64;
        if self.in_flight.len() + self.waiting.len() >= self.config.max_packets {
            self.counters.limit_dropped += 1;
            self.counters.limit_dropped_bytes += len;
            return Verdict::Full(item);
        }
        let sent = match self.config.rate_bps {
            None => now,
            Some(rate) => match self.transmit(now, len, rate) {
                Some(end) => end,
                None => {
                    self.counters.queue_dropped += 1;
                    self.counters.queue_dropped_bytes += len;
                    return Verdict::QueueDrop(item);
                }
            },
        };
        if self.config.loss_ppm > 0 && self.loss_rng.chance_ppm(self.config.loss_ppm) {
            self.counters.lost += 1;
            self.counters.lost_bytes += len;
            return Verdict::Lost(item);
        }
        let jitter = if self.config.jitter_ns > 0 { self.jitter_rng.up_to(self.config.jitter_ns) } else { 0 };
        let departure = sent.saturating_add(self.config.delay_ns).saturating_add(jitter).max(self.last_departure);
        self.last_departure = departure;
        self.in_flight.push_back(InFlight { departure, len, item });
        Verdict::Queued { departure }
    }

    /// Puts `len` bytes arriving at `now` through the bottleneck: the time
    /// its transmission ends, or `None` if the queue has no room for it.
    fn transmit(&mut self, now: u64, len: u64, rate: u64) -> Option<u64> {
        while self.waiting.front().is_some_and(|w| w.start <= now) {
            if let Some(w) = self.waiting.pop_front() {
                self.waiting_bytes -= w.len;
            }
        }
        let idle = now > self.busy_until || (now == self.busy_until && self.busy_frac == 0);
        let (start, frac) = if idle { (now, 0) } else { (self.busy_until, self.busy_frac) };
        // It starts once the link has sent the bytes before it; until then it
        // waits in the queue.
        let start_ceil = start + u64::from(frac > 0);
        if start_ceil > now {
            if self.waiting_bytes + len > self.config.queue_bytes {
                return None;
            }
            self.waiting.push_back(Waiting { start: start_ceil, len });
            self.waiting_bytes += len;
        }
        let total = u128::from(frac) + u128::from(len) * 8 * 1_000_000_000;
        let rate = u128::from(rate);
        // Under 2^64: a 1 GiB queue at 1 kbit/s is 8.6e15 ns of backlog.
        self.busy_until = start.saturating_add(u64::try_from(total / rate).unwrap_or(u64::MAX));
        self.busy_frac = (total % rate) as u64;
        Some(self.busy_until + u64::from(self.busy_frac > 0))
    }

    /// When the next packet departs, if one is held.
    pub fn next_departure(&self) -> Option<u64> {
        self.in_flight.front().map(|p| p.departure)
    }

    /// The next packet if its departure time is `now` or earlier.
    pub fn pop(&mut self, now: u64) -> Option<T> {
        if self.in_flight.front()?.departure > now {
            return None;
        }
        let packet = self.in_flight.pop_front()?;
        self.counters.forwarded += 1;
        self.counters.forwarded_bytes += packet.len;
        Some(packet.item)
    }

    /// Packets held: waiting, transmitting or propagating.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Bytes waiting in the drop-tail queue at `now` (not counting the
    /// packet being transmitted).
    pub fn queued_bytes(&self, now: u64) -> u64 {
        self.waiting.iter().filter(|w| w.start > now).map(|w| w.len).sum()
    }

    /// What became of the packets so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Z99, binomial_acceptance};

    const MS: u64 = 1_000_000;

    fn config(spec: &str) -> DirectionConfig {
        DirectionConfig::from_spec(&spec.parse().unwrap())
    }

    fn queue(spec: &str, seed: u64) -> LinkQueue<u64> {
        LinkQueue::new(config(spec), SplitMix64::stream(seed, 0), SplitMix64::stream(seed, 1))
    }

    fn departure(v: Verdict<u64>) -> u64 {
        match v {
            Verdict::Queued { departure } => departure,
            other => panic!("expected queued, got {other:?}"),
        }
    }

    #[test]
    fn delay_is_half_the_rtt_exactly() {
        let mut q = queue("rtt=10ms", 1);
        let t0 = 123_456_789;
        assert_eq!(departure(q.push(t0, 100, 1)), t0 + 5 * MS);
        assert_eq!(departure(q.push(t0 + 7, 1500, 2)), t0 + 7 + 5 * MS);
        assert_eq!(q.next_departure(), Some(t0 + 5 * MS));
        assert_eq!(q.pop(t0 + 5 * MS - 1), None);
        assert_eq!(q.pop(t0 + 5 * MS), Some(1));
        assert_eq!(q.pop(t0 + 5 * MS + 6), None);
        assert_eq!(q.pop(t0 + 5 * MS + 7), Some(2));
        assert_eq!(q.next_departure(), None);
        assert_eq!(q.counters().forwarded, 2);
        assert_eq!(q.counters().forwarded_bytes, 1600);
        // An odd RTT in nanoseconds loses its half nanosecond, never more.
        let mut q = queue("rtt=0.001ms", 1);
        assert_eq!(departure(q.push(0, 1, 0)), 500);
    }

    #[test]
    fn zero_link_departs_at_once() {
        let mut q = queue("rtt=0ms", 1);
        assert_eq!(departure(q.push(42, 1500, 7)), 42);
        assert_eq!(q.pop(42), Some(7));
    }

    #[test]
    fn loss_rate_is_within_the_99_percent_binomial_interval() {
        let n = 200_000u64;
        for (spec, p) in [("loss=1%", 0.01), ("loss=0.5%", 0.005), ("loss=30%", 0.3)] {
            for seed in [1, 2, 3, 947_324_362] {
                let mut q = queue(spec, seed);
                for i in 0..n {
                    let _ = q.push(i * 1_000, 100, i);
                }
                let lost = q.counters().lost;
                let (lo, hi) = binomial_acceptance(n, p, Z99);
                assert!((lo..=hi).contains(&lost), "{spec} seed {seed}: {lost} lost of {n}, expected {lo}..={hi}");
                assert_eq!(q.counters().lost_bytes, lost * 100);
                assert_eq!(q.len() as u64, n - lost);
            }
        }
        let mut none = queue("loss=0%", 1);
        let mut all = queue("loss=100%", 1);
        for i in 0..10_000 {
            assert!(matches!(none.push(i, 1, i), Verdict::Queued { .. }));
            assert_eq!(all.push(i, 1, i), Verdict::Lost(i));
        }
    }

    #[test]
    fn losses_are_deterministic_for_a_seed_and_differ_between_seeds() {
        let pattern = |seed| {
            let mut q = queue("loss=10%", seed);
            (0..2_000u64).map(|i| matches!(q.push(i, 1, i), Verdict::Lost(_))).collect::<Vec<_>>()
        };
        assert_eq!(pattern(5), pattern(5));
        assert_ne!(pattern(5), pattern(6));
        // Jitter draws from its own stream, so adding it keeps the losses.
        let mut plain = queue("loss=10%", 5);
        let mut jittered = queue("loss=10%,jitter=3ms", 5);
        for i in 0..2_000u64 {
            assert_eq!(
                matches!(plain.push(i, 1, i), Verdict::Lost(_)),
                matches!(jittered.push(i, 1, i), Verdict::Lost(_))
            );
        }
    }

    #[test]
    fn serialization_delay_is_exact_back_to_back() {
        // 8 Mbit/s is one byte per microsecond.
        let mut q = queue("rate=8mbit,queue=1MiB", 1);
        for k in 1..=100u64 {
            assert_eq!(departure(q.push(0, 1000, k)), k * 1_000_000, "packet {k}");
        }
        // 3 kbit/s: one byte takes 8/3 ms; the fractions are carried, so the
        // thousandth byte ends at ceil(1000 × 8e9 / 3000) exactly, not 1000 ×
        // a rounded per-packet time.
        let mut q = queue("rate=3kbit,queue=1500B", 1);
        for k in 1..=1000u64 {
            assert_eq!(departure(q.push(0, 1, k)), (k * 8_000_000_000).div_ceil(3_000), "byte {k}");
        }
        assert_eq!(q.counters().queue_dropped, 0);
    }

    #[test]
    fn serialization_then_propagation() {
        let mut q = queue("rtt=10ms,rate=8mbit,queue=64KiB", 1);
        // 1500 bytes take 1.5 ms to send, then 5 ms to propagate.
        assert_eq!(departure(q.push(0, 1500, 1)), 6_500_000);
        assert_eq!(departure(q.push(0, 1500, 2)), 8_000_000);
        // An idle link starts a packet on arrival.
        assert_eq!(departure(q.push(20 * MS, 500, 3)), 20 * MS + 500_000 + 5 * MS);
    }

    #[test]
    fn drop_tail_at_the_queue_size() {
        let mut q = queue("rate=8mbit,queue=3000B", 1);
        let verdicts: Vec<bool> = (0..10).map(|i| matches!(q.push(0, 1000, i), Verdict::Queued { .. })).collect();
        // One transmitting, three waiting (3000 bytes), six dropped.
        assert_eq!(verdicts, [true, true, true, true, false, false, false, false, false, false]);
        assert_eq!(q.counters().queue_dropped, 6);
        assert_eq!(q.counters().queue_dropped_bytes, 6000);
        assert_eq!(q.queued_bytes(0), 3000);
        // Just before the second packet starts the queue is still full ...
        assert!(matches!(q.push(999_999, 1000, 10), Verdict::QueueDrop(10)));
        // ... and when it starts there is room for exactly one more.
        assert_eq!(q.queued_bytes(1_000_000), 2000);
        assert_eq!(departure(q.push(1_000_000, 1000, 11)), 5_000_000);
        assert!(matches!(q.push(1_000_000, 1, 12), Verdict::QueueDrop(12)));
        // A smaller packet fits where a larger does not.
        assert_eq!(departure(q.push(2_000_000, 1000, 13)), 6_000_000);
        assert_eq!(departure(q.push(3_000_000, 500, 14)), 6_500_000);
        assert!(matches!(q.push(3_000_000, 600, 15), Verdict::QueueDrop(15)));
    }

    #[test]
    fn a_lost_packet_used_the_link() {
        let mut q = queue("rate=8mbit,queue=1MiB,loss=100%", 1);
        assert_eq!(q.push(0, 1000, 1), Verdict::Lost(1));
        // The transmitter is busy until 1 ms, so the next packet waits.
        assert_eq!(q.queued_bytes(0), 0);
        assert_eq!(q.push(0, 1000, 2), Verdict::Lost(2));
        assert_eq!(q.queued_bytes(0), 1000);
        assert_eq!(q.queued_bytes(1_000_000), 0);
    }

    #[test]
    fn jitter_is_bounded_and_covers_its_range() {
        let mut q = queue("rtt=20ms,jitter=2ms", 9);
        let (mut min, mut max) = (u64::MAX, 0);
        for i in 0..10_000u64 {
            // 10 ms apart, further than any jitter: each packet draws alone.
            let t = i * 10 * MS;
            let extra = departure(q.push(t, 100, i)) - t - 10 * MS;
            assert!(extra <= 2 * MS, "packet {i}: {extra} ns of jitter");
            min = min.min(extra);
            max = max.max(extra);
            assert_eq!(q.pop(t + 12 * MS), Some(i));
        }
        assert!(min < 20_000 && max > 2 * MS - 20_000, "draws span {min}..{max} ns");
    }

    #[test]
    fn jitter_never_reorders() {
        let mut q = queue("rtt=2ms,jitter=5ms,rate=100mbit,queue=1MiB", 3);
        let mut departures = Vec::new();
        for i in 0..5_000u64 {
            departures.push(departure(q.push(i * 200_000, 1200, i)));
        }
        assert!(departures.windows(2).all(|w| w[0] <= w[1]), "departures go backwards");
        let mut popped = Vec::new();
        let end = *departures.last().unwrap();
        while let Some(i) = q.pop(end) {
            popped.push(i);
        }
        assert_eq!(popped, (0..5_000).collect::<Vec<_>>());
    }

    #[test]
    fn the_packet_limit_bounds_memory() {
        let mut cfg = config("rtt=1000ms");
        cfg.max_packets = 3;
        let mut q = LinkQueue::new(cfg, SplitMix64::new(1), SplitMix64::new(2));
        for i in 0..3 {
            assert!(matches!(q.push(0, 10, i), Verdict::Queued { .. }));
        }
        assert_eq!(q.push(0, 10, 3), Verdict::Full(3));
        assert_eq!(q.counters().limit_dropped, 1);
        assert_eq!(q.pop(500 * MS), Some(0));
        assert!(matches!(q.push(0, 10, 4), Verdict::Queued { .. }));
    }

    #[test]
    fn time_going_backwards_only_delays() {
        let mut q = queue("rtt=2ms", 1);
        assert_eq!(departure(q.push(10 * MS, 1, 1)), 11 * MS);
        // An earlier `now` cannot make a packet overtake the one before it.
        assert_eq!(departure(q.push(5 * MS, 1, 2)), 11 * MS);
    }
}
