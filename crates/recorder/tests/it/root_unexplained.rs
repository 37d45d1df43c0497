//! Root eBPF tests of the detector: credential changes that no hooked call
//! explains (here through the 32-bit entry, which the recorder does not
//! hook without --compat-syscalls) are found at the next switch-out of a
//! running process and by the sweep for a sleeping one, with their exact
//! credentials; and a long mixed storm of hooked changes yields none.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credtrail_capture::model::Event;
use credtrail_testkit::{Recorder, bpf_available, rootless_userns_argv, serial, workload_bin};
use credtrail_workload::Step;

use crate::workload::{Recorded, record_workload_with};

/// The unexplained rows of a process, one after another, take its
/// credentials from where its first step started to where its last step
/// left them: each row's after is the next one's before.
pub fn assert_unexplained_chain(rows: &[Event], steps: &[Step]) {
    assert!(!rows.is_empty(), "no unexplained row");
    assert!(rows.iter().all(|e| e.syscall == "unexplained"), "{rows:#?}");
    assert_eq!(rows[0].old_creds(), steps[0].before, "{rows:#?}");
    for w in rows.windows(2) {
        assert_eq!(w[0].new_creds(), w[1].old_creds(), "{rows:#?}");
    }
    assert_eq!(
        rows.last().unwrap().new_creds(),
        steps.last().unwrap().after,
        "{rows:#?}"
    );
    for e in rows {
        assert!(e.changed);
        assert_eq!(e.ret, 0);
        let seen = e.last_seen.expect("the window's start");
        assert!(seen <= e.time, "{e:#?}");
        assert_eq!(e.abi, "x64", "no entry is known: the default");
    }
}

/// When the capture saw the process exit.
fn exit_time(r: &Recorded, pid: u32) -> i64 {
    r.cap
        .lifecycle()
        .unwrap()
        .into_iter()
        .find(|p| p.kind == "exit" && p.pid == pid)
        .expect("the exit")
        .time
}

#[test]
fn an_unhooked_change_is_found_at_the_next_switch_out() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // Keeps running after the change, sharing its CPU with a busy thread.
    // No periodic sweep (only the one at start), so no other check can
    // come first.
    let r = record_workload_with(
        &["--sweep-interval", "0"],
        &["ia32", "--then", "spin", "--ms", "400"],
        true,
    );
    let steps = &r.report.steps;
    assert_unexplained_chain(&r.rows, steps);
    let first = &r.rows[0];
    assert_eq!(first.option.as_deref(), Some("switch-out"), "{first:#?}");
    assert_eq!((first.pid, first.tid), (steps[0].pid, steps[0].tid));
    assert!(
        first.time < exit_time(&r, first.pid),
        "found before it exited"
    );
    // Identity comes from the same enrichment as any event.
    assert_eq!(first.binary.as_deref(), Some(workload_bin()));
    let c = &r.cap.manifest.counters;
    assert_eq!(c.unexplained, r.rows.len() as u64, "{c:?}");
    assert_eq!(c.lost(), 0, "{c:?}");
    assert!(
        c.tasks_checked > 0 && c.sweeps == 1,
        "only the sweep at start: {c:?}"
    );
}

#[test]
fn a_sleeping_process_is_found_by_the_sweep() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // No switch-out check: only the sweep can see a process that changed
    // and went to sleep.
    let r = record_workload_with(
        &["--no-switch-check", "--sweep-interval", "0.2"],
        &["ia32", "--then", "sleep", "--ms", "1500"],
        true,
    );
    let steps = &r.report.steps;
    assert_eq!(r.rows.len(), 1, "{:#?}", r.rows);
    assert_unexplained_chain(&r.rows, steps);
    let ev = &r.rows[0];
    assert_eq!(ev.option.as_deref(), Some("sweep"));
    assert!(
        ev.time < exit_time(&r, ev.pid) - 1_000_000_000,
        "found within one interval of the change, not at exit"
    );
    let m = &r.cap.manifest;
    assert_eq!(m.settings.get("switch_check"), Some(&false.into()));
    assert_eq!(m.settings.get("sweep_interval_ms"), Some(&200.into()));
    assert!(
        !m.hooks.iter().any(|h| h.contains("sched_switch")),
        "{:?}",
        m.hooks
    );
    assert!(m.counters.sweeps >= 5 && m.counters.sweep_tasks > m.counters.sweeps);
}

/// Seconds of the mixed storm: 300 in CI, `CREDTRAIL_STORM_SECS` to change.
fn storm_secs() -> u64 {
    std::env::var("CREDTRAIL_STORM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

#[test]
fn a_mixed_storm_has_no_unexplained_changes() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // A setuid-root copy of the workload, for execs that change credentials.
    let (_dir, suid) = credtrail_testkit::setuid_workload();
    let suid = suid.to_str().unwrap().to_owned();

    // The ia32 entry is hooked here: every change has its call.
    // And the subjective credentials are compared at every return to user.
    let rec = Recorder::start(false, &["--compat-syscalls", "--subjective-check"]);
    let w = workload_bin();
    // The setuid copy, run by nobody.
    let as_nobody = |args: &[&'static str]| {
        let mut v = vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
        v.push(suid.as_str());
        v.extend_from_slice(args);
        v
    };
    let mixes: Vec<Vec<String>> = [
        vec![w, "broadcast", "--threads", "4", "--uid", "5001"],
        vec![w, "su-like"],
        as_nobody(&["noop"]),
        vec![w, "prctl", "--names", "100"],
        // Legitimate subjective overrides: access checks by a setuid
        // process (override_creds to the real ids inside each call).
        as_nobody(&["access", "--calls", "2000"]),
        vec![w, "userns"],
        vec![w, "ia32"],
        vec![w, "io-uring", "--uid", "4200"],
        rootless_userns_argv(&[w, "setuid", "--uid", "0"]),
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect();
    let until = Instant::now() + Duration::from_secs(storm_secs());
    let runs: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|k| {
                let mixes = &mixes;
                s.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < until {
                        let argv = &mixes[(n as usize * 2 + k) % mixes.len()];
                        let st = Command::new(&argv[0])
                            .args(&argv[1..])
                            .stdout(Stdio::null())
                            .status()
                            .unwrap();
                        assert!(st.success(), "{argv:?}");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // stop() fails on any unexplained change.
    let (_, _, cap, _guard) = rec.stop();
    let c = &cap.manifest.counters;
    assert!(runs.iter().sum::<u64>() > 100, "{runs:?}");
    assert_eq!(c.unexplained, 0, "{c:?}");
    assert_eq!(c.lost(), 0, "a lossless run: {c:?}");
    assert!(
        c.events_written > 1000 && c.tasks_checked > c.events_written,
        "{c:?}"
    );
    assert!(c.sweeps >= storm_secs() / 2, "{c:?}");
    // Every return to user space was compared, the access checks' and
    // io_uring personalities' overrides among them, and none was reported.
    assert!(c.returns_checked > runs.iter().sum::<u64>() * 1000, "{c:?}");
    assert_eq!(c.subjective_overrides, 0, "{c:?}");
    assert_eq!(
        cap.manifest.settings.get("subjective_check"),
        Some(&true.into())
    );
}
