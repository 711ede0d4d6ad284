//! Every format, every workload: requests and replies survive a round
//! trip, the server answers correctly, and every format decodes to the same
//! logical value as every other.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use wirebench_formats::dataset::{DEFAULT_SEED, Dataset, Expected};
use wirebench_formats::{
    Accessed, Batch, Format, FormatId, FormatVisitor, Method, OwnedRequest, Reply, ServerScratch, Service, Workload,
};

fn workloads() -> Vec<Workload> {
    vec![
        Workload::Multiply,
        Workload::Echo { size: 0 },
        Workload::Echo { size: 16 },
        Workload::Echo { size: 1024 },
        Workload::Echo { size: 300_000 },
        Workload::Digest { records: 0 },
        Workload::Digest { records: 1 },
        Workload::Digest { records: 100 },
        Workload::Digest { records: 1000 },
    ]
}

fn model_request(data: &Dataset) -> OwnedRequest<Batch> {
    match data.workload {
        Workload::Multiply => {
            let (a, b) = wirebench_formats::dataset::MULTIPLY_OPERANDS;
            OwnedRequest::Multiply { a, b }
        }
        Workload::Echo { .. } => OwnedRequest::Echo { payload: data.payload.clone() },
        Workload::Digest { .. } => OwnedRequest::Digest { batch: data.batch.clone() },
    }
}

fn expected_reply(data: &Dataset) -> Reply<'static> {
    match data.expected {
        Expected::Product(product) => Reply::Multiply { product },
        Expected::SamePayload => Reply::Echo { payload: data.payload.clone().into() },
        Expected::Digest(d) => Reply::Digest(d),
    }
}

struct RoundTrip<'a>(&'a Dataset);

impl FormatVisitor for RoundTrip<'_> {
    type Output = ();
    fn visit<F: Format>(self) {
        let data = self.0;
        let method = data.workload.method();
        let model = model_request(data);
        let native = F::prepare(&model);
        assert_eq!(F::to_model(native.clone()), model, "{}: prepare/to_model", F::NAME);

        // Request: encode, then decode to owned, twice through the same
        // scratch (reuse must not leak state between messages).
        let mut scratch = F::Scratch::default();
        let first = F::encode_request(&mut scratch, &native).unwrap().to_vec();
        let again = F::encode_request(&mut scratch, &native).unwrap().to_vec();
        assert!(first == again, "{}/{}: encoding is not deterministic", F::NAME, data.workload);
        let decoded = F::decode_request(method, &first).unwrap();
        assert_eq!(F::to_model(decoded), model, "{}/{}: request round trip", F::NAME, data.workload);

        // Reply round trip.
        let reply = expected_reply(data);
        let bytes = F::encode_reply(&mut scratch, &reply).unwrap().to_vec();
        assert_eq!(F::decode_reply(method, &bytes).unwrap(), reply, "{}/{}: reply", F::NAME, data.workload);

        // The server path answers what the service says.
        let service = Service::new();
        let mut server = ServerScratch::default();
        let served = wirebench_formats::serve(&service, &mut server, F::ID, method, &first).unwrap().to_vec();
        assert_eq!(F::decode_reply(method, &served).unwrap(), reply, "{}/{}: served", F::NAME, data.workload);
        // Through the format's own scratch too.
        let served = F::serve(&service, &mut scratch, method, &first).unwrap().to_vec();
        assert_eq!(F::decode_reply(method, &served).unwrap(), reply, "{}/{}: served", F::NAME, data.workload);

        // Zero-copy formats read the same values in place.
        if F::PROPERTIES.zero_copy {
            let accessed = F::access_request(method, &first).unwrap();
            let want = match &model {
                OwnedRequest::Multiply { a, b } => Accessed::Multiply { a: *a, b: *b },
                OwnedRequest::Echo { payload } => Accessed::Echo { payload },
                OwnedRequest::Digest { batch } => Accessed::Digest(wirebench_formats::Checksum::of_batch(batch)),
            };
            assert_eq!(accessed, want, "{}/{}: access", F::NAME, data.workload);
        } else {
            assert!(F::access_request(method, &first).is_err(), "{} claims no zero-copy access", F::NAME);
        }

        // The unvalidated in-place read, where the library offers one,
        // reads what the validated one does.
        // SAFETY: `first` was encoded by this format just above.
        let unchecked = unsafe { F::access_request_unchecked(method, &first) };
        if F::PROPERTIES.unvalidated_access {
            assert_eq!(unchecked.unwrap(), F::access_request(method, &first).unwrap(), "{}: unvalidated", F::NAME);
        } else {
            assert!(unchecked.is_err(), "{} claims no unvalidated access", F::NAME);
        }
    }
}

