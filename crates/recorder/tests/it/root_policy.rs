//! Root eBPF tests of `--policy`: Tetragon TracingPolicy files decide in
//! the kernel which credential events are recorded, and a capture of
//! everything replayed with the same policy keeps the same events.

use std::path::{Path, PathBuf};
use std::process::Command;

use credtrail_capture::Capture;
use credtrail_capture::model::Event;
use credtrail_testkit::{
    IMAGE, Recorder, bpf_available, podman, podman_container, podman_ready, replay_bin, serial,
    workload_bin,
};

/// The guide's policy, verbatim (a copy of Tetragon's example).
fn guide_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/policies/tetragon/process.credentials.changes.at.syscalls.yaml")
}
const GUIDE: &str = "process.credentials.changes.at.syscalls";

fn run(argv: &[&str]) -> u32 {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn host_pid_ns(cap: &Capture) -> u64 {
    cap.manifest.settings["host_pid_ns"].as_u64().unwrap()
}

/// Everything the kernel produced is written or left out by the policy.
fn assert_accounted(cap: &Capture) {
    let c = &cap.manifest.counters;
    assert_eq!(c.lost(), 0, "{c:?}");
    assert_eq!(
        c.kernel_events,
        c.events_written + c.policy_filtered + c.policy_pod_filtered,
        "{c:?}"
    );
}

#[test]
fn the_guides_policy_keeps_su_in_a_container_and_not_on_the_host() {
    if !bpf_available() || !podman_ready() {
        return;
    }
    let _serial = serial();
    let id = podman_container("create", &[IMAGE, "sh", "-c", "/bin/su nobody -c id"]);
    let policy = guide_policy();
    let rec = Recorder::start(false, &["--policy", policy.to_str().unwrap()]);
    let out = podman(&["start", "--attach", &id]);
    let host_su = run(&["su", "nobody", "-s", "/bin/sh", "-c", "true"]);
    let (_live, _stderr, cap, _tmp) = rec.stop();
    podman(&["rm", "--force", &id]);
    assert!(out.contains("uid=65534(nobody)"), "{out}");

    let events = cap.events().unwrap();
    let in_container = events
        .iter()
        .find(|e| e.comm == "su" && e.syscall == "setuid" && e.container_id.is_some())
        .unwrap_or_else(|| panic!("su's setuid in the container was not kept: {events:#?}"));
    assert_eq!(
        (in_container.arg0, in_container.new_uid, in_container.ret),
        (65534, 65534, 0)
    );
    // The applet's name was run; the file executed is busybox, as the
    // container sees it.
    assert_eq!(in_container.binary.as_deref(), Some("/bin/su"));
    assert_eq!(in_container.exe.as_deref(), Some("/bin/busybox"));
    assert!(
        events.iter().all(|e| e.policy.as_deref() == Some(GUIDE)),
        "{events:#?}"
    );
    // Pid NotIn host_ns: nothing from the host's pid namespace, so not the
    // host's su (which made the same calls).
    let host_ns = host_pid_ns(&cap);
    assert!(
        events.iter().all(|e| u64::from(e.pid_ns) != host_ns),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| e.pid == host_su), "{events:#?}");
    // The guide names the set*id calls: su's setgroups is not among them.
    assert!(
        !events.iter().any(|e| e.syscall == "setgroups"),
        "{events:#?}"
    );
    assert!(cap.manifest.counters.policy_filtered > 0);
    assert_accounted(&cap);
    let listed = &cap.manifest.settings["policies"][0];
    assert_eq!(listed["name"], GUIDE);
    assert_eq!(listed["sha256"].as_str().unwrap().len(), 64);
}

fn write_policy(dir: &Path, name: &str, kprobes: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n  kprobes:\n{kprobes}"),
    )
    .unwrap();
    path
}

