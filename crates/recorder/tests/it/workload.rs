//! Running the workload and holding its report against the captured rows.

use std::process::Command;

use credtrail_capture::model::Event;
use credtrail_testkit::workload_bin;
use credtrail_workload::{Report, Step};

pub fn run_workload(args: &[&str]) -> Report {
    run_report(Command::new(workload_bin()).args(args))
}

/// Runs a command that ends by printing a workload report.
pub fn run_report(cmd: &mut Command) -> Report {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The captured row is the step: call, entry, caller, arguments, result
/// and both credential sets exactly.
pub fn assert_step(ev: &Event, step: &Step) {
    let ctx = format!("{} step {:?}\nrow {:#?}", step.syscall, step.args, ev);
    assert_eq!(ev.syscall, step.syscall, "{ctx}");
    assert_eq!(ev.abi, step.abi, "{ctx}");
    assert_eq!((ev.pid, ev.tid), (step.pid, step.tid), "{ctx}");
    assert_eq!(ev.args().collect::<Vec<_>>(), step.args, "{ctx}");
    assert_eq!(ev.groups, step.groups, "{ctx}");
    assert_eq!(ev.ret, step.ret, "{ctx}");
    assert_eq!(ev.old_creds(), step.before, "old credentials: {ctx}");
    assert_eq!(ev.new_creds(), step.after, "new credentials: {ctx}");
    assert_eq!(ev.changed, step.before != step.after, "{ctx}");
}

/// What a recording of one workload run holds.
pub struct Recorded {
    pub report: Report,
    pub cap: credtrail_capture::Capture,
    /// The rows of the workload's process, in kernel order.
    pub rows: Vec<Event>,
    /// Keeps the capture on disk: bind it (`guard: _guard`), never `..`.
    pub guard: tempfile::TempDir,
}

/// Records (with `recorder_args`) while the workload runs `args`; no
/// change may go unexplained.
pub fn record_workload(recorder_args: &[&str], args: &[&str]) -> Recorded {
    record_workload_with(recorder_args, args, false)
}

/// As [`record_workload`], with unexplained changes allowed or not.
pub fn record_workload_with(
    recorder_args: &[&str],
    args: &[&str],
    expect_unexplained: bool,
) -> Recorded {
    let mut rec = credtrail_testkit::Recorder::start(false, recorder_args);
    rec.expect_unexplained = expect_unexplained;
    let report = run_workload(args);
    let (_, _, cap, _tmp) = rec.stop();
    let rows = rows_of(&cap, report.steps[0].pid);
    Recorded {
        report,
        cap,
        rows,
        guard: _tmp,
    }
}

/// One row per step, each exactly the step.
pub fn assert_steps(rows: &[Event], steps: &[Step]) {
    assert_eq!(rows.len(), steps.len(), "one row per step: {rows:#?}");
    for (ev, step) in rows.iter().zip(steps) {
        assert_step(ev, step);
    }
}

/// The capture's rows of `pid`, in kernel order.
pub fn rows_of(cap: &credtrail_capture::Capture, pid: u32) -> Vec<Event> {
    let mut rows: Vec<Event> = cap
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.pid == pid)
        .collect();
    rows.sort_by_key(|e| e.seq);
    rows
}