#[test]
fn every_format_round_trips_every_workload() {
    for workload in workloads() {
        let data = Dataset::generate(workload, DEFAULT_SEED);
        for format in FormatId::ALL {
            format.visit(RoundTrip(&data));
        }
    }
}

struct DecodeToModel<'a>(Method, &'a [u8]);
impl FormatVisitor for DecodeToModel<'_> {
    type Output = OwnedRequest<Batch>;
    fn visit<F: Format>(self) -> OwnedRequest<Batch> {
        F::to_model(F::decode_request(self.0, self.1).unwrap())
    }
}

struct Encode<'a>(&'a OwnedRequest<Batch>);
impl FormatVisitor for Encode<'_> {
    type Output = Vec<u8>;
    fn visit<F: Format>(self) -> Vec<u8> {
        F::encode_request(&mut F::Scratch::default(), &F::prepare(self.0)).unwrap().to_vec()
    }
}

/// Each format's bytes, decoded by that format, give one and the same
/// logical request, and the same digest.
#[test]
fn all_formats_decode_to_the_same_value() {
    let data = Dataset::generate(Workload::Digest { records: 250 }, DEFAULT_SEED);
    let model = model_request(&data);
    let decoded: Vec<_> = FormatId::ALL
        .iter()
        .map(|f| {
            let bytes = f.visit(Encode(&model));
            (f, f.visit(DecodeToModel(Method::Digest, &bytes)))
        })
        .collect();
    for (format, value) in &decoded {
        assert_eq!(value, &decoded[0].1, "{format} disagrees with {}", decoded[0].0);
        let OwnedRequest::Digest { batch } = value else { panic!("not a batch") };
        assert_eq!(wirebench_formats::Checksum::of_batch(batch), wirebench_formats::Checksum::of_batch(&data.batch));
    }
}

#[test]
fn encoded_sizes_differ_between_formats_but_not_between_runs() {
    let data = Dataset::generate(Workload::Digest { records: 100 }, DEFAULT_SEED);
    let model = model_request(&data);
    let sizes: Vec<usize> = FormatId::ALL.iter().map(|f| f.visit(Encode(&model)).len()).collect();
    let again: Vec<usize> = FormatId::ALL.iter().map(|f| f.visit(Encode(&model)).len()).collect();
    assert_eq!(sizes, again);
    // Packing must shrink Cap'n Proto; JSON must be the largest.
    let size = |f: FormatId| sizes[FormatId::ALL.iter().position(|&g| g == f).unwrap()];
    assert!(size(FormatId::CapnpPacked) < size(FormatId::Capnp));
    assert!(FormatId::ALL.iter().all(|&f| size(f) <= size(FormatId::Json)), "{sizes:?}");
}

#[test]
fn multiply_overflow_is_a_status_not_a_reply() {
    for &format in FormatId::ALL {
        let bytes = format.visit(Encode(&OwnedRequest::Multiply { a: i64::MAX, b: 3 }));
        let err =
            wirebench_formats::serve(&Service::new(), &mut ServerScratch::default(), format, Method::Multiply, &bytes)
                .unwrap_err();
        assert_eq!(err.code, wirebench_formats::Code::OutOfRange, "{format}: {err}");
    }
}

