//! Every saved fuzz input of what the live recorder parses (raw ring
//! buffer records, `--pods` JSON, container metadata), replayed.

use credtrail_recorder::fuzzing;
use credtrail_testkit::replay_fuzz_inputs as replay;

#[test]
fn pods_inputs() {
    replay("pods", fuzzing::pods);
}

#[test]
fn container_metadata_inputs() {
    replay("container_metadata", fuzzing::container_metadata);
}

#[test]
fn raw_record_inputs() {
    replay("raw_record", fuzzing::raw_record);
}