#[test]
fn match_args_binaries_capability_changes_and_nopost_with_four_policies() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // setresuid(65534, ...) is not posted; any other setresuid is.
    let quiet = write_policy(
        tmp.path(),
        "quiet",
        "  - call: sys_setresuid\n    syscall: true\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"65534\"]\n      matchActions:\n      - action: NoPost\n    - matchActions:\n      - action: Post\n",
    );
    // Only setuid(0) and setgid(0), whatever the result.
    let root_only = write_policy(
        tmp.path(),
        "root-only",
        "  - call: sys_setuid\n    syscall: true\n    args:\n    - index: 0\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"0\"]\n  - call: __x64_sys_setgid\n    syscall: true\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"0\"]\n",
    );
    // capset calls that changed CAP_NET_RAW in the effective set.
    let net_raw = write_policy(
        tmp.path(),
        "net-raw-changed",
        "  - call: sys_capset\n    selectors:\n    - matchCapabilityChanges:\n      - type: Effective\n        operator: In\n        isNamespaceCapability: true\n        values: [CAP_NET_RAW]\n",
    );
    // setuid by a binary whose path ends in /su (decided in userspace).
    let su_only = write_policy(
        tmp.path(),
        "su-only",
        "  - call: sys_setuid\n    selectors:\n    - matchBinaries:\n      - operator: Postfix\n        values: [/su]\n",
    );
    let policy_args: Vec<&str> = [&quiet, &root_only, &net_raw, &su_only]
        .iter()
        .flat_map(|p| ["--policy", p.to_str().unwrap()])
        .collect();
    let rec = Recorder::start(false, &policy_args);
    let w = workload_bin();
    let setuid0 = run(&[w, "setuid", "--uid", "0"]);
    let setuid_nobody = run(&[w, "setuid", "--uid", "65534"]);
    let su = run(&["su", "nobody", "-s", "/bin/sh", "-c", "true"]);
    let capset = run(&[w, "capset-drop"]);
    let denied = run(&[w, "denied-setuid", "--uid", "65534"]);
    let su_like = run(&[w, "su-like", "--uid", "1000"]);
    let (_live, _stderr, cap, _tmp) = rec.stop();

    let pids = [setuid0, setuid_nobody, su, capset, denied, su_like];
    let rows: Vec<(u32, String, i64, i64, String)> = cap
        .events()
        .unwrap()
        .into_iter()
        // su changes credentials in a child it forks: rows of that child
        // count as su's.
        .filter(|e| pids.contains(&e.pid) || e.ppid == su)
        .map(|e| {
            (
                if e.ppid == su { su } else { e.pid },
                e.syscall,
                e.arg0,
                e.ret,
                e.policy.unwrap_or_default(),
            )
        })
        .collect();
    let net_raw_mask = 1i64 << 13;
    let full = cap.events().unwrap();
    let capset_row = full.iter().find(|e| e.pid == capset).expect("capset kept");
    assert_eq!(
        capset_row.old_cap_effective & !capset_row.new_cap_effective,
        net_raw_mask as u64
    );
    let expect = vec![
        (setuid0, "setuid".to_owned(), 0, 0, "root-only".to_owned()),
        (su, "setuid".to_owned(), 65534, 0, "su-only".to_owned()),
        (
            capset,
            "capset".to_owned(),
            capset_row.arg0,
            0,
            "net-raw-changed".to_owned(),
        ),
        // setresuid(65534) is NoPost; the refused setuid(0) is kept.
        (denied, "setuid".to_owned(), 0, -1, "root-only".to_owned()),
        (su_like, "setresuid".to_owned(), 1000, 0, "quiet".to_owned()),
    ];
    assert_eq!(
        rows, expect,
        "su's setgid and setgroups, setuid(65534) and setresuid(65534) are left out"
    );
    assert_accounted(&cap);
    let names: Vec<&str> = cap.manifest.settings["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quiet", "root-only", "net-raw-changed", "su-only"]);
}

/// What identifies one kept event across two recorders (their kernel
/// programs stamp times, and so exec ids, each on their own).
fn decision(e: &Event) -> String {
    format!(
        "{} {} {} {} {} {} {:?} {:?} {:?}",
        e.tid,
        e.syscall,
        e.arg0,
        e.arg1,
        e.arg2,
        e.ret,
        e.old_creds(),
        e.new_creds(),
        e.policy
    )
}

