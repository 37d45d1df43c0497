//! Root eBPF tests: real kernel, real processes, exact rows.
//!
//! They skip (with a message) only where the kernel cannot run BPF or we are
//! not root; under CI (CI=true) a skip is a failure, so they always run there.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use credtrail_capture::Capture;
use credtrail_capture::model::{Creds, Event};
use credtrail_capture::storage::micros;
use credtrail_workload::{Report, Step};

use crate::workload::{assert_step, run_workload};

use credtrail_testkit::{
    IMAGE, Recorder, bpf_available, podman, podman_container, podman_ready, serial, storm,
    workload_bin,
};

/// Compares one captured row with what the workload did and saw, as the
/// x86-64 steps are: no flags, the workload's comm.
fn assert_row(ev: &Event, step: &Step) {
    assert_step(ev, step);
    assert!(ev.event_flags.is_empty(), "{ev:#?}");
    assert_eq!(ev.comm, "credtrail-workl", "{ev:#?}");
}

fn creds(uid: [u32; 4], gid: [u32; 4]) -> (u32, u32, u32, u32, u32, u32, u32, u32) {
    (
        uid[0], uid[1], uid[2], uid[3], gid[0], gid[1], gid[2], gid[3],
    )
}

fn ids(c: &Creds) -> (u32, u32, u32, u32, u32, u32, u32, u32) {
    (
        c.uid, c.euid, c.suid, c.fsuid, c.gid, c.egid, c.sgid, c.fsgid,
    )
}

#[test]
fn records_every_credential_syscall_with_exact_rows() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(true, &[]);
    let report = run_workload(&["all"]);
    let (live, _stderr, cap, _tmp) = rec.stop();

    let pids: Vec<u32> = {
        let mut p: Vec<u32> = report.steps.iter().map(|s| s.pid).collect();
        p.dedup();
        p
    };
    let mut rows: Vec<Event> = cap
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| pids.contains(&e.pid))
        .collect();
    rows.sort_by_key(|e| e.ktime_ns);
    assert_eq!(
        rows.len(),
        report.steps.len(),
        "one row per call: {rows:#?}"
    );

    // The single-threaded steps come first and in order; the broadcast
    // child's four rows follow in whatever order its threads ran.
    let (single, broadcast): (Vec<&Step>, Vec<&Step>) = report
        .steps
        .iter()
        .partition(|s| s.pid == report.steps[0].pid);
    let (single_rows, bcast_rows): (Vec<&Event>, Vec<&Event>) =
        rows.iter().partition(|e| e.pid == report.steps[0].pid);
    assert_eq!(single.len(), 11);
    for (ev, step) in single_rows.iter().zip(&single) {
        assert_row(ev, step);
    }

    spot_check_single_thread_rows(&single_rows);
    check_broadcast_rows(&bcast_rows, &broadcast);
    check_identity(&rows, &single_rows, &bcast_rows, &cap, &report);
    check_live_json(&live, &rows, &pids);
    check_private_files(&cap);
}

/// The values the workload chose, independent of /proc.
fn spot_check_single_thread_rows(single_rows: &[&Event]) {
    let by = |i: usize| single_rows[i];
    assert_eq!(by(0).groups, Some(vec![1001, 1002, 1003]));
    assert_eq!(by(0).new_groups, vec![1001, 1002, 1003]);
    assert_eq!(
        ids(&by(1).new_creds()),
        creds([0, 0, 0, 0], [2001, 2002, 2003, 2002])
    );
    assert_eq!(
        ids(&by(2).new_creds()),
        creds([0, 0, 0, 0], [2011, 2012, 2012, 2012])
    );
    assert_eq!(
        ids(&by(3).new_creds()),
        creds([0, 0, 0, 0], [2021, 2021, 2021, 2021])
    );
    assert_eq!(
        (by(4).syscall.as_str(), by(4).ret, by(4).new_fsgid),
        ("setfsgid", 2021, 2031)
    );
    let net_raw = 1u64 << 13;
    assert_ne!(
        by(5).old_cap_effective & net_raw,
        0,
        "CAP_NET_RAW before capset"
    );
    assert_eq!(by(5).new_cap_effective & net_raw, 0, "CAP_NET_RAW dropped");
    assert_eq!(by(5).new_cap_permitted & net_raw, 0);
    assert_eq!(by(5).arg0 as u64 & net_raw, 0);
    assert_eq!((by(6).ret, by(6).new_fsuid), (0, 3001));
    assert_eq!(
        (
            by(7).arg0,
            by(7).arg1,
            by(7).new_euid,
            by(7).new_cap_effective
        ),
        (-1, 4002, 4002, 0)
    );
    let n = by(9).new_creds();
    assert_eq!((n.uid, n.euid, n.suid, n.fsuid), (1001, 1002, 1003, 1002));
    assert_eq!(by(9).new_cap_permitted, 0);
    assert_eq!(
        (by(10).syscall.as_str(), by(10).ret, by(10).changed),
        ("setuid", -1, false)
    );
    assert_eq!(by(10).new_uid, 1001);
}

