//! Root eBPF tests of the paths beyond the x86-64 set*id family: the 32-bit
//! entry, prctl, user namespaces (unshare, clone, clone3, setns, a rootless
//! container) and io_uring personalities, and a kernel without one of the
//! newer tracepoints. Real kernel, real processes, exact rows.

use std::process::{Command, Stdio};

use credtrail_capture::Capture;
use credtrail_capture::model::creds::HOST_USERNS;
use credtrail_capture::model::userns::{Extent, UsernsRow};
use credtrail_capture::model::{Creds, Event};
use credtrail_workload::Report;

use credtrail_testkit::{
    IMAGE, Recorder, bpf_available, podman_container, podman_ready, query_bin, record_bin,
    rootless_userns_argv, serial, workload_bin,
};

use crate::workload::{
    Recorded, assert_step, assert_steps, record_workload, record_workload_with, rows_of,
    run_report, run_workload,
};

/// The capture's row of user namespace `inum` (the last: maps come after
/// the first sighting).
fn namespace(cap: &Capture, inum: u32) -> UsernsRow {
    cap.user_namespaces()
        .unwrap()
        .into_iter()
        .rfind(|u| u.userns == inum)
        .unwrap_or_else(|| panic!("no user_namespaces row for {inum}"))
}

/// `credtrail-query DIR became-root` as JSON rows.
fn became_root(cap: &Capture) -> Vec<serde_json::Value> {
    let out = Command::new(query_bin())
        .arg(&cap.dir)
        .args(["became-root", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scope_of(rows: &[serde_json::Value], pid: u32, syscall: &str) -> Option<String> {
    rows.iter()
        .find(|r| r["pid"] == pid && r["syscall"] == syscall)
        .map(|r| r["scope"].as_str().unwrap_or("null").to_owned())
}

#[test]
fn ia32_entry_calls_are_exact_rows_with_compat_syscalls() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // The per-syscall tracepoints never fire for the 32-bit entry: no call
    // rows, only the changes the detector found unexplained.
    let blind = record_workload_with(&[], &["ia32"], true);
    assert_eq!(blind.report.steps.len(), 6);
    assert!(
        blind.report.steps.iter().all(|s| s.ret >= 0),
        "{:#?}",
        blind.report
    );
    crate::root_unexplained::assert_unexplained_chain(&blind.rows, &blind.report.steps);

    let Recorded {
        cap,
        rows,
        report,
        guard: _guard,
    } = record_workload(&["--compat-syscalls"], &["ia32"]);
    let m = &cap.manifest;
    assert!(
        m.hooks.iter().any(|h| h == "tp_btf/sys_enter"),
        "{:?}",
        m.hooks
    );
    assert_eq!(m.settings.get("compat_syscalls"), Some(&true.into()));
    assert_eq!(m.counters.lost(), 0, "{:?}", m.counters);
    assert_steps(&rows, &report.steps);
    assert!(rows.iter().all(|e| e.abi == "ia32"));
    // The 16-bit calls are marked, their 0xffff arrived as -1.
    let uid16: Vec<bool> = rows.iter().map(|e| e.event_flags == ["uid16"]).collect();
    assert_eq!(uid16, [false, false, false, true, true, true]);
    assert_eq!(rows[3].args().collect::<Vec<_>>(), [-1, 4103, -1]);
    let names: Vec<(String, String)> = rows
        .iter()
        .map(|e| (e.call_name(), e.kernel_function()))
        .collect();
    let expect = [
        ("setgroups32", "__ia32_sys_setgroups"),
        ("setresuid32", "__ia32_sys_setresuid"),
        ("setuid32", "__ia32_sys_setuid"),
        ("setresuid", "__ia32_sys_setresuid16"),
        ("setuid", "__ia32_sys_setuid16"),
        ("setuid", "__ia32_sys_setuid16"),
    ];
    // Tetragon names the function it hooked: each must be a symbol of
    // this kernel.
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    for ((call, function), (want_call, want_function)) in names.iter().zip(expect) {
        assert_eq!(
            (call.as_str(), function.as_str()),
            (want_call, want_function)
        );
        assert!(
            kallsyms
                .lines()
                .any(|l| l.ends_with(&format!(" {function}"))),
            "{function} is not in /proc/kallsyms"
        );
    }
    // Regaining euid 0 through the 32-bit entry is host root.
    assert_eq!(rows[2].root_scope.as_deref(), Some("host"));
}

#[test]
fn prctl_credential_changes_are_rows_and_other_options_cost_none() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let Recorded {
        cap,
        rows,
        report,
        guard: _guard,
    } = record_workload(&[], &["prctl", "--names", "20000"]);
    assert_eq!(report.extra["set_name_calls"], 20000);
    assert_eq!(report.extra["ambient_is_set"], 1);
    // capset, then 8 prctl: nothing for 20,000 PR_SET_NAME or the query.
    assert_steps(&rows, &report.steps);
    assert_eq!(rows.len(), 9);
    let options: Vec<&str> = rows[1..]
        .iter()
        .map(|e| e.option.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(
        options,
        [
            "PR_CAP_AMBIENT_RAISE",
            "PR_CAP_AMBIENT_LOWER",
            "PR_CAP_AMBIENT_RAISE",
            "PR_CAP_AMBIENT_CLEAR_ALL",
            "PR_CAPBSET_DROP",
            "PR_SET_KEEPCAPS",
            "PR_SET_SECUREBITS",
            "PR_SET_NO_NEW_PRIVS",
        ]
    );
    let bind = 1u64 << credtrail_workload::paths::CAP_NET_BIND_SERVICE;
    assert_eq!(
        (rows[1].old_cap_ambient, rows[1].new_cap_ambient),
        (0, bind)
    );
    assert_eq!(rows[4].new_cap_ambient, 0);
    let mknod = 1u64 << credtrail_workload::paths::CAP_MKNOD;
    assert_eq!(rows[5].old_cap_bounding & mknod, mknod);
    assert_eq!(rows[5].new_cap_bounding & mknod, 0);
    assert_eq!((rows[6].old_securebits, rows[6].new_securebits), (0, 0x10));
    assert_eq!(
        (rows[7].old_securebits, rows[7].new_securebits),
        (0x10, 0x3)
    );
    assert_eq!(
        (rows[8].old_no_new_privs, rows[8].new_no_new_privs),
        (Some(false), Some(true))
    );
    assert!(rows[8].changed);
    // The filtered exits are not misses either.
    let c = &cap.manifest.counters;
    assert!(c.exit_without_enter < 1000, "{c:?}");
    assert_eq!(c.lost(), 0, "{c:?}");
}

/// A child's credentials as the kernel keeps them: level and owner of a
/// namespace created by host root.
fn in_child_namespace(mut c: Creds) -> Creds {
    c.userns_level = Some(1);
    c.userns_owner = Some(0);
    c
}

#[test]
fn clone_clone3_and_setns_into_user_namespaces_are_rows() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let Recorded {
        cap,
        rows,
        report,
        guard: _guard,
    } = record_workload(&[], &["userns"]);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for (ev, step) in rows[..2].iter().zip(&report.steps) {
        // The caller's credentials before, the child's after.
        let mut step = step.clone();
        step.after = in_child_namespace(step.after);
        assert_step(ev, &step);
        assert_eq!(ev.option.as_deref(), Some("CLONE_NEWUSER"));
        let ns = namespace(&cap, step.after.userns.unwrap());
        assert_eq!(ns.parent_userns, Some(HOST_USERNS));
        assert_eq!((ns.level, ns.owner_uid, ns.owner_gid), (1, 0, 0));
        assert!(ns.uid_map.is_empty() && ns.uid_extents == 0, "{ns:?}");
    }
    assert_eq!(rows[0].syscall, "clone");
    assert_eq!(rows[1].syscall, "clone3");
    // setns: the same caller, now in the first child's namespace with a
    // full capability set there (ids the namespace does not map read
    // 65534 from inside; the row keeps the host's).
    let setns = &rows[2];
    let step = &report.steps[2];
    assert_eq!(setns.syscall, "setns");
    assert_eq!(setns.args().collect::<Vec<_>>(), step.args);
    assert_eq!(setns.ret, 0);
    assert_eq!(setns.old_creds(), step.before);
    assert_eq!(setns.new_userns, report.steps[0].after.userns);
    assert_eq!(setns.new_userns, step.after.userns);
    assert_eq!(setns.new_cap_effective, step.after.cap_effective);
    assert_eq!((setns.new_uid, step.after.uid), (0, 65534));
    assert_eq!(setns.new_ns_uid, None, "unmapped in the namespace");
    let c = &cap.manifest.counters;
    assert!(c.kernel_user_namespaces >= 3, "{c:?}");
    assert_eq!(c.user_namespaces_ringbuf_full, 0);
}

#[test]
fn unshare_map_root_user_is_root_in_the_namespace_only() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(false, &[]);
    // As uid 1000, as a rootless user would: util-linux writes the maps.
    let argv = rootless_userns_argv(&[workload_bin(), "setuid", "--uid", "0"]);
    let report = run_report(Command::new(argv[0]).args(&argv[1..]));
    let (_, _, cap, _tmp) = rec.stop();
    let step = &report.steps[0];
    // setpriv, the unshare it exec'd and the workload unshare exec'd are
    // one process: setpriv's own calls come first.
    let rows: Vec<Event> = rows_of(&cap, step.pid)
        .into_iter()
        .skip_while(|e| e.syscall != "unshare")
        .collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let (unshare, setuid) = (&rows[0], &rows[1]);
    let inum = step.before.userns.unwrap();
    assert_eq!(unshare.syscall, "unshare");
    assert_eq!(unshare.option.as_deref(), Some("CLONE_NEWUSER"));
    assert_eq!(
        (unshare.old_uid, unshare.old_userns),
        (1000, Some(HOST_USERNS))
    );
    assert_eq!(unshare.new_userns, Some(inum));
    assert_eq!(
        (unshare.new_userns_level, unshare.new_userns_owner),
        (Some(1), Some(1000))
    );
    let ns = namespace(&cap, inum);
    let one = vec![Extent {
        first: 0,
        lower_first: 1000,
        count: 1,
    }];
    assert_eq!((&ns.uid_map, &ns.gid_map), (&one, &one));
    assert_eq!((ns.owner_uid, ns.parent_userns), (1000, Some(HOST_USERNS)));
    // setuid(0) inside: the argument is the namespace's id, the row keeps
    // the host's beside it.
    assert_eq!(
        (setuid.syscall.as_str(), setuid.arg0, setuid.ret),
        ("setuid", 0, 0)
    );
    assert_eq!(setuid.new_userns, Some(inum));
    assert_eq!((setuid.new_uid, setuid.new_euid), (1000, 1000));
    let local = setuid.new_ns_ids();
    assert_eq!(
        (local.uid, local.euid, local.gid, local.egid),
        (
            Some(step.after.uid),
            Some(step.after.euid),
            Some(step.after.gid),
            Some(step.after.egid)
        )
    );
    assert_eq!(step.after.uid, 0);
    assert_eq!(setuid.new_cap_effective, step.after.cap_effective);
    assert_eq!(setuid.root_scope, None, "already root in the namespace");
    // became-root: the unshare made uid 1000 root, in the namespace only.
    let answer = became_root(&cap);
    assert_eq!(
        scope_of(&answer, step.pid, "unshare").as_deref(),
        Some("namespace"),
        "{answer:#?}"
    );
}