fn replay(args: &[&str]) -> String {
    let o = Command::new(replay_bin()).args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The events `credtrail-replay ARGS --print json` prints.
fn replay_events(args: &[&str]) -> Vec<Event> {
    let mut args = args.to_vec();
    args.extend(["--print", "json"]);
    replay(&args)
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            // `time` prints as RFC 3339; the row has nanoseconds.
            v["time"] = 0.into();
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

#[test]
fn live_with_a_policy_keeps_what_everything_replayed_with_it_keeps() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let policy = guide_policy();
    let policy = policy.to_str().unwrap();
    // Every kind of condition the kernel evaluates, on host calls.
    let tmp = tempfile::tempdir().unwrap();
    let mixed = write_policy(
        tmp.path(),
        "mixed",
        "  - call: commit_creds
    selectors:
    - matchBinaries:
      - {operator: In, values: [/usr/bin/su, /bin/su]}
      matchActions:
      - action: NoPost
    - matchArgs:
      - {index: 0, operator: GT, values: [5000, 6000]}
      - {index: 0, operator: LT, values: [9000]}
    - matchArgs:
      - {index: 2, operator: Mask, values: [0x1, 0x2]}
      matchCapabilities:
      - {type: Effective, operator: In, isNamespaceCapability: false, values: [CAP_SETUID]}
    - matchReturnArgs:
      - {index: 0, operator: NotEqual, values: [0]}
    - matchPIDs:
      - {operator: NotIn, values: [1]}
      matchNamespaces:
      - {namespace: User, operator: In, values: [host_ns]}
      matchCapabilityChanges:
      - {type: Permitted, operator: In, isNamespaceCapability: true, values: [CAP_NET_RAW, CAP_SYS_ADMIN]}
  - call: sys_setgroups
    selectors:
    - matchActions:
      - {action: Post, rateLimit: 1m, rateLimitScope: global}
",
    );
    let mixed = mixed.to_str().unwrap();
    let everything = Recorder::start(false, &[]);
    let filtered = Recorder::start(true, &["--policy", policy, "--policy", mixed]);
    // Each recorder records the other dropping its privileges, at
    // different times: the comparison is of everything else.
    let recorders = [everything.child.id(), filtered.child.id()];
    let w = workload_bin();
    // Inside a new pid namespace (kept) and on the host (left out).
    run(&["unshare", "--pid", "--fork", "--mount-proc", w, "all"]);
    run(&[
        "unshare", "--pid", "--fork", "su", "nobody", "-s", "/bin/sh", "-c", "true",
    ]);
    run(&[w, "all"]);
    run(&[w, "all"]);
    run(&["su", "nobody", "-s", "/bin/sh", "-c", "true"]);
    let (live, _, kept, t1) = filtered.stop();
    let (_, _, all, t2) = everything.stop();
    let (kept_dir, all_dir) = (t1.path().join("capture"), t2.path().join("capture"));
    let (kept_dir, all_dir) = (kept_dir.to_str().unwrap(), all_dir.to_str().unwrap());

    // The same decisions, event for event.
    let kept_events = kept.events().unwrap();
    let replayed = replay_events(&[all_dir, "--policy", policy, "--policy", mixed]);
    assert!(kept_events.len() >= 10, "{}", kept_events.len());
    // As sets: two recorders' rings may order calls made at the same
    // moment on different CPUs (the broadcast's threads) differently.
    let others = |events: &[Event]| {
        let mut d = events
            .iter()
            .filter(|e| !recorders.contains(&e.pid))
            .map(decision)
            .collect::<Vec<_>>();
        d.sort();
        d
    };
    assert_eq!(others(&kept_events), others(&replayed));
    assert!(all.events().unwrap().len() > kept_events.len() + 10);
    // What was printed live is what the capture replays, in every format.
    assert_eq!(live, replay(&[kept_dir, "--print", "json"]));
    for format in ["compact", "tetragon", "tetragon-compact"] {
        let a = replay(&[kept_dir, "--print", format]);
        assert_eq!(a.lines().count(), kept_events.len(), "{format}");
    }
    let by_policy = |name: &str| {
        kept_events
            .iter()
            .filter(|e| e.policy.as_deref() == Some(name))
            .count()
    };
    assert!(
        by_policy(GUIDE) >= 10 && by_policy("mixed") >= 5,
        "{kept_events:#?}"
    );
    // setgroups posts once a minute per thread and arguments: `all` ran
    // twice on the host, its second setgroups was held back.
    let c = &kept.manifest.counters;
    assert!(c.policy_rate_limited >= 1, "{c:?}");
    let tetragon = replay(&[kept_dir, "--print", "tetragon"]);
    for line in tetragon.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let event = v.get("process_kprobe").or(v.get("process_tracepoint"));
        let name = &event.expect(line)["policy_name"];
        assert!(name == GUIDE || name == "mixed", "{line}");
    }
    assert_accounted(&kept);
}