/// glibc setxid broadcast: one row per thread, told apart by tid.
fn check_broadcast_rows(bcast_rows: &[&Event], broadcast: &[&Step]) {
    assert_eq!(broadcast.len(), 4);
    assert_eq!(bcast_rows.len(), 4);
    let mut want_tids: Vec<u32> = broadcast.iter().map(|s| s.tid).collect();
    let mut got_tids: Vec<u32> = bcast_rows.iter().map(|e| e.tid).collect();
    want_tids.sort();
    got_tids.sort();
    assert_eq!(got_tids, want_tids);
    for ev in bcast_rows {
        let step = broadcast.iter().find(|s| s.tid == ev.tid).unwrap();
        assert_row(ev, step);
        assert_eq!(
            (ev.arg0, ev.old_uid, ev.new_uid, ev.new_euid),
            (5001, 0, 5001, 5001)
        );
    }
}

/// Identity fields the kernel filled in, the counters, the hooks, and who
/// made each call.
fn check_identity(
    rows: &[Event],
    single_rows: &[&Event],
    bcast_rows: &[&Event],
    cap: &Capture,
    report: &Report,
) {
    // Identity fields the kernel filled in.
    let me = std::process::id();
    for ev in rows {
        assert_ne!(ev.ktime_ns, 0);
        assert_ne!(ev.cgroup_id, 0);
        assert_ne!(ev.pid_ns, 0);
        assert_eq!(ev.ns_pid, ev.pid, "host pid namespace");
        assert_eq!(ev.node_name, cap.manifest.node_name);
    }
    // The workload's parent is this test process (the broadcast child's
    // parent is the workload).
    assert!(single_rows.iter().all(|e| e.ppid == me));
    assert!(bcast_rows.iter().all(|e| e.ppid == report.steps[0].pid));

    // Nothing lost, and the counters add up.
    let c = &cap.manifest.counters;
    assert_eq!(c.lost(), 0, "{c:?}");
    assert_eq!(c.kernel_events, c.events_written, "{c:?}");
    assert_eq!(
        cap.manifest.state,
        credtrail_capture::manifest::CaptureState::Sealed
    );
    // 10 syscalls and 4 filtered ones at enter and exit, exec, fork,
    // exit, prepare_exec, io_uring requests, the switch-out check and the
    // sweep's task iterator; not the ia32 pair (opt-in).
    assert_eq!(cap.manifest.hooks.len(), 35, "{:?}", cap.manifest.hooks);
    assert!(!cap.manifest.settings.contains_key("missing_hooks"));
    for hook in [
        "syscalls/sys_enter_capset",
        "syscalls/sys_exit_prctl",
        "syscalls/sys_enter_unshare",
        "syscalls/sys_enter_setns",
        "syscalls/sys_enter_io_uring_register",
        "tp_btf/io_uring_submit_req",
        "sched/sched_process_exec",
        "tp_btf/sched_process_fork",
        "sched/sched_process_exit",
        "tp_btf/sched_prepare_exec",
    ] {
        assert!(cap.manifest.hooks.iter().any(|h| h == hook), "{hook}");
    }

    // Who did it: the workload binary, started by this test.
    let test_exe = std::env::current_exe().unwrap();
    for ev in single_rows {
        assert_eq!(ev.binary.as_deref(), Some(workload_bin()), "{ev:?}");
        assert_eq!(ev.arguments.as_deref(), Some("all"));
        assert_eq!(ev.flags.as_deref(), Some("execve clone"));
        assert_eq!(ev.parent_pid, Some(me));
        assert_eq!(ev.parent_binary.as_deref(), test_exe.to_str());
    }
    for ev in bcast_rows {
        assert_eq!(
            ev.arguments.as_deref(),
            Some("broadcast --threads 4 --uid 5001")
        );
        assert_eq!(
            ev.parent_exec_id, single_rows[0].exec_id,
            "child of the `all` process"
        );
    }
}