#[test]
fn registry_names_and_wire_ids_are_unique_and_round_trip() {
    let mut names: Vec<_> = FormatId::ALL.iter().map(|f| f.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), FormatId::ALL.len());
    for &f in FormatId::ALL {
        assert_eq!(FormatId::from_wire(f as u8), Some(f));
        assert_eq!(f.name().parse::<FormatId>(), Ok(f));
        assert_eq!(FormatId::from_grpc_subtype(f.grpc_subtype()), Some(f));
    }
    assert_eq!(FormatId::from_wire(0), None);
    assert!("xml".parse::<FormatId>().is_err());
}

mod properties {
    use proptest::prelude::*;
    use wirebench_formats::contract::{Attribute, Kind, Location};
    use wirebench_formats::{Batch, Checksum, FormatId, Method, OwnedRequest, Record};

    use super::{DecodeToModel, Encode};

    fn finite_f64() -> impl Strategy<Value = f64> {
        prop_oneof![any::<f64>().prop_filter("finite", |f| f.is_finite()), Just(0.0), Just(-0.0), Just(f64::MAX)]
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            (any::<u64>(), any::<u32>(), any::<i64>(), ".{0,24}", "\\PC{0,24}", 0usize..5),
            (finite_f64(), any::<f32>().prop_filter("finite", |f| f.is_finite()), any::<bool>()),
            proptest::collection::vec(".{0,12}", 0..4),
            proptest::collection::vec((".{0,8}", ".{0,8}"), 0..3),
            proptest::option::of((finite_f64(), finite_f64(), ".{0,12}")),
            proptest::collection::vec(any::<u8>(), 0..24),
        )
            .prop_map(
                |((id, user_id, ts, name, email, kind), (score, weight, active), tags, attrs, loc, fp)| Record {
                    id,
                    user_id,
                    timestamp_micros: ts,
                    name,
                    email,
                    kind: Kind::ALL[kind],
                    score,
                    weight,
                    active,
                    tags,
                    attributes: attrs.into_iter().map(|(key, value)| Attribute { key, value }).collect(),
                    location: loc.map(|(latitude, longitude, city)| Location { latitude, longitude, city }),
                    fingerprint: fp,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_batches_round_trip_in_every_format(records in proptest::collection::vec(record(), 0..6)) {
            let request = OwnedRequest::Digest { batch: Batch { records } };
            for &format in FormatId::ALL {
                let bytes = format.visit(Encode(&request));
                let back = format.visit(DecodeToModel(Method::Digest, &bytes));
                // -0.0 == 0.0 for PartialEq; compare checksums too, which see the bits.
                prop_assert_eq!(&back, &request, "{}", format);
                let (OwnedRequest::Digest { batch: a }, OwnedRequest::Digest { batch: b }) = (&back, &request) else {
                    unreachable!()
                };
                prop_assert_eq!(Checksum::of_batch(a), Checksum::of_batch(b), "{}", format);
            }
        }

        #[test]
        fn arbitrary_operands_and_payloads_round_trip(a in any::<i64>(), b in any::<i64>(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            for request in [OwnedRequest::Multiply { a, b }, OwnedRequest::Echo { payload: payload.clone() }] {
                for &format in FormatId::ALL {
                    let bytes = format.visit(Encode(&request));
                    prop_assert_eq!(format.visit(DecodeToModel(request_method(&request), &bytes)), request.clone(), "{}", format);
                }
            }
        }
    }

    fn request_method(request: &OwnedRequest<Batch>) -> Method {
        match request {
            OwnedRequest::Multiply { .. } => Method::Multiply,
            OwnedRequest::Echo { .. } => Method::Echo,
            OwnedRequest::Digest { .. } => Method::Digest,
        }
    }
}