#[test]
fn setuid_0_in_a_rootless_container_is_namespace_root_not_host_root() {
    if !bpf_available() || !podman_ready() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(false, &[]);
    let host = run_workload(&["regain-root", "--uid", "1000"]);
    let mount = |from: &str, to: &str| format!("{from}:{to}:ro");
    let out = podman_container(
        "run",
        &[
            "--rm",
            "--uidmap",
            "0:100000:65536",
            "--gidmap",
            "0:100000:65536",
            "-v",
            &mount(workload_bin(), "/credtrail-workload"),
            "-v",
            &mount("/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"),
            "-v",
            &mount("/lib64", "/lib64"),
            IMAGE,
            "/credtrail-workload",
            "regain-root",
            "--uid",
            "1000",
        ],
    );
    let inside: Report = serde_json::from_str(&out).unwrap();
    let (_, _, cap, _tmp) = rec.stop();

    // On the host: host root, exact rows.
    let rows = rows_of(&cap, host.steps[0].pid);
    assert_steps(&rows, &host.steps);
    assert_eq!(rows[1].root_scope.as_deref(), Some("host"));

    // In the container: ids 100000 higher on the host.
    let events = cap.events().unwrap();
    let rows: Vec<&Event> = events
        .iter()
        .filter(|e| e.binary.as_deref() == Some("/credtrail-workload"))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let inum = rows[0].new_userns.unwrap();
    for (ev, step) in rows.iter().zip(&inside.steps) {
        assert_eq!(ev.syscall, step.syscall);
        assert_eq!(ev.args().collect::<Vec<_>>(), step.args);
        assert_eq!(ev.ret, step.ret);
        assert!(ev.container_id.is_some());
        for (side, creds, local) in [
            ("old", ev.old_creds(), ev.old_ns_ids()),
            ("new", ev.new_creds(), ev.new_ns_ids()),
        ] {
            let seen = if side == "old" {
                &step.before
            } else {
                &step.after
            };
            let ids = [creds.uid, creds.euid, creds.suid, creds.fsuid];
            let want = [seen.uid, seen.euid, seen.suid, seen.fsuid];
            assert_eq!(ids, want.map(|i| i + 100_000), "{side} host ids: {ev:#?}");
            assert_eq!(
                [local.uid, local.euid, local.suid, local.fsuid],
                want.map(Some),
                "{side} namespace ids"
            );
            assert_eq!(creds.cap_effective, seen.cap_effective);
            assert_eq!(creds.userns, Some(inum));
            assert_eq!(seen.userns, Some(inum));
            assert_eq!(creds.userns_level, Some(1));
        }
    }
    assert_eq!((rows[1].syscall.as_str(), rows[1].arg0), ("setuid", 0));
    assert_eq!((rows[1].new_euid, rows[1].new_ns_euid), (100_000, Some(0)));
    assert_eq!(rows[1].root_scope.as_deref(), Some("namespace"));
    let ns = namespace(&cap, inum);
    let map = vec![Extent {
        first: 0,
        lower_first: 100_000,
        count: 65536,
    }];
    assert_eq!((&ns.uid_map, &ns.gid_map), (&map, &map));
    assert_eq!((ns.level, ns.parent_userns), (1, Some(HOST_USERNS)));
    // The runtime's call that created the namespace is a row too.
    assert!(
        events.iter().any(|e| e.new_userns == Some(inum)
            && e.old_userns == Some(HOST_USERNS)
            && ["unshare", "clone", "clone3", "setns"].contains(&e.syscall.as_str())),
        "no row creates or enters {inum}"
    );
    // became-root tells the two apart.
    let answer = became_root(&cap);
    assert_eq!(
        scope_of(&answer, host.steps[0].pid, "setuid").as_deref(),
        Some("host")
    );
    assert_eq!(
        scope_of(&answer, rows[1].pid, "setuid").as_deref(),
        Some("namespace"),
        "{answer:#?}"
    );
}

