//! Root tests of `credtrail-record -- COMMAND`: only the command's process
//! tree is recorded (the host's own changes meanwhile are absent, exactly),
//! a container it starts is part of it, its exit status is the recorder's,
//! and `credtrail-replay --stable` prints the same bytes for two runs on
//! different host names, time zones and pids.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use credtrail_capture::Capture;
use credtrail_testkit::{
    IMAGE, bpf_available, one_error_line, podman_ready, podman_run_argv, record_bin, replay_bin,
    serial, storm, workload_bin,
};

/// Runs `credtrail-record --out DIR [extra] -- argv` to its end.
fn record(dir: &Path, extra: &[&str], argv: &[&str]) -> Output {
    let mut c = Command::new(record_bin());
    c.arg("--out").arg(dir).args(extra).arg("--").args(argv);
    c.stdin(Stdio::null()).output().unwrap()
}

fn pid_of(stdout: &[u8]) -> u32 {
    let line = String::from_utf8_lossy(stdout);
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    v["pid"].as_u64().unwrap() as u32
}

#[test]
fn only_the_commands_tree_is_recorded_while_the_host_changes_credentials() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    // The host keeps changing credentials the whole time.
    let host = storm(1, 8, 500).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The command lasts a second: the host's calls meanwhile are counted.
    let script = format!("{} su-like --uid 4242 && sleep 1", workload_bin());
    let out = record(&dir, &[], &["sh", "-c", &script]);
    let host_out = host.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = pid_of(&out.stdout);
    let storm_pid = pid_of(&host_out.stdout);
    let cap = Capture::open(&dir).unwrap();
    let events = cap.events().unwrap();
    // Exactly the command's one call: no row of the storm's.
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!((e.pid, e.syscall.as_str()), (pid, "setresuid"));
    assert_eq!((e.arg0, e.new_uid, e.ret), (4242, 4242, 0));
    let life = cap.lifecycle().unwrap();
    // The shell, the workload it forked, and sleep: never the storm.
    assert!(life.iter().all(|p| p.pid != storm_pid), "{life:#?}");
    assert!(
        life.iter().any(|p| p.kind == "exec" && p.pid == pid)
            && life.iter().any(|p| p.kind == "exit" && p.pid == pid)
    );
    let c = &cap.manifest.counters;
    assert!(
        c.outside_scope > 100,
        "the storm ({storm_pid}) ran during the recording: {c:?}"
    );
    assert_eq!((c.scope_full, c.lost()), (0, 0), "{c:?}");
    assert_eq!(cap.manifest.settings.get("command"), Some(&"sh".into()));
}

#[test]
fn the_exit_status_is_the_commands_and_a_command_that_cannot_start_is_one_line() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let out = record(&tmp.path().join("a"), &[], &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = record(&tmp.path().join("b"), &[], &["/nonexistent/program"]);
    let line = one_error_line(&out);
    assert!(
        line.contains("cannot start /nonexistent/program: No such file or directory"),
        "{line}"
    );
    // --user runs it as that user, switched before recording starts.
    let out = record(&tmp.path().join("c"), &["--user", "nobody"], &["id", "-u"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");
    let cap = Capture::open(&tmp.path().join("c")).unwrap();
    assert!(
        cap.events().unwrap().is_empty(),
        "the switch is not the command's"
    );
    let out = record(&tmp.path().join("d"), &["--user", "no-such-user"], &["id"]);
    assert!(one_error_line(&out).contains("no user \"no-such-user\""));
}

#[test]
fn a_container_the_command_starts_is_part_of_its_tree() {
    if !bpf_available() || !podman_ready() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    let out = record(
        &dir,
        &[],
        &podman_run_argv(&[IMAGE, "sh", "-c", "/bin/su nobody -c id"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("uid=65534(nobody)"));
    let events = Capture::open(&dir).unwrap().events().unwrap();
    let su = events
        .iter()
        .find(|e| e.comm == "su" && e.syscall == "setuid")
        .unwrap_or_else(|| panic!("su's setuid: {events:#?}"));
    assert_eq!((su.arg0, su.new_uid), (65534, 65534));
    assert!(su.container_id.is_some(), "{su:#?}");
    // runc set the container up: its calls are the tree's too.
    assert!(events.iter().any(|e| e.comm.starts_with("runc")));
}

/// `credtrail-replay DIR --print FORMAT --stable`.
fn stable(dir: &Path, format: &str) -> String {
    let o = Command::new(replay_bin())
        .arg(dir)
        .args(["--print", format, "--stable"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn stable_output_is_the_same_on_another_host_name_time_zone_and_pids() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Four threads racing through glibc's setxid broadcast, then an exec.
    let argv = [
        workload_bin(),
        "broadcast",
        "--threads",
        "4",
        "--uid",
        "5001",
    ];
    let first = tmp.path().join("first");
    let out = record(&first, &[], &argv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Other pids: a few hundred processes in between.
    for _ in 0..300 {
        Command::new("true").status().unwrap();
    }
    // Another host name (a UTS namespace) and time zone.
    let second = tmp.path().join("second");
    let script = format!(
        "hostname golden-other-host && exec {} --out {} -- {}",
        record_bin(),
        second.display(),
        argv.join(" ")
    );
    let o = Command::new("unshare")
        .args(["--uts", "sh", "-c", &script])
        .env("TZ", "Asia/Kathmandu")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (
        Capture::open(&first).unwrap(),
        Capture::open(&second).unwrap(),
    );
    assert_ne!(a.manifest.node_name, b.manifest.node_name);
    let first_pid = |c: &Capture| c.events().unwrap()[0].pid;
    assert_ne!(first_pid(&a), first_pid(&b));
    for format in ["compact", "json"] {
        let (x, y) = (stable(&first, format), stable(&second, format));
        assert_eq!(x, y, "{format}");
        assert_eq!(x.lines().count(), 4, "{x}");
    }
    let text = stable(&first, "compact");
    assert!(text.starts_with("setuid     pid 1"), "{text}");
    assert!(!text.contains(&a.manifest.node_name));
}
