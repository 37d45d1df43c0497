//! Replays the fuzzers' seeds and every input that once crashed a parser
//! (`fuzz/regressions/TARGET/`, filled by `scripts/fuzz`): none may panic.

use std::path::Path;

use credtrail_recorder::fuzzing;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut v = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for e in dir {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n != ".gitkeep") {
                v.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    v
}

fn replay(target: &str, f: fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no seeds for {target}");
    for (name, bytes) in all {
        // Every prefix too: truncated input is the commonest hostile case.
        for cut in [
            bytes.len(),
            bytes.len() / 2,
            bytes.len().saturating_sub(1),
            0,
        ] {
            let r = std::panic::catch_unwind(|| f(&bytes[..cut]));
            assert!(r.is_ok(), "{target} panicked on {name} cut at {cut}");
        }
    }
}

#[test]
fn manifest_inputs() {
    replay("manifest", fuzzing::manifest);
}

#[test]
fn checkpoint_inputs() {
    replay("checkpoint", fuzzing::checkpoint);
}

#[test]
fn pods_inputs() {
    replay("pods", fuzzing::pods);
}

#[test]
fn container_metadata_inputs() {
    replay("container_metadata", fuzzing::container_metadata);
}

#[cfg(feature = "bpf")]
#[test]
fn raw_record_inputs() {
    replay("raw_record", fuzzing::raw_record);
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
