//! What `credtrail-record` says and refuses without BPF.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use credtrail_capture::CaptureError;
use credtrail_capture::{CaptureWriter, Rotation};
use credtrail_testkit::samples::{end, event, manifest};
use credtrail_testkit::{record_bin, shared_bin};

#[test]
fn without_privileges_says_what_is_missing() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = Command::new(if root {
        shared_bin(record_bin())
    } else {
        record_bin()
    });
    cmd.args(["--print", "json", "--duration", "1"]);
    if root {
        // Run as nobody, with no capabilities.
        cmd.uid(65534).gid(65534).current_dir("/");
    }
    let o = cmd.output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
}

#[test]
fn nothing_to_do_is_an_error() {
    let o = Command::new(record_bin()).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("--out DIR"), "{err}");
}

#[test]
fn bad_sweep_intervals_are_refused_by_the_parser() {
    for bad in ["-1", "abc", "90000"] {
        let o = Command::new(record_bin())
            .args(["--print", "json", "--sweep-interval", bad])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(
            err.contains("is not a number of seconds between 0 and 86400"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn bad_ring_buffer_size_is_refused_by_the_parser() {
    let o = Command::new(record_bin())
        .args(["--print", "json", "--ring-buffer-mib", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("power of two"), "{err}");
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Runs credtrail-record with `--out` and expects one clear error line.
fn record_error(out: &Path) -> String {
    let o = Command::new(record_bin())
        .arg("--out")
        .arg(out)
        .args(["--duration", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_owned()
}

#[test]
fn refuses_bad_output_directories_without_touching_them() {
    let tmp = tempfile::tempdir().unwrap();

    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"keep me").unwrap();
    let err = record_error(&file);
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert!(matches!(
        CaptureWriter::create(&file, manifest(), Rotation::default()),
        Err(CaptureError::NotADirectory { .. })
    ));

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let before = snapshot(&foreign);
    let err = record_error(&foreign);
    assert!(err.contains("not a credtrail capture"), "{err}");
    assert_eq!(snapshot(&foreign), before);

    let existing = tmp.path().join("existing");
    let w = CaptureWriter::create(&existing, manifest(), Rotation::default()).unwrap();
    w.finish(end()).unwrap();
    let before = snapshot(&existing);
    let err = record_error(&existing);
    assert!(err.contains("already holds a credtrail capture"), "{err}");
    assert_eq!(snapshot(&existing), before);

    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&foreign, &link).unwrap();
    let err = record_error(&link);
    assert!(err.contains("symbolic link"), "{err}");

    // Not writable: a path below a regular file can never be created.
    let err = record_error(&file.join("sub"));
    assert!(err.contains("a-file"), "{err}");
}

#[test]
fn inspect_names_the_broken_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    for i in 0..50 {
        w.push(&event(i)).unwrap();
    }
    let m = w.finish(end()).unwrap();
    let seg = dir.join(&m.segments_of("events").next().unwrap().file);
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
    let o = Command::new(record_bin())
        .arg("inspect")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("credtrail-record: error:") && last.contains("part-00000.parquet"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_node_name_that_is_no_folder_name_is_refused_before_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(record_bin())
        .arg("--out-root")
        .arg(tmp.path())
        .args(["--node-name", "../etc", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("\"../etc\"") && err.contains("--node-name"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn out_root_makes_no_folder_when_another_option_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("bad.yaml");
    std::fs::write(&policy, "kind: NotAPolicy\n").unwrap();
    let root = tmp.path().join("fleet");
    let o = Command::new(record_bin())
        .arg("--out-root")
        .arg(&root)
        .arg("--policy")
        .arg(&policy)
        .args(["--node-name", "node-a", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(!root.exists(), "{err}");
}