/// The live JSON lines are the same rows.
fn check_live_json(live: &str, rows: &[Event], pids: &[u32]) {
    let live_rows: Vec<serde_json::Value> = live
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| pids.contains(&(v["pid"].as_u64().unwrap() as u32)))
        .collect();
    assert_eq!(live_rows.len(), rows.len());
    for v in &live_rows {
        let ev = rows
            .iter()
            .find(|e| e.ktime_ns == v["ktime_ns"].as_u64().unwrap())
            .unwrap();
        assert_eq!(v["syscall"], ev.syscall.as_str());
        assert_eq!(v["tid"], ev.tid);
        assert_eq!(v["new_euid"], ev.new_euid);
        assert_eq!(v["ret"], ev.ret);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}

/// Files are private.
fn check_private_files(cap: &Capture) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cap.dir), 0o700);
    assert_eq!(mode(&cap.dir.join("manifest.json")), 0o600);
    for seg in &cap.manifest.segments {
        assert_eq!(mode(&cap.dir.join(&seg.file)), 0o600, "{}", seg.file);
    }
    // The /proc snapshot saw this test process.
    let procs = cap.processes().unwrap();
    assert!(
        procs.iter().any(|p| p.pid == std::process::id()),
        "snapshot lacks the test process"
    );
}

/// The storm's own setresuid rows in a capture.
/// The storm's calls the capture holds: rows, and folded rows' counts.
fn storm_rows(cap: &Capture, storm_pid: u32) -> u64 {
    cap.events()
        .unwrap()
        .into_iter()
        .filter(|e| e.pid == storm_pid && e.syscall == "setresuid")
        .map(|e| e.calls())
        .sum()
}

#[test]
fn storm_accounting_is_exact_and_segments_rotate() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // A deliberately tiny ring buffer: the storm overruns it, and every
    // overrun must be counted.
    let rec = Recorder::start(false, &["--rotate-seconds", "1", "--ring-buffer-mib", "1"]);
    let out = storm(2, 2, 0).output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issued = report["calls"].as_u64().unwrap();
    let storm_pid = report["pid"].as_u64().unwrap() as u32;
    // Let the recorder drain before stopping it.
    std::thread::sleep(Duration::from_millis(300));
    let (_live, _stderr, cap, _tmp) = rec.stop();
    let c = &cap.manifest.counters;
    let ours = storm_rows(&cap, storm_pid);
    assert!(issued > 1000, "storm issued only {issued} calls");
    assert!(
        c.ringbuf_full + c.folded_calls > 0,
        "a 1 MiB ring under a storm must fill (calls folded or lost): {c:?}"
    );
    // Serial tests on a quiet machine: every loss counted is the storm's.
    assert_eq!(
        ours + c.lost(),
        issued,
        "issued = captured (rows and folded counts) + counted drops ({c:?})"
    );
    assert_eq!(
        cap.manifest
            .lost_by_pid
            .get(&storm_pid)
            .copied()
            .unwrap_or(0),
        c.lost(),
        "{:?}",
        cap.manifest.lost_by_pid
    );
    assert_eq!(
        c.kernel_events,
        c.calls_written() + c.ringbuf_full + c.fold_full,
        "{c:?}"
    );
    // Rotation by time produced several complete segments.
    assert!(
        cap.manifest.segments_of("events").count() >= 2,
        "{:?}",
        cap.manifest.segments
    );
}

