//! What an analyst without root runs on a capture handed to them:
//! `credtrail-replay --inspect` and `--recover` say and do exactly what
//! `credtrail-record inspect` and `recover` do.

use std::path::Path;
use std::process::{Command, Output};

use credtrail_capture::Capture;
use credtrail_capture::manifest::CaptureState;
use credtrail_testkit::{crashed_capture, fixture, one_error_line, record_bin, replay_bin};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

#[test]
fn replay_inspect_prints_what_record_inspect_prints() {
    for name in ["su-like", "k8s-xwing-su"] {
        let dir = fixture(name);
        let d = dir.to_str().unwrap();
        let manifest = Capture::open(&dir).unwrap().manifest;
        let events = manifest.counters.events_written;
        for print in ["compact", "json", "tetragon"] {
            let record = run(record_bin(), &["inspect", d, "--print", print]);
            let replay = run(replay_bin(), &["--inspect", d, "--print", print]);
            assert!(record.status.success() && replay.status.success());
            assert_eq!(replay.stdout, record.stdout, "{name} {print}: stdout");
            assert_eq!(replay.stderr, record.stderr, "{name} {print}: stderr");
            // One line per stored event, and the summary names the capture.
            assert_eq!(
                replay.stdout.iter().filter(|&&b| b == b'\n').count() as u64,
                events
            );
            let summary = String::from_utf8(replay.stderr).unwrap();
            assert!(
                summary.starts_with(&format!("capture {d} (format v")),
                "{summary}"
            );
            if let Some(head) = &manifest.chain_head {
                assert!(summary.contains(&format!("chain head {head}")), "{summary}");
            }
        }
        // compact is the default, as for `credtrail-record inspect`.
        let default = run(replay_bin(), &["--inspect", d]);
        assert_eq!(default.stdout, run(record_bin(), &["inspect", d]).stdout);
    }
}

/// The manifest of a recovered capture, with what differs between two
/// crashes of the same rows left out: when the crash's last checkpoint and
/// the recovery were, and so the chain head (which covers them).
fn recovered_manifest(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    v["recovery"]["recovered_at"] = serde_json::Value::Null;
    v["recovery"]["last_checkpoint_ktime_ns"] = serde_json::Value::Null;
    v["chain_head"] = serde_json::Value::Null;
    v
}

/// What recover said, with the program, the folder and the chain head
/// (see above) named alike.
fn said(o: &Output, program: &str, dir: &Path) -> String {
    let text = String::from_utf8_lossy(&o.stderr)
        .replace(program, "PROGRAM")
        .replace(dir.to_str().unwrap(), "DIR");
    match text.split_once("chain head ") {
        Some((before, after)) => {
            assert_eq!(after.trim_end().len(), 64, "{after}");
            format!("{before}chain head H\n")
        }
        None => text,
    }
}

#[test]
fn replay_recover_seals_a_crashed_capture_as_record_recover_does() {
    let tmp = tempfile::tempdir().unwrap();
    let by_record = crashed_capture(&tmp.path().join("a"));
    let by_replay = crashed_capture(&tmp.path().join("b"));
    let record = run(record_bin(), &["recover", by_record.to_str().unwrap()]);
    let replay = run(replay_bin(), &["--recover", by_replay.to_str().unwrap()]);
    assert!(record.status.success() && replay.status.success());
    let replay_said = said(&replay, "credtrail-replay", &by_replay);
    assert_eq!(replay_said, said(&record, "credtrail-record", &by_record));
    assert!(
        replay_said.starts_with("PROGRAM: recovered DIR: 1 segment(s) sealed from checkpoints"),
        "{replay_said}"
    );
    assert_eq!(
        recovered_manifest(&by_replay),
        recovered_manifest(&by_record)
    );
    // Sealed: a reader takes it (the checks that a capture must be whole
    // pass), with the crash's rows; a second recover has nothing to do.
    let cap = Capture::open(&by_replay).unwrap();
    assert_eq!(cap.manifest.state, CaptureState::Recovered);
    assert_eq!(cap.events().unwrap().len(), 1);
    let again = run(replay_bin(), &["--recover", by_replay.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to recover"));

    // Object storage holds sealed captures only: one line, nothing fetched.
    let o = run(replay_bin(), &["--recover", "s3://bucket/node=n/c"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(one_error_line(&o).contains("--recover seals a capture folder on this machine"));
}
