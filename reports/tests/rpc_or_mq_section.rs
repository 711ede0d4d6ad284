//! The "RPC or MQ?" section and the call-mode table, rendered from a
//! fixture with broker-like cells: a broker's request-reply cell beside the
//! direct tcp cell (extra hop, broker CPU), oneway and pubsub throughput
//! beside request-response, and mode cells kept out of the rr grid.

#![allow(clippy::unwrap_used)]

mod common;

use wirebench_reports::model::{
    Cell, CellStatus, Latency, Mode, OnewayFigures, PubsubFigures, Results, StreamFigures, TransportInfo,
};

fn with_brokers() -> Results {
    let mut results = common::load("quick-slice.json");
    let tcp = results.cells["multiply/json/tcp/c1"].clone();
    assert_eq!(tcp.status, CellStatus::Ok);
    let tcp_m = tcp.metrics.clone().unwrap();
    results.transports.insert("nats".into(), TransportInfo { family: "broker".into(), ..Default::default() });
    // Request-reply through the broker: 40µs more at p50, broker CPU known.
    let mut rr = Cell { key: "multiply/json/nats/c1".into(), transport: "nats".into(), baseline: None, ..tcp.clone() };
    let m = rr.metrics.as_mut().unwrap();
    m.latency.p50 = tcp_m.latency.p50 + 40_000;
    m.calls_per_sec = 1000.0;
    m.broker_user_us_per_call = Some(3.0);
    m.broker_system_us_per_call = Some(1.5);
    results.cells.insert(rr.key.clone(), rr.clone());
    // Oneway: 4000 delivered/s, 4× rr.
    let mut oneway = Cell {
        key: "multiply/json/nats/c1/oneway".into(),
        mode: Mode { kind: "oneway".into(), replies: None, subscribers: None },
        ..rr.clone()
    };
    let m = oneway.metrics.as_mut().unwrap();
    m.oneway = Some(OnewayFigures {
        sent: 400,
        delivered: 400,
        lost: 0,
        sent_per_sec: 4000.0,
        delivered_per_sec: 4000.0,
        latency: Some(Latency { p50: 7_000, p99: 9_000, ..Default::default() }),
        clock: "one machine's CLOCK_MONOTONIC".into(),
        ..Default::default()
    });
    results.cells.insert(oneway.key.clone(), oneway);
    // Pubsub to 4 subscribers: 8000 deliveries/s.
    let mut pubsub = Cell {
        key: "multiply/json/nats/c1/pubsub4".into(),
        mode: Mode { kind: "pubsub".into(), replies: None, subscribers: Some(4) },
        ..rr.clone()
    };
    pubsub.metrics.as_mut().unwrap().pubsub = Some(PubsubFigures {
        subscribers: 4,
        messages: 200,
        deliveries: 800,
        expected: 800,
        lost: 0,
        messages_per_sec: 2000.0,
        deliveries_per_sec: 8000.0,
        latency: Latency { p50: 55_000, p99: 90_000, ..Default::default() },
    });
    results.cells.insert(pubsub.key.clone(), pubsub);
    // A stream cell on tcp, and an unsupported pubsub cell with its reason.
    let mut stream = Cell {
        key: "multiply/json/tcp/c1/stream8".into(),
        mode: Mode { kind: "stream".into(), replies: Some(8), subscribers: None },
        baseline: None,
        ..tcp.clone()
    };
    stream.metrics.as_mut().unwrap().stream = Some(StreamFigures {
        replies_per_stream: 8,
        streams: 10,
        replies: 80,
        replies_per_sec: 800.0,
        first_reply: Latency { p50: 11_000, ..Default::default() },
        last_reply: Latency { p50: 31_000, ..Default::default() },
    });
    results.cells.insert(stream.key.clone(), stream);
    let unsupported = Cell {
        key: "multiply/json/tcp/c1/pubsub4".into(),
        mode: Mode { kind: "pubsub".into(), replies: None, subscribers: Some(4) },
        status: CellStatus::Unsupported,
        error: Some("tcp: publish/subscribe needs a broker".into()),
        metrics: None,
        baseline: None,
        ..tcp
    };
    results.cells.insert(unsupported.key.clone(), unsupported);
    results
}

#[test]
fn the_section_sets_each_broker_beside_direct_tcp_and_the_modes_beside_rr() {
    let results = with_brokers();
    let p50 = results.cells["multiply/json/tcp/c1"].metrics.as_ref().unwrap().latency.p50;
    let html = wirebench_reports::render::html(&results).unwrap();
    let section = html.split("<section id=\"rpc-or-mq\">").nth(1).unwrap().split("</section>").next().unwrap();
    let row = section.split("<tr>").find(|r| r.contains("multiply/json/nats/c1</code>")).unwrap();
    assert!(row.contains("+40.0µs"), "the extra hop: {row}");
    assert!(row.contains("4.5 µs"), "broker CPU per call: {row}");
    let ratio = format!("{:.2}×", (p50 + 40_000) as f64 / p50 as f64);
    assert!(row.contains(&ratio), "{ratio} in {row}");
    let modes = section.split("<tr>").find(|r| r.contains("multiply/json/nats/c1</code></td><td>1000")).unwrap();
    assert!(modes.contains("oneway: 4000 delivered/s, 4.00× of rr"), "{modes}");
    assert!(modes.contains("pubsub4: 8000 deliveries/s, 8.00× of rr"), "{modes}");
    let tcp = section.split("<tr>").find(|r| r.contains("multiply/json/tcp/c1</code>")).unwrap();
    assert!(tcp.contains("stream8: 800 replies/s"), "{tcp}");

    // Mode cells have their own figures: no call latency for oneway.
    let table = html.split("<section id=\"modes\">").nth(1).unwrap().split("</section>").next().unwrap();
    let oneway = table.split("<tr>").find(|r| r.contains("nats/c1/oneway")).unwrap();
    assert!(oneway.contains("send to receipt: p50 7.0µs") && oneway.contains("400 sent, 400 delivered, 0 lost"));
    let stream = table.split("<tr>").find(|r| r.contains("tcp/c1/stream8")).unwrap();
    assert!(stream.contains("first reply: p50 11.0µs") && stream.contains("last reply: p50 31.0µs"), "{stream}");
    let gap = table.split("<tr>").find(|r| r.contains("tcp/c1/pubsub4")).unwrap();
    assert!(gap.contains("unsupported: tcp: publish/subscribe needs a broker"), "{gap}");

    // The rr grid's data holds no mode cell (they share its coordinates).
    let data = html.split("<script type=\"application/json\" id=\"data\">").nth(1).unwrap();
    let data = data.split("</script>").next().unwrap();
    assert!(!data.contains("/oneway") && !data.contains("/stream8") && !data.contains("/pubsub4"));

    let md = wirebench_reports::render::markdown(&results);
    assert!(md.contains("### RPC or MQ?") && md.contains("### Call modes"), "{md}");
    let line = md.lines().find(|l| l.starts_with("| `multiply/json/nats/c1` |") && l.contains("µs")).unwrap();
    assert!(line.contains("+40.0µs") && line.contains("4.5 µs"), "{line}");
}

#[test]
fn without_brokers_or_modes_the_section_says_so() {
    let results = common::load("quick-slice.json");
    let html = wirebench_reports::render::html(&results).unwrap();
    assert!(html.contains("No broker cells in this run"));
    assert!(html.contains("request-response cells only"));
    let md = wirebench_reports::render::markdown(&results);
    assert!(!md.contains("RPC or MQ?"), "nothing to say in the summary");
}
