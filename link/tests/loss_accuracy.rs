//! Loss at a 1% setting: over 100000 probes, the losses of each direction
//! lie in the 99% binomial acceptance region of the setting (issue 14).
//! Which packets are lost depends only on the seed and the order of the
//! packets, not on timing; the emulator's own loss counter must equal what
//! the probes measured, so no other drop hides in the figure.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use wirebench_link::stats::{Z99, binomial_acceptance};
use wirebench_link::{Link, LossPlan, measure_loss};

#[test]
fn one_percent_loss_each_way() {
    if !common::link_available() {
        return;
    }
    let _serial = common::serial();
    let link = Link::up(&"rtt=2ms,loss=1%".parse().unwrap(), 1, 947_324_362).unwrap();
    let plan = LossPlan { client: 0, packets: 100_000, rate_pps: 25_000, timeout: Duration::from_secs(2) };
    let loss = measure_loss(&link, &plan).unwrap();
    let stats = link.stats();
    println!("{loss:?}\n{stats:?}");
    for (name, d, emulator) in [("up", loss.up, stats.up[0]), ("down", loss.down, stats.down[0])] {
        let lost = d.sent - d.received;
        let (lo, hi) = binomial_acceptance(d.sent, 0.01, Z99);
        assert!((lo..=hi).contains(&lost), "{name}: {lost} of {} lost, expected {lo}..={hi}", d.sent);
        assert!(d.contains(0.01), "{name}: 1% outside the measured interval {:?}", d.interval);
        assert_eq!(emulator.lost, lost, "{name}: the emulator lost {} but the probes saw {lost}", emulator.lost);
        assert_eq!(emulator.queue_dropped + emulator.limit_dropped, 0);
    }
    assert_eq!(loss.up.sent, 100_000);
    let drops: u64 = link.device_counters().unwrap().iter().map(|d| d.tx_dropped).sum();
    assert_eq!(drops, 0, "the kernel dropped packets in a TUN queue");
}
