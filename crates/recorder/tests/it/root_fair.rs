//! Root: a flood hides nothing. One process's storm costs no other process
//! its events, and the storm itself is accounted call by call: rows, folded
//! counts (`repeat_count`) and losses counted against it.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use credtrail_capture::Capture;
use credtrail_capture::model::Event;
use credtrail_capture::storage::micros;

use credtrail_testkit::{Recorder, bpf_available, serial, storm};

/// The JSON report a workload storm prints: its pid and the calls it made.
fn report_of(child: Child) -> (u32, u64) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["pid"].as_u64().unwrap() as u32,
        v["calls"].as_u64().unwrap(),
    )
}

fn rows_of(events: &[Event], pid: u32) -> Vec<&Event> {
    events.iter().filter(|e| e.pid == pid).collect()
}

/// A quiet process: one setresuid every 50 ms to uid 4321 and back.
fn quiet(seconds: u32) -> Child {
    storm(1, seconds, 20)
        .args(["--uid", "4321"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The quiet process's every call is a row of one call, in order.
fn assert_quiet_whole(events: &[Event], pid: u32, issued: u64) {
    let rows = rows_of(events, pid);
    assert_eq!(rows.len() as u64, issued, "every quiet call is a row");
    assert!(rows.iter().all(|e| e.repeat_count.is_none()), "none folded");
    for (i, e) in rows.iter().enumerate() {
        let euid = if i % 2 == 0 { 4321 } else { 0 };
        assert_eq!(
            (e.syscall.as_str(), e.arg1, e.ret, e.new_euid),
            ("setresuid", euid as i64, 0, euid),
            "quiet call {i}"
        );
    }
}

/// Per process: calls issued = rows + folded counts + losses counted
/// against it; and the manifest's totals agree with the rows.
fn assert_accounted(cap: &Capture, events: &[Event], pid: u32, issued: u64) -> (u64, u64) {
    let c = &cap.manifest.counters;
    let rows = rows_of(events, pid);
    let calls: u64 = rows.iter().map(|e| e.calls()).sum();
    let lost = cap.manifest.lost_by_pid.get(&pid).copied().unwrap_or(0);
    assert_eq!(calls + lost, issued, "pid {pid}: rows+folded+lost ({c:?})");
    for e in rows.iter().filter(|e| e.repeat_count.is_some()) {
        assert!(e.repeat_count.unwrap() >= 1);
        assert!(e.last_time.unwrap() >= micros(e.time), "{e:?}");
    }
    (calls, lost)
}

fn assert_totals(cap: &Capture, events: &[Event]) {
    let c = &cap.manifest.counters;
    let folded: Vec<&Event> = events.iter().filter(|e| e.repeat_count.is_some()).collect();
    assert_eq!(folded.len() as u64, c.folded_rows, "{c:?}");
    assert_eq!(
        folded.iter().map(|e| e.calls()).sum::<u64>(),
        c.folded_calls,
        "{c:?}"
    );
    assert_eq!(
        c.kernel_events,
        c.calls_written() + c.ringbuf_full + c.fold_full,
        "{c:?}"
    );
    let by_pid: u64 = cap.manifest.lost_by_pid.values().sum();
    assert_eq!(by_pid + c.lost_unattributed, c.ringbuf_full + c.fold_full);
}

#[test]
fn a_storm_costs_a_quiet_process_nothing_and_is_folded_not_dropped() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // A 1 MiB ring: the storm fills it within milliseconds.
    let rec = Recorder::start(false, &["--ring-buffer-mib", "1"]);
    let s = storm(2, 8, 0).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let q = quiet(5);
    let (quiet_pid, quiet_issued) = report_of(q);
    let (storm_pid, storm_issued) = report_of(s);
    std::thread::sleep(Duration::from_millis(300));
    let (_, stderr, cap, _tmp) = rec.stop();
    let events = cap.events().unwrap();
    let c = &cap.manifest.counters;
    eprintln!(
        "storm {storm_issued} calls, quiet {quiet_issued}; {} rows, {} folded calls in {} rows, lost {}",
        c.events_written,
        c.folded_calls,
        c.folded_rows,
        c.lost()
    );
    assert!(quiet_issued >= 90, "{quiet_issued}");
    assert_quiet_whole(&events, quiet_pid, quiet_issued);
    let (calls, lost) = assert_accounted(&cap, &events, storm_pid, storm_issued);
    assert_eq!((calls, lost), (storm_issued, 0), "{c:?}\n{stderr}");
    // Two threads toggling two transitions: a handful of rows per second
    // hold most of the millions of calls.
    assert!(c.folded_calls > storm_issued / 2, "{c:?}");
    assert!(c.folded_rows < 200, "{c:?}");
    assert_totals(&cap, &events);
}

#[test]
fn a_storm_of_new_transitions_loses_only_its_own_calls_each_counted() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(false, &["--ring-buffer-mib", "1"]);
    let s = storm(2, 6, 0)
        .args(["--call", "setresuid-vary"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let q = quiet(4);
    // Many short processes at once beside it, each 50 changes in 1 s.
    let spawned: Vec<Child> = (0..40)
        .map(|_| {
            storm(1, 1, 50)
                .args(["--uid", "5555"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let short: BTreeMap<u32, u64> = spawned.into_iter().map(report_of).collect();
    let (quiet_pid, quiet_issued) = report_of(q);
    let (storm_pid, storm_issued) = report_of(s);
    std::thread::sleep(Duration::from_millis(300));
    let (_, _, cap, _tmp) = rec.stop();
    let events = cap.events().unwrap();
    let c = &cap.manifest.counters;
    assert_quiet_whole(&events, quiet_pid, quiet_issued);
    let (_, lost) = assert_accounted(&cap, &events, storm_pid, storm_issued);
    assert!(lost > 0, "a varying storm past the fold map loses: {c:?}");
    assert_eq!(
        cap.manifest.lost_by_pid.keys().collect::<Vec<_>>(),
        [&storm_pid],
        "only the storm lost anything"
    );
    for (pid, n) in short {
        assert_accounted(&cap, &events, pid, n);
    }
    assert_totals(&cap, &events);
}

#[test]
fn an_unhooked_change_during_a_flood_is_still_reported_and_folding_adds_none() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let mut rec = Recorder::start(false, &["--ring-buffer-mib", "1"]);
    rec.expect_unexplained = true;
    let s = storm(2, 4, 0).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // int $0x80 changes: no hook without --compat-syscalls.
    let report = crate::workload::run_workload(&["ia32", "--then", "spin", "--ms", "400"]);
    let (storm_pid, storm_issued) = report_of(s);
    std::thread::sleep(Duration::from_millis(300));
    let (_, _, cap, _tmp) = rec.stop();
    let c = &cap.manifest.counters;
    assert!(c.folded_calls > 0, "the flood was folded: {c:?}");
    let ia32 = crate::workload::rows_of(&cap, report.steps[0].pid);
    crate::root_unexplained::assert_unexplained_chain(&ia32, &report.steps);
    let events = cap.events().unwrap();
    let unexplained: Vec<&Event> = events
        .iter()
        .filter(|e| e.syscall == "unexplained")
        .collect();
    assert_eq!(unexplained.len(), ia32.len(), "none but the ia32 process's");
    assert_eq!(c.unexplained_ringbuf_full, 0, "{c:?}");
    assert_accounted(&cap, &events, storm_pid, storm_issued);
}
