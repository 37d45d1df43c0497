//! `credtrail-workload` as tests and the demo run it.

use std::os::unix::process::CommandExt;
use std::process::Command;

use credtrail_testkit::shared_bin;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_credtrail-workload");

#[test]
fn refuses_to_run_unprivileged_with_one_line() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // As nobody, from a copy nobody can reach (a checkout may be 0700).
    let as_nobody = |cmd: &mut Command| {
        if root {
            cmd.uid(65534).gid(65534).current_dir("/");
        }
    };
    let mut cmd = Command::new(shared_bin(WORKLOAD));
    cmd.args(["su-like", "--uid", "4242"]);
    as_nobody(&mut cmd);
    let o = cmd.output().unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "credtrail-workload: error: must run as root: it changes credentials from root downwards"
    );
    // `noop` (a setuid copy's body) runs as anyone.
    let mut cmd = Command::new(shared_bin(WORKLOAD));
    cmd.arg("noop");
    as_nobody(&mut cmd);
    assert!(cmd.status().unwrap().success());
}
