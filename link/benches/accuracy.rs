//! The emulator's accuracy as ratios: each setting, what was measured
//! through the link, and measured / setting. RTT at 0, 10 and 40 ms, loss
//! at 1%, TCP throughput at 50 and 200 Mbit/s, packets per second with no
//! limit, and the emulator's own added latency at zero delay.
//!
//! `cargo bench -p wirebench-link --bench accuracy` (root and TUN needed;
//! without them it prints `skipped: <why>`). With `--test` (as `cargo bench
//! -- --test` passes) every measurement runs briefly, to check it works.

#![allow(clippy::unwrap_used)] // a bench fails loudly by design

use std::time::Duration;

use wirebench_link::stats::{Z99, binomial_acceptance};
use wirebench_link::{
    Link, LinkSpec, LossPlan, RttPlan, ThroughputPlan, check_available, measure_emulator_latency, measure_loss,
    measure_packet_rate, measure_rtt, measure_throughput,
};

const SEED: u64 = 947_324_362;

struct Row {
    what: String,
    setting: String,
    measured: String,
    ratio: String,
}

fn up(spec: &str) -> Link {
    let spec: LinkSpec = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
    Link::up(&spec, 1, SEED).unwrap_or_else(|e| panic!("bringing up {spec}: {e}"))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    if let Err(e) = check_available() {
        println!("skipped: {e}");
        return;
    }
    let mut rows = Vec::new();
    let (pings, interval) = if quick { (50, Duration::from_millis(2)) } else { (1000, Duration::from_millis(2)) };

    for rtt_ms in [0u64, 10, 40] {
        let link = up(&format!("rtt={rtt_ms}ms"));
        let plan = RttPlan { client: 0, pings, interval, timeout: Duration::from_secs(2) };
        let rtt = measure_rtt(&link, &plan).expect("measuring the RTT");
        let p50 = rtt.p50.expect("no ping came back");
        let setting = Duration::from_millis(rtt_ms);
        rows.push(Row {
            what: format!("rtt p50 ({} pings)", rtt.received),
            setting: ms(setting),
            measured: format!("{} (p99 {})", ms(p50), ms(rtt.p99.unwrap_or_default())),
            ratio: if rtt_ms == 0 {
                format!("+{}", ms(p50))
            } else {
                format!("{:.4} (+{})", p50.as_secs_f64() / setting.as_secs_f64(), ms(p50.saturating_sub(setting)))
            },
        });
    }

    let link = up("rtt=2ms,loss=1%");
    let packets = if quick { 5_000 } else { 100_000 };
    let loss = measure_loss(&link, &LossPlan { client: 0, packets, rate_pps: 20_000, timeout: Duration::from_secs(2) })
        .expect("measuring loss");
    for (name, d) in [("up", loss.up), ("down", loss.down)] {
        let (lo, hi) = binomial_acceptance(d.sent, 0.01, Z99);
        let lost = d.sent - d.received;
        rows.push(Row {
            what: format!("loss {name} ({} probes)", d.sent),
            setting: "1%".to_owned(),
            measured: format!(
                "{:.3}% (99% interval {:.3}% to {:.3}%)",
                d.rate * 100.0,
                d.interval.0 * 100.0,
                d.interval.1 * 100.0
            ),
            ratio: format!(
                "{:.4}{}",
                d.rate / 0.01,
                if (lo..=hi).contains(&lost) { "" } else { " OUTSIDE the 99% region" }
            ),
        });
    }
    drop(link);

    let (warmup, window) = if quick {
        (Duration::from_millis(300), Duration::from_millis(500))
    } else {
        (Duration::from_secs(1), Duration::from_secs(4))
    };
    for mbit in [50u64, 200] {
        let link = up(&format!("rtt=10ms,rate={mbit}mbit"));
        let t = measure_throughput(&link, &ThroughputPlan { client: 0, warmup, window }).expect("measuring throughput");
        let rate = (mbit * 1_000_000) as f64;
        rows.push(Row {
            what: format!("tcp throughput, IP bytes ({})", t.congestion_control),
            setting: format!("{mbit} Mbit/s"),
            measured: format!(
                "median slice {:.2} Mbit/s, mean {:.2} (goodput {:.2}, steal {})",
                t.wire_bps_median / 1e6,
                t.wire_bps / 1e6,
                t.goodput_bps / 1e6,
                t.steal.map_or("unknown".to_owned(), ms)
            ),
            ratio: format!("{:.4} (mean {:.4})", t.wire_bps_median / rate, t.wire_bps / rate),
        });
    }

    let link = up("rtt=0ms");
    let flood = if quick { Duration::from_millis(300) } else { Duration::from_secs(3) };
    let rate = measure_packet_rate(&link, 0, flood).expect("measuring the packet rate");
    let cpu_per_packet = rate.forwarder_cpu.as_secs_f64() / (rate.forwarded_pps * rate.duration.as_secs_f64()).max(1.0);
    rows.push(Row {
        what: "packets/s, 64 B, no limit".to_owned(),
        setting: "unlimited".to_owned(),
        measured: format!(
            "{:.0} pps ({} sent, {} received, {} TUN drops, {:.2} µs forwarder CPU each)",
            rate.forwarded_pps,
            rate.sent,
            rate.received,
            rate.device_drops,
            cpu_per_packet * 1e6
        ),
        ratio: "-".to_owned(),
    });
    drop(link);

    let e = measure_emulator_latency(SEED).expect("measuring the emulator's latency");
    rows.push(Row {
        what: "emulator latency at rtt=0 (ping p50)".to_owned(),
        setting: ms(Duration::ZERO),
        measured: format!("{} through it, {} over loopback", ms(e.through_link), ms(e.loopback)),
        ratio: format!("+{}", ms(e.added)),
    });

    let widths = [
        rows.iter().map(|r| r.what.len()).max().unwrap_or(0),
        rows.iter().map(|r| r.setting.len()).max().unwrap_or(0),
        rows.iter().map(|r| r.measured.chars().count()).max().unwrap_or(0),
    ];
    println!(
        "{:<w0$}  {:<w1$}  {:<w2$}  ratio",
        "what",
        "setting",
        "measured",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2]
    );
    for r in &rows {
        let pad = widths[2] - r.measured.chars().count();
        println!(
            "{:<w0$}  {:<w1$}  {}{}  {}",
            r.what,
            r.setting,
            r.measured,
            " ".repeat(pad),
            r.ratio,
            w0 = widths[0],
            w1 = widths[1]
        );
    }
    if quick {
        println!("(--test: brief measurements, figures not meaningful)");
    }
}
