//! Encode, decode to owned, and access in place (zero-copy formats, both
//! validated and, where the library offers it, unvalidated) for every
//! format and workload. Ids: `{workload}/{format}/{operation}`; throughput
//! in bytes of the encoded message. A round trip is asserted before
//! anything is timed.

#![allow(clippy::unwrap_used, missing_docs)] // benches fail loudly by design

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirebench_formats::dataset::DEFAULT_SEED;
use wirebench_formats::{Dataset, Format, FormatId, FormatVisitor, Workload};

struct Bench<'a, 'c> {
    c: &'c mut Criterion,
    data: &'a Dataset,
}

impl FormatVisitor for Bench<'_, '_> {
    type Output = ();
    fn visit<F: Format>(self) {
        let Bench { c, data } = self;
        let method = data.workload.method();
        let native = F::prepare(&data.request());
        let mut scratch = F::Scratch::default();
        let encoded = F::encode_request(&mut scratch, &native).unwrap().to_vec();
        // Round trip before timing.
        assert_eq!(F::to_model(F::decode_request(method, &encoded).unwrap()), data.request());

        let mut group = c.benchmark_group(format!("{}/{}", data.workload, F::NAME));
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .sample_size(10)
            .nresamples(5_000);
        group.bench_function("encode", |b| {
            b.iter(|| black_box(F::encode_request(&mut scratch, black_box(&native)).unwrap().len()))
        });
        group.bench_function("decode", |b| {
            b.iter(|| black_box(F::decode_request(method, black_box(&encoded)).unwrap()))
        });
        if F::PROPERTIES.zero_copy {
            F::access_request(method, &encoded).unwrap();
            group.bench_function("access", |b| {
                b.iter(|| black_box(F::access_request(method, black_box(&encoded)).unwrap()))
            });
        }
        if F::PROPERTIES.unvalidated_access {
            // SAFETY: `encoded` was produced by this format's encoder above.
            assert_eq!(
                unsafe { F::access_request_unchecked(method, &encoded) }.unwrap(),
                F::access_request(method, &encoded).unwrap()
            );
            group.bench_function("access-unvalidated", |b| {
                // SAFETY: as above.
                b.iter(|| black_box(unsafe { F::access_request_unchecked(method, black_box(&encoded)) }.unwrap()))
            });
        }
        group.finish();
    }
}

fn codecs(c: &mut Criterion) {
    for workload in Workload::defaults() {
        let data = Dataset::generate(workload, DEFAULT_SEED);
        for format in FormatId::ALL {
            format.visit(Bench { c: &mut *c, data: &data });
        }
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
