use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credtrail_capture::{Capture, Rotation};
use credtrail_pipeline::print::PrintFormat;
use credtrail_recorder::record::record;
use credtrail_recorder::session::RecordOptions;

use credtrail_testkit::{bpf_available, rootless_userns_argv, serial, workload_bin};

/// Records in-process while `workload` runs; returns what was printed live.
fn record_live(format: PrintFormat, dir: &Path) -> String {
    let opts = RecordOptions {
        out: Some(dir.to_owned()),
        duration: None,
        print: Some(format),
        rotation: Rotation::default(),
        nice: 0,
        ring_buffer_bytes: 16 << 20,
        spool_memory_bytes: 16 << 20,
        spool_disk_bytes: 1 << 30,
        // The ia32 rows go through the same enrichment and printers.
        compat_syscalls: true,
        sweep_interval: Duration::from_secs(1),
        switch_check: true,
        subjective_check: false,
        command: None,
        node_name: Some("live-replay-node".into()),
        pods_file: None,
        cri_socket: None,
        no_cri: true,
        retention: Default::default(),
        sign_key: None,
        redactor: Default::default(),
        policy: Default::default(),
        cuts: None,
        metrics: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let handle = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut out = Vec::new();
            record(&opts, &stop, &mut out).map(|_| out)
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("manifest.json").exists() {
        assert!(!handle.is_finished(), "recorder stopped early");
        assert!(Instant::now() < deadline, "recorder did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Real tools: capset, setresuid/gid, setgroups and an execve event
    // (setpriv), setgid/setuid (su), with the fork/exec/exit around them.
    for args in [
        &[
            "setpriv",
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "/bin/true",
        ][..],
        &["su", "nobody", "-s", "/bin/sh", "-c", "true"][..],
        // The 32-bit entry, and a user namespace with its maps.
        &[workload_bin(), "ia32"][..],
        &rootless_userns_argv(&[workload_bin(), "setuid", "--uid", "0"])[..],
    ] {
        let st = Command::new(args[0])
            .args(&args[1..])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let out = handle.join().unwrap().unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn live_output_equals_replay_of_the_capture() {
    if !bpf_available() {
        return;
    }
    // Its workloads (ia32 changes among them) would be other root tests'
    // rows, and theirs its own.
    let _serial = serial();
    for (name, format) in crate::golden::FORMATS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("capture");
        let live = record_live(format, &dir);
        assert!(
            live.contains("setpriv")
                || format == PrintFormat::Compact
                || live.contains("setresuid")
        );
        assert!(live.lines().count() >= 6, "{name}: {live}");
        let replayed = crate::golden::replay_to_string(&dir, format);
        assert_eq!(live, replayed, "{name}: live and replay differ");
        // And the capture verifies.
        let v = credtrail_replay::verify(&dir, Default::default()).unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(Capture::open(&dir).unwrap().manifest.counters.lost(), 0);
    }
}
