//! The links a run crossed, for every report: each link's setting beside
//! what the run measured of it (RTT, loss, TCP throughput, the emulator's
//! own latency and CPU), what the emulator did during the cells, and the
//! server's machine as it described itself.
//!
//! A measured figure is marked against the bounds the link crate's own
//! accuracy tests hold it to (`docs/link.md`): RTT p50 within the larger
//! of 2% and 0.3 ms of the expected RTT, each direction's loss interval
//! holding the setting. Throughput is shown as a share of the rate, not
//! judged: TCP over a lossy or long link does not fill it, and that is the
//! link's behaviour, not the emulator's error.

use std::fmt::Write as _;

use crate::model::{LinkRecord, LinkValidation, Results, ServerEnvironment};

use super::text::{self, html as esc, md_cell};

/// The RTT's accuracy bound: the larger of this share of the expected
/// RTT and [`RTT_FLOOR_NS`].
const RTT_SHARE: f64 = 0.02;
/// See [`RTT_SHARE`].
const RTT_FLOOR_NS: f64 = 300_000.0;

/// How a measured figure stands against its setting.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Check {
    /// Within the bound.
    Within(String),
    /// Outside it.
    Off(String),
}

impl Check {
    fn text(&self) -> &str {
        match self {
            Check::Within(t) | Check::Off(t) => t,
        }
    }

    fn mark(&self) -> &'static str {
        match self {
            Check::Within(_) => "✓",
            Check::Off(_) => "✗",
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Check::Within(_) => "good",
            Check::Off(_) => "bad",
        }
    }
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.01 {
        format!("{p:.4}%")
    } else if p < 1.0 {
        format!("{p:.3}%")
    } else {
        format!("{p:.2}%")
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

fn bits(bps: f64) -> String {
    match bps {
        b if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.1} Mbit/s", b / 1e6),
        b => format!("{:.1} kbit/s", b / 1e3),
    }
}

/// The measured RTT against the expected one.
pub(crate) fn rtt_check(v: &LinkValidation) -> Check {
    let Some(p50) = v.rtt.p50_ns else {
        return Check::Off(format!("no reply to {} pings", v.rtt.sent));
    };
    let expected = v.rtt.expected_ns as f64;
    let bound = (expected * RTT_SHARE).max(RTT_FLOOR_NS);
    let off = p50 as f64 - expected;
    let text = format!(
        "p50 {} (expected {}, {}{}; p99 {}; {} of {} replies)",
        text::ns(p50),
        text::ns(v.rtt.expected_ns),
        if off >= 0.0 { "+" } else { "-" },
        text::ns(off.abs().round() as u64),
        v.rtt.p99_ns.map_or("-".into(), text::ns),
        v.rtt.received,
        v.rtt.sent
    );
    if off.abs() <= bound { Check::Within(text) } else { Check::Off(text) }
}

/// Each direction's loss against the setting.
pub(crate) fn loss_check(v: &LinkValidation) -> Check {
    let l = &v.loss;
    let holds = |d: &crate::model::LossDirectionCheck| d.low <= l.setting && l.setting <= d.high;
    let text = format!(
        "up {} of {} ({}–{}), down {} of {} ({}–{}) for a setting of {} each way",
        pct(l.up.rate),
        l.up.sent,
        pct(l.up.low),
        pct(l.up.high),
        pct(l.down.rate),
        l.down.sent,
        pct(l.down.low),
        pct(l.down.high),
        pct(l.setting)
    );
    if holds(&l.up) && holds(&l.down) { Check::Within(text) } else { Check::Off(text) }
}

/// TCP throughput as a share of the rate.
pub(crate) fn throughput_text(v: &LinkValidation) -> String {
    let t = &v.throughput;
    let share =
        t.setting_bps.map(|r| format!(", {:.1}% of the rate", 100.0 * t.wire_bps / r as f64)).unwrap_or_default();
    format!(
        "{} on the wire ({} goodput) over {:.1} s{share}; congestion control {}",
        bits(t.wire_bps),
        bits(t.goodput_bps),
        t.window_s,
        if t.congestion_control.is_empty() { "unknown" } else { &t.congestion_control }
    )
}

