//! Replays the fuzzers' seeds and every input that once crashed a parser
//! (`fuzz/regressions/TARGET/`, filled by `scripts/fuzz`): none may panic.

use credtrail_capture::fuzzing;
use credtrail_testkit::replay_fuzz_inputs as replay;

#[test]
fn manifest_inputs() {
    replay("manifest", fuzzing::manifest);
}

#[test]
fn checkpoint_inputs() {
    replay("checkpoint", fuzzing::checkpoint);
}

#[test]
fn segment_inputs() {
    replay("segment", fuzzing::segment);
}

#[test]
fn bounds_inputs() {
    replay("bounds", fuzzing::bounds);
}

#[test]
fn segment_location_inputs() {
    replay("segment_location", fuzzing::segment_location);
}
