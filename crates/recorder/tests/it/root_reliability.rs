//! Root reliability tests: a full disk, dropped privileges and redaction,
//! the disk budget, against the real recorder binary (SIGKILL recovery is
//! in `tests/it/recovery.rs`, where replay and query read the result).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credtrail_capture::manifest::CaptureState;
use credtrail_capture::model::event::Event;

use credtrail_testkit::{
    Recorder, assert_whole, bpf_available, record_bin, serial, storm, workload_bin,
};

#[test]
fn a_full_disk_stops_cleanly_and_counts_what_was_lost() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a tmpfs");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);

    let dir = mnt.join("capture");
    let mut child = Command::new(record_bin())
        .arg("--out")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("manifest.json").exists() {
        assert!(Instant::now() < deadline, "recorder did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    // Fill the disk, leaving a few pages.
    let free = {
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        let c = std::ffi::CString::new(mnt.to_str().unwrap()).unwrap();
        // SAFETY: valid C string and out pointer.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
        s.f_bavail * s.f_frsize
    };
    std::fs::write(mnt.join("filler"), vec![1u8; (free - (48 << 10)) as usize]).unwrap();
    let mut storm = storm(2, 30, 20000).stdout(Stdio::null()).spawn().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "the recorder never noticed the full disk"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    storm.kill().unwrap();
    storm.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("credtrail-record: error:")
            && last.contains("No space left on device")
            && last.contains("counted as lost"),
        "{stderr}"
    );
    // Earlier segments intact, the manifest consistent and explicit.
    let cap = assert_whole(&dir);
    let m = &cap.manifest;
    assert_eq!(m.state, CaptureState::Failed);
    assert!(
        m.error
            .as_deref()
            .unwrap()
            .contains("No space left on device"),
        "{m:?}"
    );
    assert!(
        m.counters.events_lost_io > 0,
        "events were lost and must be counted: {:?}",
        m.counters
    );
    assert!(!dir.join(".reserve").exists());
}

fn status_field(pid: u32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn recorder_drops_privileges_and_redacts_secrets() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(false, &["--redact=--password="]);
    // Capabilities are dropped right after the /proc snapshot that follows
    // the manifest; give it a moment.
    let pid = rec.child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_field(pid, "CapEff:") != "0000000000000004" {
        assert!(
            Instant::now() < deadline,
            "CapEff {}",
            status_field(pid, "CapEff:")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Only CAP_DAC_READ_SEARCH (bit 2) is left, in every set, for good.
    assert_eq!(status_field(pid, "CapPrm:"), "0000000000000004");
    assert_eq!(status_field(pid, "CapBnd:"), "0000000000000004");
    assert_eq!(status_field(pid, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(pid, "CapAmb:"), "0000000000000000");
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");

    let out = Command::new(workload_bin())
        .args(["su-like", "--uid", "4243", "--tag=--password=hunter2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(300));
    let (_live, stderr, cap, _tmp) = rec.stop();
    let ev = cap
        .events()
        .unwrap()
        .into_iter()
        .find(|e| e.new_euid == 4243)
        .unwrap_or_else(|| panic!("su-like not captured: {stderr}"));
    assert_eq!(
        ev.arguments.as_deref(),
        Some("su-like --uid 4243 --tag=--password=<redacted>")
    );
    // The secret is in no stored row of any table.
    let rows = serde_json::to_string(&(
        cap.events().unwrap(),
        cap.lifecycle().unwrap(),
        cap.processes().unwrap(),
    ))
    .unwrap();
    assert!(!rows.contains("hunter2"));
    assert_eq!(cap.manifest.settings["redact"], true);
}

#[test]
fn max_capture_bytes_keeps_a_ring_of_the_newest_segments() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let budget: u64 = 1 << 20;
    let rec = Recorder::start(false, &["--max-capture-bytes", &budget.to_string()]);
    let out = storm(2, 8, 20000).output().unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(300));
    let (_live, stderr, cap, _tmp) = rec.stop();
    let m = &cap.manifest;
    let evicted: Vec<_> = m.segments.iter().filter(|s| s.evicted).collect();
    assert!(!evicted.is_empty(), "nothing evicted: {stderr}");
    assert_eq!(
        m.counters.events_evicted,
        evicted
            .iter()
            .filter(|s| s.table == "events")
            .map(|s| s.rows)
            .sum::<u64>()
    );
    assert!(m.counters.events_evicted > 0);
    // The kept segments fit the budget; the evicted files are gone.
    let kept = m.kept_bytes();
    assert!(kept <= budget, "{kept} bytes kept, budget {budget}");
    for s in &evicted {
        assert!(!cap.dir.join(&s.file).exists(), "{}", s.file);
    }
    assert_eq!(m.settings["max_capture_bytes"], budget);
    // Whole, and the newest events are the ones kept.
    let cap = assert_whole(&cap.dir);
    let events: Vec<Event> = cap.read().unwrap();
    assert!(!events.is_empty());
    let oldest_kept = events.iter().map(|e| e.ktime_ns).min().unwrap();
    assert!(
        evicted
            .iter()
            .filter(|s| s.table == "events")
            .all(|s| s.last_ktime_ns <= oldest_kept)
    );
}