fn emulator_text(v: &LinkValidation) -> String {
    let e = &v.emulator;
    let per_packet = if v.forwarded_packets > 0 {
        format!(" ({:.2} µs per packet)", v.forwarder_cpu_us as f64 / v.forwarded_packets as f64)
    } else {
        String::new()
    };
    format!(
        "adds {} per round trip at zero delay ({} through it vs {} on loopback); forwarder CPU {} ms for {} packets{per_packet}; {} kernel drops",
        text::ns(e.added_ns),
        text::ns(e.through_link_ns),
        text::ns(e.loopback_ns),
        v.forwarder_cpu_us / 1000,
        v.forwarded_packets,
        v.device_drops
    )
}

fn setting_text(l: &LinkRecord) -> String {
    let mut parts = vec![format!("RTT {}", text::ns(l.rtt_ns))];
    if l.loss > 0.0 {
        parts.push(format!("loss {} each way", pct(l.loss)));
    }
    match (l.rate_bps, l.queue_bytes) {
        (Some(r), Some(q)) => parts.push(format!("{} with a {} KiB queue", bits(r as f64), q / 1024)),
        (Some(r), None) => parts.push(bits(r as f64)),
        _ => parts.push("no rate limit".into()),
    }
    if l.jitter_ns > 0 {
        parts.push(format!("jitter up to {} each way", text::ns(l.jitter_ns)));
    }
    parts.push(format!("{} client namespace{}", l.clients, if l.clients == 1 { "" } else { "s" }));
    parts.join(", ")
}

fn usage_text(l: &LinkRecord) -> Option<String> {
    let u = l.usage.as_ref()?;
    let cpu_share = if u.duration_s > 0.0 { 100.0 * u.forwarder_cpu_s / u.duration_s } else { 0.0 };
    let mut text = format!(
        "{} packets ({}) forwarded in {:.1} s, {} lost, {} dropped by the queue, {} by the memory bound, {} by the \
         kernel (emulator overload); departures late by {} on average, {} at most; forwarder CPU {:.2} s ({:.0}% of a \
         core)",
        u.forwarded_packets,
        bytes(u.forwarded_bytes),
        u.duration_s,
        u.lost_packets,
        u.queue_dropped,
        u.limit_dropped,
        u.device_drops,
        text::ns(u.late_mean_ns),
        text::ns(u.late_max_ns),
        u.forwarder_cpu_s,
        cpu_share
    );
    if u.faults > 0 {
        let _ = write!(text, "; {} unroutable, oversized or failed packets", u.faults);
    }
    if let Some(e) = &u.forwarder_error {
        let _ = write!(text, "; the forwarder stopped: {e}");
    }
    Some(text)
}

/// One line naming the links, for headers.
pub(crate) fn names(results: &Results) -> Option<String> {
    if results.links.is_empty() {
        return None;
    }
    let names: Vec<String> = results
        .links
        .iter()
        .map(|l| if l.name == l.spec { l.name.clone() } else { format!("{} ({})", l.name, l.spec) })
        .collect();
    Some(names.join(", "))
}

/// The header's line about the network.
pub(crate) fn header_html(results: &Results) -> String {
    match names(results) {
        Some(names) => format!(
            "<p class=\"meta\">Over an emulated link: <b>{}</b> · <a href=\"#links\">measured against the setting</a></p>",
            esc(&names)
        ),
        None => String::new(),
    }
}

