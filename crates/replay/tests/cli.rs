//! `credtrail-replay` as people run it: what it prints, its exit codes, and
//! one error line for what it cannot do.

use std::process::Command;

const REPLAY: &str = env!("CARGO_BIN_EXE_credtrail-replay");
const SU_LIKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/su-like");

#[test]
fn verify_says_what_it_proved_and_errors_are_one_line() {
    let o = Command::new(REPLAY)
        .args(["--verify", SU_LIKE])
        .output()
        .unwrap();
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{stdout}");
    assert!(
        stdout.contains(": OK (every listed file, by size and sha256, enrichment recomputed)"),
        "{stdout}"
    );

    let o = Command::new(REPLAY)
        .arg("/nonexistent/capture")
        .output()
        .unwrap();
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("credtrail-replay: error: cannot open directory /nonexistent/capture"),
        "{stderr}"
    );
}