#[test]
fn a_storm_faster_than_encoding_waits_in_the_spool_file_and_none_is_lost() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // 1 MiB of spool in memory: a debug build's encoder falls behind a
    // 200,000 calls/s storm within a second, and the rest waits on disk.
    let rec = Recorder::start(false, &["--spool-mib", "1"]);
    let out = storm(2, 3, 100_000).output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issued = report["calls"].as_u64().unwrap();
    let storm_pid = report["pid"].as_u64().unwrap() as u32;
    let (_live, _stderr, cap, _tmp) = rec.stop();
    let c = &cap.manifest.counters;
    let ours = storm_rows(&cap, storm_pid);
    assert!(
        c.spool_spilled_bytes > 0,
        "the encoder never fell behind: {c:?}"
    );
    assert_eq!((c.ringbuf_full, c.lost()), (0, 0), "{c:?}");
    assert_eq!(ours, issued, "{c:?}");
    // Rows, or folded into rows once the spool held a backlog.
    assert_eq!(c.kernel_events, c.calls_written(), "{c:?}");
    // The spool's file was unlinked from the start: nothing is left.
    let names: Vec<_> = std::fs::read_dir(&cap.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

fn decode_exec_id(id: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(id)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn short_lived_process_is_identified() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(true, &[]);
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(workload_bin())
        .args(["su-like", "--uid", "4242"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = report["pid"].as_u64().unwrap() as u32;
    let (live, _stderr, cap, _tmp) = rec.stop();

    let rows: Vec<Event> = cap
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.pid == pid)
        .collect();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let ev = &rows[0];
    assert_eq!(
        (ev.syscall.as_str(), ev.arg0, ev.new_uid, ev.ret),
        ("setresuid", 4242, 4242, 0)
    );
    assert_eq!(ev.binary.as_deref(), Some(workload_bin()));
    assert_eq!(ev.arguments.as_deref(), Some("su-like --uid 4242"));
    let cwd_path = cwd.path().canonicalize().unwrap();
    assert_eq!(ev.cwd.as_deref(), cwd_path.to_str());
    assert_eq!(ev.flags.as_deref(), Some("execve clone"));
    assert_eq!(ev.parent_pid, Some(std::process::id()));
    let test_exe = std::env::current_exe().unwrap();
    assert_eq!(ev.parent_binary.as_deref(), test_exe.to_str());

    // exec_id is base64("node:ktime:pid") of the exec the lifecycle table holds.
    let decoded = decode_exec_id(ev.exec_id.as_deref().unwrap());
    let parts: Vec<&str> = decoded.rsplitn(3, ':').collect();
    assert_eq!(parts[0], pid.to_string(), "{decoded}");
    assert_eq!(parts[2], cap.manifest.node_name, "{decoded}");
    let ktime: u64 = parts[1].parse().unwrap();
    let life = cap.lifecycle().unwrap();
    let exec = life
        .iter()
        .find(|l| l.kind == "exec" && l.pid == pid)
        .expect("exec lifecycle row");
    assert_eq!(exec.ktime_ns, ktime);
    assert_eq!(exec.filename, workload_bin());
    assert_eq!(exec.args, vec![workload_bin(), "su-like", "--uid", "4242"]);
    assert_eq!(exec.cwd, cwd_path.to_str().unwrap());
    // Whole microseconds, as stored.
    assert_eq!(
        ev.start_time,
        Some(micros(ktime as i64 + cap.manifest.realtime_offset_ns))
    );
    // The fork before it and the exit after it are recorded too.
    assert!(
        life.iter()
            .any(|l| l.kind == "fork" && l.pid == pid && l.ppid == std::process::id())
    );
    let exit = life
        .iter()
        .find(|l| l.kind == "exit" && l.pid == pid)
        .expect("exit row");
    assert_eq!(exit.exit_code, 0);
    assert_eq!(exit.uid, 4242, "credentials at exit");
    let c = &cap.manifest.counters;
    assert_eq!(c.lifecycle_lost(), 0, "{c:?}");
    assert_eq!(c.kernel_lifecycle, c.lifecycle_written, "{c:?}");

    // Tetragon output of the same event.
    let v = credtrail_pipeline::print::tetragon(ev);
    let k = &v["process_kprobe"];
    assert_eq!(k["function_name"], "__x64_sys_setresuid");
    assert_eq!(k["process"]["binary"], workload_bin());
    assert_eq!(k["process"]["exec_id"], ev.exec_id.as_deref().unwrap());
    assert_eq!(k["parent"]["pid"], std::process::id());
    assert_eq!(k["return"]["int_arg"], 0);
    assert_eq!(k["new_process_credentials"]["uid"], 4242);
    assert!(live.contains(ev.exec_id.as_deref().unwrap()));
}

#[test]
fn exec_of_a_setuid_binary_is_a_credential_event() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    use std::os::unix::process::CommandExt;
    // A setuid-root copy of the workload, run by nobody.
    let (_dir, suid) = credtrail_testkit::setuid_workload();

    let rec = Recorder::start(false, &[]);
    let out = Command::new(&suid)
        .arg("noop")
        .uid(65534)
        .gid(65534)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = report["pid"].as_u64().unwrap() as u32;
    let (_live, _stderr, cap, _tmp) = rec.stop();

    let rows: Vec<Event> = cap
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.pid == pid)
        .collect();
    let ev = rows
        .iter()
        .find(|e| e.syscall == "execve")
        .unwrap_or_else(|| panic!("no execve event: {rows:#?}"));
    assert_eq!(
        (ev.old_uid, ev.old_euid, ev.old_suid),
        (65534, 65534, 65534)
    );
    assert_eq!(
        (ev.new_uid, ev.new_euid, ev.new_suid, ev.new_fsuid),
        (65534, 0, 0, 0)
    );
    assert!(ev.changed);
    assert_eq!(ev.ret, 0);
    assert_eq!(ev.binary.as_deref(), suid.to_str());
    assert_eq!(ev.arguments.as_deref(), Some("noop"));
    assert_eq!(ev.flags.as_deref(), Some("execve rootcwd clone"));
    assert_eq!(ev.cwd.as_deref(), Some("/"));
    assert_eq!(ev.process_uid, Some(0), "euid of the new image");
}