/// The report's Links section.
pub(crate) fn html_section(results: &Results) -> String {
    let mut out = String::new();
    if results.links.is_empty() {
        out.push_str(
            "<p class=\"muted\">Client and server shared loopback (or a real network, with <code>--connect</code>): \
             no emulated link. <code>wirebench run --link wan</code> puts them on one.</p>",
        );
    } else {
        out.push_str(
            "<p class=\"help\">Each link was measured from its first client namespace before its cells ran: paced \
             UDP pings, paced loss probes counted each way (99% intervals), one TCP bulk transfer, and the \
             emulator's own latency at zero delay. ✓ within the bound the link crate's accuracy tests hold it to \
             (RTT p50 within the larger of 2% and 0.3 ms; loss interval holding the setting), ✗ outside it. Below \
             each: what the emulator did while the cells ran.</p><div class=\"scroll\"><table class=\"list links\">\
             <tr><th>link</th><th>setting</th><th>RTT</th><th>loss</th><th>TCP throughput</th><th>emulator</th></tr>",
        );
        for l in &results.links {
            let _ = write!(
                out,
                "<tr><th>{}<br><code>{}</code></th><td>{}</td>",
                esc(&l.name),
                esc(&l.spec),
                esc(&setting_text(l))
            );
            match (&l.validation, &l.validation_error) {
                (Some(v), _) => {
                    for check in [rtt_check(v), loss_check(v)] {
                        let _ =
                            write!(out, "<td class=\"{}\">{} {}</td>", check.class(), check.mark(), esc(check.text()));
                    }
                    let _ = write!(out, "<td>{}</td><td>{}</td>", esc(&throughput_text(v)), esc(&emulator_text(v)));
                }
                (None, Some(e)) => {
                    let _ = write!(out, "<td colspan=\"4\" class=\"bad\">validation failed: {}</td>", esc(e));
                }
                (None, None) => out.push_str("<td colspan=\"4\" class=\"muted\">not measured</td>"),
            }
            out.push_str("</tr>");
            if let Some(usage) = usage_text(l) {
                let _ = write!(
                    out,
                    "<tr><td></td><td colspan=\"5\" class=\"muted\">during the cells: {}</td></tr>",
                    esc(&usage)
                );
            }
        }
        out.push_str("</table></div>");
        out.push_str(
            "<p class=\"help\">Reading a linked report: every figure includes the link, so p50 is at least the RTT \
             for one round trip (more for a transport that needs several, or a payload that takes its \
             serialization time at the rate), calls/s at N in flight is at most N per RTT, and CPU per call is \
             unchanged by the delay itself. Compare transports on the same link, and one transport across links \
             (the chart below). Cells that cannot cross a link (unix, inproc) are unsupported, with the reason.</p>\
             <div class=\"controls\" id=\"links-controls\"></div><div id=\"links-charts\" class=\"js-target\"></div>",
        );
    }
    out
}

/// The server's machine, for the environment section.
pub(crate) fn server_html(s: &ServerEnvironment) -> String {
    format!(
        "<h3>The server's machine</h3><p class=\"help\">As the server described itself over the control connection \
         (with <code>--connect</code>, the other machine of the run).</p><table class=\"kv\"><tr><th>CPU</th><td>{}</td>\
         </tr><tr><th>cores</th><td>{}</td></tr><tr><th>OS</th><td>{}</td></tr><tr><th>kernel</th><td>{}</td></tr><tr>\
         <th>host</th><td>{}</td></tr><tr><th>wirebench</th><td>{}</td></tr></table>",
        esc(&s.cpu_model),
        s.cores,
        esc(&s.os),
        esc(&s.kernel),
        esc(&s.hostname),
        esc(&s.version)
    )
}

