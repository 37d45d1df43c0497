//! `credtrail-workload` as tests and the demo run it.

use std::os::unix::process::CommandExt;
use std::process::Command;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_credtrail-workload");

#[test]
fn refuses_to_run_unprivileged_with_one_line() {
    let mut cmd = Command::new(WORKLOAD);
    cmd.args(["su-like", "--uid", "4242"]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "credtrail-workload: error: must run as root: it changes credentials from root downwards"
    );
    // `noop` (a setuid copy's body) runs as anyone.
    let mut cmd = Command::new(WORKLOAD);
    cmd.arg("noop");
    // SAFETY: as above.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    assert!(cmd.status().unwrap().success());
}
