#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wirebench_fuzz::fuzz::<wirebench_formats::format::thrift::ThriftBinary>(data);
});