/// The Markdown summary's Links section (empty without links).
pub(crate) fn markdown(results: &Results) -> String {
    let mut out = String::new();
    if results.links.is_empty() {
        return out;
    }
    out.push_str(
        "### Links\n\nEvery cell below crossed an emulated link, measured against its setting before its cells \
         (✓ within the link crate's accuracy bound, ✗ outside it):\n\n| link | setting | RTT | loss | TCP throughput |\n\
         |---|---|---|---|---|\n",
    );
    for l in &results.links {
        let name = if l.name == l.spec {
            format!("`{}`", md_cell(&l.name))
        } else {
            format!("`{}` (`{}`)", md_cell(&l.name), md_cell(&l.spec))
        };
        match (&l.validation, &l.validation_error) {
            (Some(v), _) => {
                let (rtt, loss) = (rtt_check(v), loss_check(v));
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} {} | {} {} | {} |",
                    md_cell(&setting_text(l)),
                    rtt.mark(),
                    md_cell(rtt.text()),
                    loss.mark(),
                    md_cell(loss.text()),
                    md_cell(&throughput_text(v))
                );
            }
            (None, Some(e)) => {
                let _ =
                    writeln!(out, "| {name} | {} | validation failed: {} | | |", md_cell(&setting_text(l)), md_cell(e));
            }
            (None, None) => {
                let _ = writeln!(out, "| {name} | {} | not measured | | |", md_cell(&setting_text(l)));
            }
        }
    }
    out.push('\n');
    for l in &results.links {
        if let Some(v) = &l.validation {
            let _ = writeln!(out, "- `{}`: the emulator {}.", md_cell(&l.name), md_cell(&emulator_text(v)));
        }
        if let Some(u) = usage_text(l) {
            let _ = writeln!(out, "- `{}` during the cells: {}.", md_cell(&l.name), md_cell(&u));
        }
    }
    out.push('\n');
    out
}

/// The server's machine, for the Markdown summary's environment line.
pub(crate) fn server_line(results: &Results) -> Option<String> {
    let s = results.server_environment.as_ref()?;
    let e = &results.environment;
    let same = s.hostname == e.hostname && s.cpu_model == e.cpu_model && s.kernel == e.kernel;
    Some(if same {
        "server on the same machine".to_owned()
    } else {
        format!("server {} ({}, {} cores, kernel {})", s.hostname, s.cpu_model, s.cores, s.kernel)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EmulatorCheck, LossCheck, LossDirectionCheck, RttCheck, ThroughputCheck};

    fn validation(p50_ms: f64, loss_up: (f64, f64)) -> LinkValidation {
        let dir =
            |(low, high): (f64, f64)| LossDirectionCheck { sent: 20_000, received: 19_800, rate: 0.01, low, high };
        LinkValidation {
            rtt: RttCheck {
                expected_ns: 40_000_000,
                sent: 500,
                received: 500,
                p50_ns: Some((p50_ms * 1e6) as u64),
                p99_ns: Some(41_000_000),
                min_ns: None,
                max_ns: None,
            },
            loss: LossCheck { setting: 0.01, up: dir(loss_up), down: dir((0.008, 0.012)) },
            throughput: ThroughputCheck {
                setting_bps: Some(100_000_000),
                goodput_bps: 9e7,
                wire_bps: 9.5e7,
                bytes: 1,
                window_s: 1.0,
                congestion_control: "bbr".into(),
            },
            emulator: EmulatorCheck { through_link_ns: 60_000, loopback_ns: 35_000, added_ns: 25_000 },
            forwarder_cpu_us: 10,
            forwarded_packets: 100,
            device_drops: 0,
            elapsed_s: 4.0,
        }
    }

    #[test]
    fn rtt_is_judged_by_the_larger_of_two_percent_and_a_third_of_a_millisecond() {
        // 2% of 40 ms is 0.8 ms.
        assert!(matches!(rtt_check(&validation(40.7, (0.0, 1.0))), Check::Within(_)));
        assert!(matches!(rtt_check(&validation(40.9, (0.0, 1.0))), Check::Off(_)));
        let mut short = validation(0.0, (0.0, 1.0));
        short.rtt.expected_ns = 1_000_000;
        short.rtt.p50_ns = Some(1_290_000);
        assert!(matches!(rtt_check(&short), Check::Within(_)), "the 0.3 ms floor");
        short.rtt.p50_ns = None;
        assert!(matches!(rtt_check(&short), Check::Off(t) if t.contains("no reply")));
    }

    #[test]
    fn loss_is_judged_by_its_interval() {
        assert!(matches!(loss_check(&validation(40.0, (0.008, 0.012))), Check::Within(_)));
        assert!(matches!(loss_check(&validation(40.0, (0.011, 0.02))), Check::Off(_)));
        assert!(throughput_text(&validation(40.0, (0.0, 1.0))).contains("95.0% of the rate"));
    }
}