#[test]
fn su_in_a_real_container_carries_container_and_pod_identity() {
    if !bpf_available() || !podman_ready() {
        return;
    }
    let _serial = serial();
    // CRI-O-style annotations, as a Kubernetes node's runtime would set them.
    let id = podman_container(
        "create",
        &[
            "--annotation",
            "io.kubernetes.pod.name=xwing",
            "--annotation",
            "io.kubernetes.pod.namespace=default",
            "--annotation",
            "io.kubernetes.pod.uid=8a0c9f1e-xwing",
            "--annotation",
            "io.kubernetes.container.name=spaceship",
            IMAGE,
            "sh",
            "-c",
            "cd /etc && /bin/su nobody -c id",
        ],
    );
    assert_eq!(id.len(), 64, "{id}");
    // Labels and the image id come from `kubectl get pods -o json` output.
    let pods = tempfile::NamedTempFile::new().unwrap();
    let pods_json = serde_json::json!({"items": [{
        "metadata": {"name": "xwing", "namespace": "default", "uid": "8a0c9f1e-xwing",
                      "labels": {"app.kubernetes.io/name": "xwing", "class": "xwing", "org": "alliance"}},
        "status": {"containerStatuses": [{
            "name": "spaceship", "containerID": format!("cri-o://{id}"),
            "image": "docker.io/tgraf/netperf:latest",
            "imageID": "docker.io/tgraf/netperf@sha256:8e86f744bfea165fd4ce68caa05abc96500f40130b857773186401926af7e9e6"}]}
    }]});
    std::fs::write(pods.path(), pods_json.to_string()).unwrap();

    // With the subjective check: the container's files are on overlayfs,
    // which runs its work under the mounter's credentials (override_creds),
    // and none of that may be reported (stop() fails on any unexplained).
    let rec = Recorder::start(
        false,
        &[
            "--pods",
            pods.path().to_str().unwrap(),
            "--subjective-check",
        ],
    );
    let out = podman(&["start", "--attach", &id]);
    let inspect_id = podman(&["inspect", "--format", "{{.Id}}", &id]);
    let (_live, _stderr, cap, _tmp) = rec.stop();
    podman(&["rm", "--force", &id]);
    assert!(out.contains("uid=65534(nobody)"), "{out}");
    let c = &cap.manifest.counters;
    assert!(c.returns_checked > 10_000, "{c:?}");
    assert_eq!(c.subjective_overrides, 0, "{c:?}");

    let rows: Vec<Event> = cap
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.container_id.as_deref() == Some(inspect_id.as_str()))
        .collect();
    let setuid = rows
        .iter()
        .find(|e| e.syscall == "setuid" && e.comm == "su")
        .unwrap_or_else(|| panic!("no setuid from su in the container: {rows:#?}"));
    assert_eq!(
        (setuid.arg0, setuid.old_uid, setuid.new_uid, setuid.ret),
        (65534, 0, 65534, 0)
    );
    assert!(
        rows.iter()
            .any(|e| e.syscall == "setgid" && e.arg0 == 65534)
    );
    check_pod_identity(setuid);

    // Offline: the capture holds the container's metadata.
    let containers = cap.containers().unwrap();
    let c = containers
        .iter()
        .find(|c| c.container_id == inspect_id)
        .expect("containers row");
    assert_eq!(c.pod_name.as_deref(), Some("xwing"));
    assert!(
        c.source.contains("config.json") && c.source.contains(pods.path().to_str().unwrap()),
        "{}",
        c.source
    );

    // The Tetragon view names the container as Tetragon does.
    let v = credtrail_pipeline::print::tetragon(setuid);
    let p = &v["process_kprobe"]["process"];
    assert_eq!(p["pod"]["container"]["id"], format!("cri-o://{inspect_id}"));
    assert_eq!(p["pod"]["container"]["name"], "spaceship");
    assert_eq!(p["pod"]["pod_labels"]["org"], "alliance");
    assert_eq!(p["docker"], &inspect_id[..31]);
    assert_eq!(p["pod"]["container"]["pid"], setuid.container_pid.unwrap());
}

