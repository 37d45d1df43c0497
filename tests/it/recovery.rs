//! Root: the real recorder killed with SIGKILL (quiet, under a storm, just
//! after a rotation, mid-segment, with and without a container running),
//! then `credtrail-record recover`: `credtrail-replay --verify` accepts the
//! capture, and replay, DuckDB and `credtrail-query summary` count the same
//! events.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use credtrail_capture::manifest::{CaptureState, Manifest};
use credtrail_capture::model::event::Event;
use credtrail_capture::{Capture, TABLES};
use credtrail_pipeline::print::PrintFormat;

use credtrail_testkit::{
    IMAGE, Recorder, assert_whole, bpf_available, duckdb, podman_container, podman_ready,
    record_bin, serial, storm,
};

fn boottime_ns() -> u64 {
    credtrail_capture::host::boottime_ns()
}

/// SIGKILL, then `credtrail-record recover`; returns recover's stderr.
fn kill_and_recover(rec: &mut Recorder) -> String {
    rec.child.kill().unwrap();
    rec.child.wait().unwrap();
    let out = Command::new(record_bin())
        .arg("recover")
        .arg(&rec.dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "recover failed: {stderr}");
    stderr
}

/// Tables the manifest (as the recorder left it) lists no segment of.
fn tables_without_segments(dir: &Path) -> Vec<&'static str> {
    let m = Manifest::read(dir).unwrap();
    TABLES
        .into_iter()
        .filter(|t| m.segments_of(t).next().is_none())
        .collect()
}

fn assert_recovered(dir: &Path) -> Capture {
    let cap = assert_whole(dir);
    assert_eq!(cap.manifest.state, CaptureState::Recovered);
    cap
}

/// `credtrail-replay --verify` accepts the capture, and replay, DuckDB and
/// `credtrail-query summary` count the events the manifest says it holds.
fn assert_readers_agree(dir: &Path) -> u64 {
    let d = dir.to_str().unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let cli = credtrail_replay::Cli::try_parse_from(["credtrail-replay", "--verify", d]).unwrap();
    let verified = credtrail_replay::run(cli, &mut out, &mut err).unwrap();
    assert!(
        verified,
        "--verify: {}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );

    let replayed = crate::golden::replay_to_string(dir, PrintFormat::Compact)
        .lines()
        .count() as u64;

    // Rows, and the calls they hold (a folded row holds its repeat_count).
    let script = format!(
        "import duckdb\nr = duckdb.sql(\"SELECT count(*), coalesce(sum(coalesce(repeat_count, 1)), 0) FROM read_parquet('{d}/events/*.parquet')\").fetchall()[0]\nprint(r[0], r[1])"
    );
    let counts = duckdb(&script);
    let (duckdb, calls) = counts.trim().split_once(' ').unwrap();
    let (duckdb, calls): (u64, u64) = (duckdb.parse().unwrap(), calls.parse().unwrap());

    let cli = credtrail_query::cli::Cli::try_parse_from([
        "credtrail-query",
        d,
        "summary",
        "--format",
        "csv",
    ])
    .unwrap();
    let mut out = Vec::new();
    credtrail_query::cli::run(cli, &mut out, &mut Vec::new()).unwrap();
    let csv = String::from_utf8(out).unwrap();
    let col = csv
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "events")
        .unwrap();
    let summary: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse::<u64>().unwrap())
        .sum();

    let c = Capture::open(dir).unwrap().manifest.counters;
    let written = c.events_written;
    assert_eq!(
        (replayed, duckdb, summary, calls),
        (written, written, c.calls_written(), c.calls_written()),
        "replay and DuckDB rows, query summary's and DuckDB's calls, against the manifest's counts"
    );
    written
}

/// A container switching to nobody in a loop, so that container metadata
/// and container events keep arriving; removed on drop.
struct Container(String);

