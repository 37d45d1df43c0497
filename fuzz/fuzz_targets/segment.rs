#![no_main]

// parquet-rs and polars-parquet panic on some crafted metadata (upstream);
// credtrail's reader turns such a panic into an error (`guard` in
// capture.rs). libfuzzer-sys's panic hook would abort before that, so it is
// replaced by a silent one: a panic that escapes credtrail's reader still
// unwinds out of the target and is reported as a crash.
static QUIET: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    credtrail_recorder::fuzzing::segment(data)
});
