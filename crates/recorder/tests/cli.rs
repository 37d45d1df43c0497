//! Command-line behaviour that needs no BPF.

use std::os::unix::process::CommandExt;
use std::process::Command;

const RECORD: &str = env!("CARGO_BIN_EXE_credtrail-record");

#[test]
fn without_privileges_says_what_is_missing() {
    let mut cmd = Command::new(RECORD);
    cmd.args(["--print", "json", "--duration", "1"]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Run as nobody, with no capabilities.
        cmd.uid(65534).gid(65534);
    }
    let o = cmd.output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
}

#[test]
fn nothing_to_do_is_an_error() {
    let o = Command::new(RECORD).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("--out DIR"), "{err}");
}

#[test]
fn bad_ring_buffer_size_is_refused_by_the_parser() {
    let o = Command::new(RECORD)
        .args(["--print", "json", "--ring-buffer-mib", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("power of two"), "{err}");
}