/// The kept events' (pid, syscall, policy), without the recorders' own.
fn kept_rows(events: &[Event], skip: &[u32]) -> Vec<(u32, String, String)> {
    events
        .iter()
        .filter(|e| !skip.contains(&e.pid))
        .map(|e| {
            (
                e.pid,
                e.syscall.clone(),
                e.policy.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn match_binaries_is_the_executed_file_and_follows_children_and_forks() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let w = std::fs::canonicalize(workload_bin()).unwrap();
    // The workload run by a symlink's name, and a copy of it elsewhere.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&w, &link).unwrap();
    let copy = tmp.path().join("copy");
    std::fs::copy(&w, &copy).unwrap();
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    // A shell started before recording (found in /proc), which waits for
    // `go` and then runs setgroups in a child.
    let go = tmp.path().join("go");
    let mut waiting = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "while [ ! -e {go} ]; do sleep 0.05; done; {w} setgroups; true",
            go = go.display(),
            w = w.display()
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let by_exe = write_policy(
        tmp.path(),
        "by-exe",
        &format!(
            "  - call: sys_setuid\n    selectors:\n    - matchBinaries:\n      - operator: In\n        values: [{}]\n",
            w.display()
        ),
    );
    let children = write_policy(
        tmp.path(),
        "children-of-sh",
        &format!(
            "  - call: sys_setresuid\n    selectors:\n    - matchBinaries:\n      - operator: In\n        followChildren: true\n        values: [{}]\n",
            sh.display()
        ),
    );
    let forks = write_policy(
        tmp.path(),
        "forks-of-waiting",
        &format!(
            "  - call: sys_setgroups\n    selectors:\n    - matchPIDs:\n      - operator: In\n        followForks: true\n        values: [{}]\n",
            waiting.id()
        ),
    );
    let args: Vec<&str> = [&by_exe, &children, &forks]
        .iter()
        .flat_map(|p| ["--policy", p.to_str().unwrap()])
        .collect();
    let everything = Recorder::start(false, &[]);
    let filtered = Recorder::start(false, &args);
    let recorders = [everything.child.id(), filtered.child.id()];
    let ws = w.to_str().unwrap();
    let by_link = run(&[link.to_str().unwrap(), "setuid", "--uid", "0"]);
    let by_copy = run(&[copy.to_str().unwrap(), "setuid", "--uid", "0"]);
    let direct_su_like = run(&[ws, "su-like", "--uid", "1000"]);
    let direct_setgroups = run(&[ws, "setgroups"]);
    // sh forks the workload (`; true` keeps sh from exec'ing it).
    let sh_cmd = format!("{ws} su-like --uid 1000; true");
    let under_sh = run(&["/bin/sh", "-c", &sh_cmd]);
    std::fs::write(&go, "").unwrap();
    waiting.wait().unwrap();
    let (_, _, kept, _t1) = filtered.stop();
    let (_, _, all, t2) = everything.stop();

    let kept_events = kept.events().unwrap();
    let rows = kept_rows(&kept_events, &recorders);
    // Children's pids are not known here: their parents are.
    let child_of = |parent: u32, syscall: &str| {
        all.events()
            .unwrap()
            .into_iter()
            .find(|e| e.ppid == parent && e.syscall == syscall)
            .unwrap_or_else(|| panic!("no {syscall} by a child of {parent}"))
    };
    let sh_child = child_of(under_sh, "setresuid");
    let waiting_child = child_of(waiting.id(), "setgroups");
    assert_eq!(
        sh_child.exe.as_deref(),
        Some(ws),
        "the executed file, not the name it was run by"
    );
    let link_row = all.events().unwrap().into_iter().find(|e| e.pid == by_link);
    let link_row = link_row.expect("the symlinked run's setuid");
    assert_eq!(link_row.binary.as_deref(), link.to_str());
    assert_eq!(link_row.exe.as_deref(), Some(ws));
    let expect = vec![
        (by_link, "setuid".to_owned(), "by-exe".to_owned()),
        (
            sh_child.pid,
            "setresuid".to_owned(),
            "children-of-sh".to_owned(),
        ),
        (
            waiting_child.pid,
            "setgroups".to_owned(),
            "forks-of-waiting".to_owned(),
        ),
    ];
    assert_eq!(
        rows, expect,
        "the copy's setuid ({by_copy}), the direct su-like ({direct_su_like}) and setgroups ({direct_setgroups}) are left out"
    );
    assert_accounted(&kept);
    // The full capture replayed with the same policies decides the same.
    let all_dir = t2.path().join("capture");
    let mut replay_args = vec![all_dir.to_str().unwrap()];
    replay_args.extend(&args);
    let replayed = replay_events(&replay_args);
    assert_eq!(kept_rows(&replayed, &recorders), expect);
}
