#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credtrail_recorder::fuzzing::bounds(data));
