//! The call modes as real cells of a real run (a `wirebench serve` child
//! process): oneway delivery counted exactly with nothing lost on the
//! TCP-based transports, K replies each verified with the first before the
//! last, pubsub through udp multicast with every delivery counted, and the
//! modes a transport cannot carry unsupported with the reason.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use wirebench_reports::model::{Cell, CellStatus};

fn cell<'a>(results: &'a wirebench_reports::Results, key: &str) -> &'a Cell {
    results.cells.get(key).unwrap_or_else(|| panic!("no cell {key}: {:?}", statuses(results)))
}

#[test]
fn every_mode_runs_on_the_transports_that_carry_it() {
    let (output, results) = run(
        "--mode rr,oneway,stream,pubsub --stream-replies 8 --subscribers 3 --formats json,protobuf \
         --transports tcp,unix,udp,http2,quic,inproc,grpc --workloads multiply,echo-1KiB --concurrency 1,4",
        0,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for cell in results.cells.values() {
        assert_ne!(cell.status, CellStatus::Failed, "{}: {:?}", cell.key, cell.error);
    }
    for workload in ["multiply", "echo-1KiB"] {
        for load in ["c1", "c4"] {
            for format in ["json", "protobuf"] {
                // oneway: every TCP-based transport delivers everything.
                for transport in ["tcp", "unix", "udp", "http2", "quic", "inproc"] {
                    let c = cell(&results, &format!("{workload}/{format}/{transport}/{load}/oneway"));
                    assert_eq!(c.status, CellStatus::Ok, "{}: {:?}", c.key, c.error);
                    assert_eq!(c.mode.kind, "oneway");
                    let m = c.metrics.as_ref().unwrap();
                    let o = m.oneway.as_ref().unwrap();
                    assert!(o.sent > 0, "{}", c.key);
                    if transport != "udp" {
                        assert_eq!((o.delivered, o.lost), (o.sent, 0), "{}", c.key);
                        assert_eq!(o.delivered_total, o.sent_total, "{}", c.key);
                    }
                    assert_eq!(o.sent - o.lost, o.delivered, "{}: loss is never hidden", c.key);
                    assert_eq!(m.calls, o.delivered);
                    assert_eq!(m.latency_kind, "send-to-receipt");
                    let l = o.latency.unwrap();
                    assert!(l.min > 0 && l.p50 <= l.p99 && l.p99 <= l.max, "{}: {l:?}", c.key);
                    assert!(o.clock.contains("CLOCK_MONOTONIC"));
                    assert_eq!(c.samples.len(), 3, "{}: exactly the planned sub-windows", c.key);
                    assert_eq!(c.samples.iter().map(|s| s.calls).sum::<u64>(), o.delivered, "{}", c.key);
                    assert!(c.histogram.is_some() && c.baseline.is_none());
                    assert_eq!(m.reply_bytes, 0, "no reply");
                }
                // stream: K replies each, first before last.
                for transport in ["tcp", "unix", "http2", "quic"] {
                    let c = cell(&results, &format!("{workload}/{format}/{transport}/{load}/stream8"));
                    assert_eq!(c.status, CellStatus::Ok, "{}: {:?}", c.key, c.error);
                    let m = c.metrics.as_ref().unwrap();
                    let s = m.stream.as_ref().unwrap();
                    assert_eq!(s.replies_per_stream, 8);
                    assert_eq!(s.replies, s.streams * 8, "{}", c.key);
                    assert!(s.streams > 0 && s.streams == m.calls);
                    assert!(s.first_reply.p50 <= s.last_reply.p50, "{}: {s:?}", c.key);
                    assert!(s.first_reply.min <= s.last_reply.min && s.first_reply.max <= s.last_reply.max);
                    assert_eq!(m.latency_kind, "last-reply");
                    assert!(c.histogram_first_reply.is_some());
                }
                // pubsub: udp multicast, every delivery to each of the 3.
                let c = cell(&results, &format!("{workload}/{format}/udp/{load}/pubsub3"));
                assert_eq!(c.status, CellStatus::Ok, "{}: {:?}", c.key, c.error);
                let m = c.metrics.as_ref().unwrap();
                let p = m.pubsub.as_ref().unwrap();
                assert_eq!((p.subscribers, p.expected), (3, p.messages * 3));
                assert_eq!(p.deliveries + p.lost, p.expected, "{}", c.key);
                assert_eq!(m.calls, p.deliveries);
                assert_eq!(m.latency_kind, "delivery");
                for t in ["tcp", "unix", "http2", "quic", "inproc"] {
                    let c = cell(&results, &format!("{workload}/{format}/{t}/{load}/pubsub3"));
                    assert_eq!(c.status, CellStatus::Unsupported, "{}", c.key);
                    assert!(c.error.as_deref().unwrap().contains("broker"), "{:?}", c.error);
                }
                for t in ["udp", "inproc"] {
                    let c = cell(&results, &format!("{workload}/{format}/{t}/{load}/stream8"));
                    assert_eq!(c.status, CellStatus::Unsupported, "{}", c.key);
                }
            }
            // The stock gRPC row: tonic's server streaming, no oneway.
            let c = cell(&results, &format!("{workload}/protobuf/grpc/{load}/stream8"));
            assert_eq!(c.status, CellStatus::Ok, "{}: {:?}", c.key, c.error);
            let c = cell(&results, &format!("{workload}/protobuf/grpc/{load}/oneway"));
            assert_eq!(c.status, CellStatus::Unsupported);
            assert!(c.error.as_deref().unwrap().contains("gRPC has no oneway"), "{:?}", c.error);
            // Request-response cells keep their keys of before modes.
            let rr = cell(&results, &format!("{workload}/json/tcp/{load}"));
            assert!(rr.mode.is_rr() && rr.baseline.is_some());
        }
    }
    // Raw floors only for request-response.
    assert!(results.cells.values().filter(|c| c.format == "raw").all(|c| c.mode.is_rr()));
    assert_eq!(results.transports["tcp"].family, "transport");
    assert_eq!(results.transports["grpc"].family, "framework");
    // The summary ranks request-response cells only.
    assert!(!stdout.contains("/oneway") && !stdout.contains("pubsub"), "{stdout}");
}

/// Oneway, server streaming and publish/subscribe through each real
/// broker: every oneway message served and counted, none lost; every
/// stream's K replies verified and in order; every subscriber gets every
/// published message, verified, none lost; a broker that is not installed
/// makes its cells unsupported with the install command.
#[test]
fn every_broker_carries_oneway_streams_and_fans_out_pubsub() {
    let (_, results) = run(
        "--mode oneway,stream,pubsub --stream-replies 8 --subscribers 3 --formats json,protobuf \
         --transports nats,rabbitmq,redis,mqtt --workloads multiply,echo-1KiB --concurrency 1,4",
        0,
    );
    for (broker, binary) in
        [("nats", "nats-server"), ("rabbitmq", "rabbitmq-server"), ("redis", "redis-server"), ("mqtt", "mosquitto")]
    {
        let installed = broker_installed(binary);
        for workload in ["multiply", "echo-1KiB"] {
            for format in ["json", "protobuf"] {
                for load in ["c1", "c4"] {
                    let c = cell(&results, &format!("{workload}/{format}/{broker}/{load}/oneway"));
                    if installed {
                        assert_eq!(c.status, CellStatus::Ok, "{}: {:?}", c.key, c.error);
                        let m = c.metrics.as_ref().unwrap();
                        let o = m.oneway.as_ref().unwrap();
                        assert!(o.sent > 0, "{}", c.key);
                        assert_eq!((o.delivered, o.lost, o.refused), (o.sent, 0, 0), "{}", c.key);
                        assert_eq!(o.delivered_total, o.sent_total, "{}", c.key);
                        assert_eq!(m.latency_kind, "send-to-receipt");
                    }
                    let c = cell(&results, &format!("{workload}/{format}/{broker}/{load}/stream8"));
                    if installed {
                        assert_eq!(c.status, CellStatus::Ok, "{}: {:?}", c.key, c.error);
                        let m = c.metrics.as_ref().unwrap();
                        let s = m.stream.as_ref().unwrap();
                        assert_eq!(s.replies_per_stream, 8);
                        assert!(s.streams > 0 && s.streams == m.calls, "{}", c.key);
                        assert_eq!(s.replies, s.streams * 8, "{}", c.key);
                        assert_eq!((m.errors, m.wrong_replies, m.timeouts), (0, 0, 0), "{}", c.key);
                        assert!(s.first_reply.p50 <= s.last_reply.p50, "{}: {s:?}", c.key);
                        assert_eq!(m.latency_kind, "last-reply");
                    } else {
                        assert_eq!(c.status, CellStatus::Unsupported, "{}", c.key);
                    }
                    let c = cell(&results, &format!("{workload}/{format}/{broker}/{load}/pubsub3"));
                    if !installed {
                        assert_eq!(c.status, CellStatus::Unsupported, "{}", c.key);
                        assert!(c.error.as_deref().unwrap().contains("apt-get install"), "{:?}", c.error);
                        continue;
                    }
                    assert_eq!(c.status, CellStatus::Ok, "{}: {:?}", c.key, c.error);
                    let m = c.metrics.as_ref().unwrap();
                    let p = m.pubsub.as_ref().unwrap();
                    assert!(p.messages > 0, "{}", c.key);
                    assert_eq!((p.subscribers, p.expected), (3, p.messages * 3), "{}", c.key);
                    assert_eq!((p.deliveries, p.lost), (p.expected, 0), "{}: a broker loses nothing", c.key);
                    assert_eq!(m.calls, p.deliveries);
                    assert_eq!((m.errors, m.wrong_replies, m.timeouts), (0, 0, 0), "{}", c.key);
                    assert_eq!(m.latency_kind, "delivery");
                    let l = &m.latency;
                    assert!(l.min > 0 && l.p50 <= l.p99 && l.p99 <= l.max, "{}: {l:?}", c.key);
                }
            }
        }
    }
}

#[test]
fn mode_counts_need_their_mode() {
    let dir = temp();
    for (flags, says) in [
        // A matrix of flags has only --mode's modes (the built-in ones have
        // slices of stream and pubsub, where these counts apply).
        ("--formats json --stream-replies 4", "--mode stream"),
        ("--formats json --subscribers 2", "--mode pubsub"),
        ("--mode stream --stream-replies 0", "--stream-replies"),
        ("--mode pubsub --subscribers 65", "from 1 to 64"),
        ("--mode rpc", "unknown mode"),
    ] {
        let mut args = vec!["--list"];
        args.extend(flags.split_whitespace());
        let output = command(&out_dir(&dir), &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags}: {stderr}");
        assert!(stderr.contains(says), "{flags}: {stderr}");
    }
    let output = command(
        &out_dir(&dir),
        &[
            "--list",
            "--mode",
            "oneway,stream",
            "--formats",
            "json",
            "--transports",
            "tcp",
            "--workloads",
            "multiply",
            "--concurrency",
            "1",
        ],
    )
    .output()
    .unwrap();
    let list = String::from_utf8_lossy(&output.stdout);
    assert_eq!(list.lines().collect::<Vec<_>>(), vec!["multiply/json/tcp/c1/oneway", "multiply/json/tcp/c1/stream16"]);
}