impl Container {
    fn start() -> Container {
        Container(podman_container(
            "run",
            &[
                "--detach",
                IMAGE,
                "sh",
                "-c",
                "while :; do su nobody -c id >/dev/null; sleep 0.05; done",
            ],
        ))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

/// Waits until the manifest lists an events segment of epoch `epoch` (the
/// recorder rotated into `epoch + 1`).
fn wait_for_rotation(dir: &Path, epoch: u32) {
    let file = format!("events/part-{epoch:05}.parquet");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Manifest::read(dir).is_ok_and(|m| m.segments.iter().any(|s| s.file == file)) {
        assert!(Instant::now() < deadline, "no rotation past {file}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn a_recovered_capture_is_accepted_by_every_reader() {
    if !bpf_available() || !podman_ready() {
        return;
    }
    let _serial = serial();
    let rotate = ["--rotate-seconds", "2"];

    // Quiet: killed as soon as it is set up, before anything was checkpointed.
    let mut rec = Recorder::start(false, &rotate);
    let missing = tables_without_segments(&rec.dir);
    assert!(missing.contains(&"containers"), "{missing:?}");
    kill_and_recover(&mut rec);
    assert_recovered(&rec.dir);
    assert_readers_agree(&rec.dir);

    // Quiet for 5 s: the case of the report (no container, no exec).
    let mut rec = Recorder::start(false, &rotate);
    std::thread::sleep(Duration::from_millis(5300));
    assert!(tables_without_segments(&rec.dir).contains(&"containers"));
    kill_and_recover(&mut rec);
    assert_recovered(&rec.dir);
    assert_readers_agree(&rec.dir);

    for container in [false, true] {
        let _c = container.then(Container::start);
        // Under a 1-thread storm: just after a rotation, then mid-segment.
        for (after_rotation_ms, what) in [(0, "just after a rotation"), (1000, "mid-segment")] {
            let s = storm(1, 30, 0).stdout(Stdio::null()).spawn().unwrap();
            let mut rec = Recorder::start(false, &rotate);
            wait_for_rotation(&rec.dir, 0);
            std::thread::sleep(Duration::from_millis(after_rotation_ms));
            let missing = tables_without_segments(&rec.dir);
            let report = kill_and_recover(&mut rec);
            stop(s);
            let cap = assert_recovered(&rec.dir);
            let n = assert_readers_agree(&rec.dir);
            eprintln!(
                "container {container}, {what}: no segment of {missing:?} before recovery; {n} events; {}",
                report.trim()
            );
            assert!(n > 0, "{what}: the storm's events are in the capture");
            let in_container = cap
                .stream::<Event>()
                .map(Result::unwrap)
                .filter(|e| e.container_id.is_some())
                .count();
            if !container {
                assert!(missing.contains(&"containers"), "{missing:?}");
                assert_eq!(in_container, 0);
            }
        }
    }
}

/// A small deterministic pseudo-random sequence (no clock, reproducible).
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

/// Each thread's name, state, kernel wait channel and CPU ticks.
fn thread_states(pid: u32) -> String {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = t.path();
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
        let f: Vec<&str> = after.split(' ').collect();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
        let stack = std::fs::read_to_string(p.join("stack")).unwrap_or_default();
        out.push(format!(
            "{} {} state {} wchan {wchan} utime {} stime {} stack {}",
            t.file_name().to_string_lossy(),
            comm.trim(),
            f.first().unwrap_or(&"?"),
            f.get(11).unwrap_or(&"?"),
            f.get(12).unwrap_or(&"?"),
            stack.lines().take(6).collect::<Vec<_>>().join(" < ")
        ));
    }
    out.join("\n")
}

/// A busy loop on every core, for as long as it lives: the recorder's
/// checkpoints must keep their time when CPU is scarce.
struct CpuHogs(Vec<Child>);

impl CpuHogs {
    fn start() -> CpuHogs {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CpuHogs(
            (0..cores)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn sigkill_at_random_points_loses_at_most_a_second() {
    if !bpf_available() || !podman_ready() {
        return;
    }
    let _serial = serial();
    // Beside the storm, a busy loop on every core.
    let _hogs = CpuHogs::start();
    let mut rng = 0x5eed_u64;
    let mut worst_ms = 0.0f64;
    let mut recovered_rows = 0u64;
    for run in 0..20 {
        // Half the runs on a host with no container at all, half with one.
        let _container = (run % 2 == 1).then(Container::start);
        let storm = storm(2, 8, 5000).stdout(Stdio::null()).spawn().unwrap();
        // Rotation every second, so kills also land in and around seals.
        let mut rec = Recorder::start(false, &["--rotate-seconds", "1"]);
        let delay = Duration::from_millis(50 + lcg(&mut rng) % 2500);
        std::thread::sleep(delay);
        let threads = thread_states(rec.child.id());
        let kill_ktime = boottime_ns();
        let report = kill_and_recover(&mut rec);
        stop(storm);
        let cap = assert_recovered(&rec.dir);
        assert_readers_agree(&rec.dir);
        let last = cap
            .manifest
            .segments_of("events")
            .map(|s| s.last_ktime_ns)
            .chain([cap.manifest.start.ktime_ns])
            .max()
            .unwrap();
        let window_ms = kill_ktime.saturating_sub(last) as f64 / 1e6;
        eprintln!(
            "run {run}: killed {} ms after start, {} events kept, loss window {window_ms:.0} ms, at least {} events lost in the crash",
            delay.as_millis(),
            cap.manifest.counters.events_written,
            cap.manifest.recovery.as_ref().unwrap().events_lost_at_least
        );
        if window_ms > 1000.0 {
            let log = std::mem::replace(&mut rec.stderr, std::thread::spawn(String::new));
            panic!(
                "run {run}: lost {window_ms:.0} ms of events ({report}); its threads: {threads}; the recorder said: {}",
                log.join().unwrap()
            );
        }
        worst_ms = worst_ms.max(window_ms);
        recovered_rows += cap.manifest.counters.events_written;
    }
    eprintln!(
        "worst loss window over 20 kills: {worst_ms:.0} ms; {recovered_rows} events recovered"
    );
    assert!(recovered_rows > 0);
}