/// The pod, container and image of su's setuid, from the runtime's
/// annotations and the pods file; and su as the process saw itself.
fn check_pod_identity(setuid: &Event) {
    assert_eq!(setuid.pod_namespace.as_deref(), Some("default"));
    assert_eq!(setuid.pod_name.as_deref(), Some("xwing"));
    assert_eq!(setuid.pod_uid.as_deref(), Some("8a0c9f1e-xwing"));
    assert_eq!(setuid.container_name.as_deref(), Some("spaceship"));
    // The pods file's `cri-o://` prefix (the cluster's view) beats podman's.
    assert_eq!(setuid.container_runtime.as_deref(), Some("cri-o"));
    assert_eq!(
        setuid.image_name.as_deref(),
        Some("docker.io/tgraf/netperf:latest")
    );
    assert!(
        setuid
            .image_id
            .as_deref()
            .unwrap()
            .ends_with("8e86f744bfea165fd4ce68caa05abc96500f40130b857773186401926af7e9e6")
    );
    assert_eq!(
        setuid.pod_labels,
        vec![
            "app.kubernetes.io/name=xwing",
            "class=xwing",
            "org=alliance"
        ]
    );
    // As the process sees itself inside the container.
    assert_eq!(setuid.binary.as_deref(), Some("/bin/su"));
    assert_eq!(setuid.arguments.as_deref(), Some("nobody -c id"));
    assert_eq!(setuid.cwd.as_deref(), Some("/etc"));
    assert_eq!(setuid.parent_binary.as_deref(), Some("/bin/sh"));
    // `sh -c '... && /bin/su ...'` execs su in place of the shell, the
    // container's first process: pid 1 inside, its parent the sh image.
    let cpid = setuid.container_pid.unwrap();
    assert_eq!(cpid, 1, "pid inside the container");
    assert_ne!(setuid.pid, 1, "host pid");
    assert_eq!(setuid.parent_pid, Some(setuid.pid), "exec without fork");
}
