//! wirebench's network link emulator: client and server in network
//! namespaces of their own, joined by TUN devices and one user-space
//! forwarding thread that gives every packet a link's delay, loss, bandwidth
//! and queue (in the way Stanford's mahimahi does), so transports are
//! compared on a network instead of loopback.
//!
//! Two layers:
//!
//! - [`queue`]: one direction of a link as a queue over timestamped packets,
//!   pure code with no I/O and no clock: a drop-tail byte queue in front of
//!   a bottleneck of the link's rate, seeded random loss, propagation delay
//!   of half the RTT, optional jitter that never reorders. Deterministic for
//!   a seed, so it is tested exactly, without devices or sleeping.
//! - [`Link`] (the driver, Linux, root): one server namespace and K client
//!   namespaces, a TUN device in each, each client with its own pair of
//!   queues to the server, and one thread moving packets between the TUN
//!   descriptors with `epoll` and an absolute `timerfd`. Everything is
//!   removed on drop, on [`Link::teardown`], by [`teardown_all`] from a
//!   signal path, and, for a process killed outright, by the next
//!   [`Link::up`] ([`remove_stale`]).
//!
//! The key design decision: the emulator sits *between* two network stacks,
//! as a remote bottleneck does, instead of shaping the sender's own
//! interface (tbf, htb), and it keeps time itself with a `timerfd` at
//! nanosecond resolution rather than an async runtime's millisecond timers.
//! With TUN offloads off, every packet it delays or drops is a real
//! MTU-sized IP packet.
//!
//! [`LinkSpec`] is the `--link` grammar:
//! `rtt=40ms,loss=0.5%,rate=100mbit,queue=64KiB,jitter=1ms`, every key
//! optional; loss applies to each direction apart; a rate without a queue
//! gets one bandwidth-delay product (at least 64 KiB); a profile name can
//! come first and be overridden (`wan,loss=0.1%`). The profiles:
//!
//! | profile | spec | stands for |
//! |---|---|---|
//! | `lan` | `rtt=0.5ms,rate=1gbit,queue=256KiB` | gigabit Ethernet through a switch or two, no loss |
//! | `wan` | `rtt=40ms,rate=100mbit,queue=512KiB` | a continental Internet path, one bandwidth-delay product of buffer |
//! | `lossy` | `rtt=40ms,loss=1%,rate=100mbit,queue=512KiB` | `wan` with 1% random loss in each direction |
//! | `mobile` | `rtt=60ms,loss=0.2%,rate=20mbit,queue=256KiB,jitter=5ms` | an LTE-like path: deep buffer, jitter, residual loss |
//!
//! [`validate`] measures a link against its setting (RTT, loss, TCP
//! throughput, the emulator's own latency, its CPU) in a few seconds; the
//! harness stores the result with every linked run. `docs/link.md`
//! describes the model, the topology and the known limits.

pub mod queue;
pub mod rng;
pub mod stats;

mod driver;
mod error;
mod netns;
mod spec;
mod sys;
mod validate;

pub use driver::{
    DeviceCounters, Link, LinkStats, MAX_CLIENTS, MTU, TUN_NAME, TXQUEUELEN, TeardownHandle, teardown_all,
};
pub use error::LinkError;
pub use netns::{
    NETNS_DIR, NetnsFd, NetnsGuard, check_available, command_in_netns, enter_netns, remove_stale, stale_netns,
};
pub use queue::{Counters, DirectionConfig, LinkQueue, Verdict};
pub use spec::{
    LinkSpec, MAX_JITTER, MAX_QUEUE_BYTES, MAX_RATE_BPS, MAX_RTT, MIN_DEFAULT_QUEUE_BYTES, MIN_QUEUE_BYTES,
    MIN_RATE_BPS, PROFILES, SpecError,
};
pub use validate::{
    EmulatorLatency, Loss, LossDirection, LossPlan, PROBE_PAYLOAD, PacketRate, Rtt, RttPlan, THROUGHPUT_SLICES,
    Throughput, ThroughputPlan, Validation, measure_emulator_latency, measure_loss, measure_packet_rate, measure_rtt,
    measure_throughput, run_in_netns, validate,
};
