//! Root: the flight recorder. `credtrail-record cut` of a running capture
//! during a storm (the cut verifies and holds exactly the window's events,
//! the recorder loses nothing), eviction held off by a cut in progress,
//! `kill -USR1`, and `credtrail-record status`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use credtrail_capture::Capture;
use credtrail_capture::manifest::{CaptureState, Manifest};
use credtrail_capture::model::event::Event;
use credtrail_testkit::{Recorder, bpf_available, record_bin, replay_bin, serial, storm};

fn record(args: &[&str]) -> Output {
    Command::new(record_bin()).args(args).output().unwrap()
}

fn verify(dir: &Path) {
    let out = Command::new(replay_bin())
        .arg("--verify")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not verify: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn events(dir: &Path) -> Vec<Event> {
    Capture::open(dir).unwrap().events().unwrap()
}

fn cut(running: &Path, incident: &Path, last: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(record_bin())
        .arg("cut")
        .arg(running)
        .arg(incident)
        .args(["--last", last])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "cut failed: {err}");
    err
}

#[test]
fn a_cut_during_a_storm_holds_exactly_its_window_and_costs_the_recorder_nothing() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(false, &["--keep", "5m", "--rotate-seconds", "1"]);
    let mut s = storm(2, 12, 3000).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(7));
    let tmp = tempfile::tempdir().unwrap();
    let incident = tmp.path().join("incident");
    let report = cut(&rec.dir, &incident, "4s", &[]);
    assert!(s.wait().unwrap().success());
    let (_, _, source, _guard) = rec.stop();

    verify(&incident);
    let m = Manifest::read(&incident).unwrap();
    assert_eq!(m.state, CaptureState::Sealed);
    let (start, end) = (m.start.ktime_ns, m.end.as_ref().unwrap().ktime_ns);
    assert_eq!(end - start, 4_000_000_000, "the window is --last 4s");
    // Exactly the window: every event the recorder kept between its ends,
    // and no other.
    let want: Vec<u64> = source
        .events()
        .unwrap()
        .iter()
        .filter(|e| (start..=end).contains(&e.ktime_ns))
        .map(|e| e.seq)
        .collect();
    let got: Vec<u64> = events(&incident).iter().map(|e| e.seq).collect();
    assert!(
        want.len() > 10_000,
        "the storm filled the window: {}",
        want.len()
    );
    assert_eq!(got, want, "the cut holds the window's events");
    assert_eq!(m.counters.events_written, want.len() as u64);
    // The recorder lost nothing to the cut, and carried on: events after
    // the window's end are in its capture.
    let c = &source.manifest.counters;
    assert_eq!((c.lost(), c.lifecycle_lost()), (0, 0), "{c:?}");
    assert!(
        source
            .events()
            .unwrap()
            .iter()
            .any(|e| e.ktime_ns > end + 1_000_000_000)
    );
    // Sealed segments were hard-linked, not copied; one straddling the
    // window's start rewritten.
    assert!(report.contains(" 0 copied"), "{report}");
    let linked = report
        .split(" segment(s) linked")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap();
    assert!(linked > 0, "{report}");
    assert_eq!(m.settings["cut"]["clipped"], false);
}

#[test]
fn eviction_waits_for_a_cut_in_progress() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // 1 MiB holds about two seconds of this storm: without the pin, the
    // cut's window would be evicted while it waits.
    let rec = Recorder::start(
        false,
        &["--max-capture-bytes", "1048576", "--rotate-seconds", "1"],
    );
    let mut s = storm(2, 12, 5000).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let tmp = tempfile::tempdir().unwrap();
    let incident = tmp.path().join("incident");
    // The cut pins, then waits 4 s before linking, as a slow disk would.
    cut(
        &rec.dir,
        &incident,
        "3s",
        &[("CREDTRAIL_TEST_CUT_PAUSE_MS", "4000")],
    );
    assert!(s.wait().unwrap().success());
    let (_, _, source, _guard) = rec.stop();
    assert!(
        source.manifest.counters.events_evicted > 0,
        "the budget was under pressure: {:?}",
        source.manifest.counters
    );
    verify(&incident);
    let m = Manifest::read(&incident).unwrap();
    assert_eq!(
        m.settings["cut"]["clipped"], false,
        "{:?}",
        m.settings["cut"]
    );
    let evs = events(&incident);
    let first = evs.iter().map(|e| e.ktime_ns).min().unwrap();
    assert!(
        first - m.start.ktime_ns < 100_000_000,
        "the window's first events are in the cut ({} ms late)",
        (first - m.start.ktime_ns) / 1_000_000
    );
}

/// The captures under `root` (`node=N/CAPTURE`).
fn captures_under(root: &Path) -> Vec<PathBuf> {
    let Ok(nodes) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    nodes
        .flatten()
        .flat_map(|n| std::fs::read_dir(n.path()).into_iter().flatten().flatten())
        // A cut being made is a hidden folder, renamed into place.
        .filter(|c| !c.file_name().to_string_lossy().starts_with('.'))
        .map(|c| c.path())
        .collect()
}

#[test]
fn sigusr1_cuts_into_the_cut_root_and_status_reports_the_recorder() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cut_root = tmp.path().join("incidents");
    let rec = Recorder::start(
        false,
        &[
            "--keep",
            "5m",
            "--cut-root",
            cut_root.to_str().unwrap(),
            "--cut-last",
            "1m",
        ],
    );
    let status = record(&["status", rec.dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // The pid is the recorder's own, proven by the lock it holds.
    let expect = format!("recorder (pid {}) running on ", rec.child.id());
    assert!(text.starts_with(&expect), "{text}");
    // The folder above the capture is found too (an --out-root's node).
    let parent = rec.dir.parent().unwrap().to_str().unwrap().to_owned();
    assert!(record(&["status", &parent]).status.success());

    let child = Command::new("setpriv")
        .args(["--reuid", "1000", "true"])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(rec.child.id() as i32, libc::SIGUSR1) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let incident = loop {
        let sealed = captures_under(&cut_root)
            .into_iter()
            .find(|c| Manifest::read(c).is_ok_and(|m| m.state == CaptureState::Sealed));
        if let Some(c) = sealed {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no cut under {}",
            cut_root.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    verify(&incident);
    let evs = events(&incident);
    assert!(
        evs.iter()
            .any(|e| e.pid == pid && e.syscall == "setresuid" && e.new_euid == 1000),
        "setpriv's setresuid is in the SIGUSR1 cut"
    );
    let (_, _, _, _guard) = rec.stop();
    let after = record(&["status", incident.to_str().unwrap()]);
    assert!(!after.status.success());
    let err = String::from_utf8_lossy(&after.stderr);
    assert!(err.contains("not ready: no recorder on"), "{err}");
}

#[test]
fn a_cut_refuses_what_it_cannot_cut_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = record(&["cut", empty.to_str().unwrap(), "/nonexistent/x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no capture there"), "{err}");
    let out = record(&["cut", "a", "b", "--last", "0s"]);
    assert!(!out.status.success());
}