#[test]
fn io_uring_personality_registration_and_use_are_rows() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let Recorded {
        rows,
        report,
        guard: _guard,
        ..
    } = record_workload(&[], &["io-uring", "--uid", "4200"]);
    // Opened /etc/shadow with euid 4200: the personality's root credentials.
    assert!(report.extra["open_result"] >= 0, "{report:#?}");
    assert_steps(&rows, &report.steps);
    assert_eq!(rows.len(), 4);
    let options: Vec<&str> = rows
        .iter()
        .map(|e| e.option.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(
        options,
        [
            "IORING_REGISTER_PERSONALITY",
            "-",
            "IORING_OP_OPENAT",
            "IORING_UNREGISTER_PERSONALITY"
        ]
    );
    let id = rows[0].ret;
    assert!(id > 0);
    assert_eq!(rows[3].arg2, id, "unregisters the one registered");
    // The request ran as root on the host for a euid-4200 caller.
    let req = &rows[2];
    assert_eq!((req.old_euid, req.new_euid), (4200, 0));
    assert_eq!(req.arg1, 0x5eed, "user_data");
    assert_eq!(req.root_scope.as_deref(), Some("host"));
    assert_eq!(req.kernel_function(), "io_uring_submit_req");
}

#[test]
fn a_kernel_without_a_new_tracepoint_records_the_rest_and_says_so() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // In a private mount namespace, the tracepoint's tracefs folder is
    // hidden, as on a kernel without it: the recorder cannot attach there.
    let script = format!(
        "mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
         mount --bind {empty} /sys/kernel/tracing/events/syscalls/sys_enter_prctl
         exec {record} --out {dir} --duration 4",
        empty = empty.display(),
        record = record_bin(),
        dir = dir.display(),
    );
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !dir.join("manifest.json").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "recorder did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let st = Command::new(workload_bin())
        .args(["su-like", "--uid", "4343"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("no syscalls/sys_enter_prctl tracepoint")
                && l.contains("prctl credential changes will not be recorded")),
        "{stderr}"
    );
    let cap = Capture::open(&dir).unwrap();
    let missing = &cap.manifest.settings["missing_hooks"];
    assert_eq!(missing, &serde_json::json!(["syscalls/sys_enter_prctl"]));
    assert!(
        !cap.manifest
            .hooks
            .iter()
            .any(|h| h.contains("sys_enter_prctl"))
    );
    assert!(
        cap.manifest
            .hooks
            .iter()
            .any(|h| h.contains("sys_exit_prctl"))
    );
    // Everything else is recorded.
    assert!(
        cap.events()
            .unwrap()
            .iter()
            .any(|e| e.syscall == "setresuid" && e.arg0 == 4343 && e.ret == 0),
        "the su-like setresuid is missing"
    );
}
