//! One round trip per transport and format, for Multiply and a 1 KiB Echo,
//! against servers in this process on loopback (pinned to CPU 1, the
//! client to CPU 0, when there are two). Ids:
//! `{workload}/{format}/{transport}/call`. Every reply is decoded and a
//! verified round trip is asserted before timing.

#![allow(clippy::unwrap_used, missing_docs)] // benches fail loudly by design

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use wirebench_formats::dataset::DEFAULT_SEED;
use wirebench_formats::{Dataset, Format, FormatId, FormatVisitor, Workload};
use wirebench_transports::{
    Address, Client, ClientConfig, Endpoint, Framework, FrameworkClient, Server, ServerConfig, Transport,
    TransportKind, TransportVisitor,
};

type Group<'a, 'c> = &'a mut BenchmarkGroup<'c, WallTime>;

struct Setup<'a, 'c> {
    endpoint: &'a Endpoint,
    client_rt: &'a tokio::runtime::Runtime,
    group: Group<'a, 'c>,
    data: &'a Dataset,
}

struct ForFormat<'a, 'c, C> {
    client: &'a C,
    kind: TransportKind,
    rt: &'a tokio::runtime::Runtime,
    group: Group<'a, 'c>,
    data: &'a Dataset,
}

impl<C: Client> FormatVisitor for ForFormat<'_, '_, C> {
    type Output = ();
    fn visit<F: Format>(self) {
        let method = self.data.workload.method();
        let native = F::prepare(&self.data.request());
        let client = self.client;
        let call = |scratch: &mut F::Scratch| {
            let request = F::encode_request(scratch, &native).unwrap().to_vec();
            async move {
                let reply = client.call(method, F::ID, &request).await.unwrap();
                black_box(F::decode_reply(method, &reply).unwrap().method());
            }
        };
        // A verified round trip first.
        self.rt.block_on(async {
            let mut scratch = F::Scratch::default();
            let request = F::encode_request(&mut scratch, &native).unwrap().to_vec();
            let reply = client.call(method, F::ID, &request).await.unwrap();
            self.data.verify(&F::decode_reply(method, &reply).unwrap()).unwrap();
        });
        let id = format!("{}/{}/call", F::NAME, self.kind);
        let rt = self.rt;
        self.group.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut scratch = F::Scratch::default();
                    let start = Instant::now();
                    for _ in 0..iters {
                        call(&mut scratch).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
}

impl TransportVisitor for Setup<'_, '_> {
    type Output = ();
    fn visit<T: Transport>(self) {
        let client = self.client_rt.block_on(T::connect(self.endpoint, &ClientConfig::default())).unwrap();
        for &format in FormatId::ALL {
            format.visit(ForFormat {
                client: &client,
                kind: T::KIND,
                rt: self.client_rt,
                group: &mut *self.group,
                data: self.data,
            });
        }
    }
    fn visit_framework<F: Framework>(self) {
        // Inside a LocalSet, as the harness's cells: a client that is not
        // Send (Cap'n Proto RPC) drives its connection with spawn_local.
        let local = tokio::task::LocalSet::new();
        let rt = self.client_rt;
        let client = local.block_on(rt, F::connect(self.endpoint, &ClientConfig::default())).unwrap();
        let native = F::prepare(&self.data.request());
        self.data.verify(&local.block_on(rt, client.call(&native)).unwrap()).unwrap();
        self.group.bench_function(format!("{}/{}/call", F::FORMAT, F::KIND), |b| {
            b.iter_custom(|iters| {
                local.block_on(rt, async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(client.call(&native).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
}

fn pin(cpus: &[usize]) {
    let _ = wirebench::affinity::pin_current_thread(cpus);
}

fn rpc(c: &mut Criterion) {
    let split = wirebench::affinity::usable_cpus().ok().and_then(|cpus| wirebench::affinity::default_split(&cpus));
    let server_cpus = split.as_ref().map(|s| s.1.clone());
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || {
            if let Some(cpus) = &server_cpus {
                pin(cpus);
            }
        })
        .build()
        .unwrap();
    if let Some((client, _)) = &split {
        pin(client);
    }
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Broker rows need their daemon: the matrix (`wirebench run`) measures them.
    let servers: Vec<Server> = TransportKind::ALL
        .iter()
        .filter(|kind| kind.broker().is_none())
        .map(|&kind| {
            let address = match kind {
                TransportKind::Unix => Address::Unix(dir.path().join("rpc.sock")),
                TransportKind::Inproc => Address::InProc,
                _ => Address::Inet("127.0.0.1:0".parse().unwrap()),
            };
            server_rt.block_on(wirebench_transports::serve_kind(kind, &address, ServerConfig::default())).unwrap()
        })
        .collect();
    for workload in [Workload::Multiply, Workload::Echo { size: 1024 }] {
        let data = Dataset::generate(workload, DEFAULT_SEED);
        // Ids read {workload}/{format}/{transport}/call.
        let mut group = c.benchmark_group(workload.to_string());
        group
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .sample_size(10)
            .nresamples(5_000);
        for server in &servers {
            let endpoint = server.endpoint().clone();
            endpoint.transport.visit(Setup {
                endpoint: &endpoint,
                client_rt: &client_rt,
                group: &mut group,
                data: &data,
            });
        }
        group.finish();
    }
    drop(servers);
}

criterion_group!(benches, rpc);
criterion_main!(benches);
