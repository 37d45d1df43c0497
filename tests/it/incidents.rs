//! Root: cuts the recorder makes by itself (`--cut-on unexplained`): a
//! change through `int $0x80` (not hooked without --compat-syscalls) is cut
//! with the minute before it, signed, verified; a storm of 1,000 such
//! changes a second makes a bounded number of cuts and loses none of them;
//! `credtrail-ship --follow` on the cut root ships each cut to a real S3
//! server (moto) as it appears.

use std::io::Read;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credtrail_capture::Capture;

use credtrail_testkit::{
    MotoS3, Recorder, bpf_available, free_port, http_get, record_bin, replay_bin, sample,
    sealed_captures, serial, ship_bin, workload_bin,
};

/// Runs the workload; returns its pid.
fn workload(args: &[&str]) -> u32 {
    let out = Command::new(workload_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "workload {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["pid"]
        .as_u64()
        .or_else(|| v["steps"][0]["pid"].as_u64())
        .unwrap() as u32
}

fn openssl(args: &[&str]) {
    assert!(
        Command::new("openssl")
            .args(args)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn an_unexplained_change_cuts_its_minute_and_a_storm_makes_few_cuts_shipped_as_they_appear() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let s3 = MotoS3::start("evidence");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = (tmp.path().join("key.pem"), tmp.path().join("pub.pem"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-pubout",
        "-in",
        key.to_str().unwrap(),
        "-out",
        public.to_str().unwrap(),
    ]);
    let root = tmp.path().join("incidents");
    let port = free_port();
    let mut rec = Recorder::start(
        false,
        &[
            "--keep",
            "10m",
            "--cut-on",
            "unexplained",
            "--cut-last",
            "1m",
            "--cut-after",
            "3s",
            "--cut-cooldown",
            "4s",
            "--cut-root",
            root.to_str().unwrap(),
            "--sign-key",
            key.to_str().unwrap(),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
    );
    rec.expect_unexplained = true;
    let mut ship = s3
        .env(&mut Command::new(ship_bin()))
        .arg("--follow")
        .arg(&root)
        .args(["s3://evidence/fleet", "--interval", "0.5", "--pubkey"])
        .arg(&public)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Before the window, inside it, then the trigger 64 s after the first.
    let t0 = Instant::now();
    // setgroups([1001, 1002, 1003]): no other row sets these groups.
    workload(&["setgroups"]);
    std::thread::sleep(Duration::from_secs(34));
    let inside = workload(&["setuid", "--uid", "0"]);
    std::thread::sleep(Duration::from_secs(64).saturating_sub(t0.elapsed()));
    let trigger = workload(&["ia32-toggle", "--toggles", "2"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sealed_captures(&root).is_empty() {
        assert!(Instant::now() < deadline, "no cut under {}", root.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The storm: 6 s of 1,000 unexplained changes a second.
    let storm = workload(&["ia32-toggle", "--toggles", "6000", "--rate", "1000"]);
    // Every trigger judged, and every cut it started finished (made or
    // failed): the counts settle.
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let (_, m) = http_get(port, "/metrics").unwrap();
        let get = |name: &str| sample(&m, &format!("{name}{{trigger=\"unexplained\"}}"));
        let started =
            get("credtrail_cut_triggers_total") - get("credtrail_cut_triggers_suppressed_total");
        let ended = get("credtrail_cuts_total") + get("credtrail_cut_failures_total");
        if get("credtrail_cut_triggers_total") == 6002.0 && started == ended {
            break m;
        }
        assert!(Instant::now() < deadline, "cuts did not settle: {m}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let (_, stderr, cap, _guard) = rec.stop();

    // Nothing lost: every change of the storm is a row.
    let c = &cap.manifest.counters;
    assert_eq!(c.lost(), 0, "{c:?}");
    let events = cap.events().unwrap();
    let unexplained = |pid: u32| {
        events
            .iter()
            .filter(|e| e.pid == pid && e.syscall == "unexplained")
            .count()
    };
    assert_eq!(unexplained(trigger), 2);
    assert_eq!(
        unexplained(storm),
        6000,
        "every change of the storm is a row"
    );

    let cuts = sealed_captures(&root);
    // One for the trigger; then at most one per 4 s cooldown of the 6 s
    // storm (the first may fall in the trigger's cooldown), plus its start.
    assert!(
        (2..=4).contains(&cuts.len()),
        "{} cuts: {cuts:?}; {stderr}",
        cuts.len()
    );
    for cut in &cuts {
        let out = Command::new(replay_bin())
            .args(["--verify", "--pubkey"])
            .arg(&public)
            .arg(cut)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not verify: {}",
            cut.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The first cut: the trigger's rows and the minute before the first.
    let first = Capture::open(&cuts[0]).unwrap();
    let rows = first.events().unwrap();
    let fired = rows
        .iter()
        .filter(|e| e.pid == trigger && e.syscall == "unexplained")
        .map(|e| e.ktime_ns)
        .min()
        .unwrap_or_else(|| {
            panic!(
                "the triggering row (pid {trigger}) is not in {}: {:?}; {stderr}",
                cuts[0].display(),
                rows.iter()
                    .filter(|e| e.syscall == "unexplained")
                    .map(|e| (e.pid, e.ktime_ns))
                    .take(5)
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(
        first.manifest.start.ktime_ns,
        fired - 60_000_000_000,
        "the cut starts a minute before its event"
    );
    assert!(
        first.manifest.end.as_ref().unwrap().ktime_ns >= fired + 3_000_000_000,
        "and ends --cut-after it"
    );
    assert!(
        rows.iter()
            .any(|e| e.pid == inside && e.syscall == "setuid")
    );
    assert!(
        !rows
            .iter()
            .any(|e| e.syscall == "setgroups" && e.new_groups == [1001, 1002, 1003]),
        "64 s before the event is outside the cut"
    );

    // Each cut a metric and a log line naming its event.
    let made = sample(&metrics, "credtrail_cuts_total{trigger=\"unexplained\"}");
    let fired_total = sample(
        &metrics,
        "credtrail_cut_triggers_total{trigger=\"unexplained\"}",
    );
    let suppressed = sample(
        &metrics,
        "credtrail_cut_triggers_suppressed_total{trigger=\"unexplained\"}",
    );
    assert_eq!(made as usize, cuts.len(), "{metrics}");
    assert_eq!(fired_total, 6002.0);
    assert_eq!(suppressed, 6002.0 - made);
    let lines = stderr
        .lines()
        .filter(|l| l.contains("(triggered by ") && l.contains(" unexplained "))
        .count();
    assert_eq!(lines, cuts.len(), "{stderr}");

    // ship --follow shipped each cut as it appeared.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = s3.boto(
            "r = s3.list_objects_v2(Bucket='evidence', Prefix='fleet/')\nprint(sum(o['Key'].endswith('/manifest.json') for o in r.get('Contents', [])))",
        );
        if listed.trim() == cuts.len().to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "shipped manifests: {listed}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(ship.id() as i32, libc::SIGTERM) };
    let status = ship.wait().unwrap();
    let mut out = String::new();
    ship.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    ship.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(out.lines().count(), cuts.len(), "one line per cut: {out}");
}

#[test]
fn cut_max_bounds_the_cuts_a_trigger_anyone_can_cause_makes() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("incidents");
    let mut rec = Recorder::start(
        false,
        &[
            "--keep",
            "10m",
            "--cut-on",
            "unexplained",
            "--cut-after",
            "1s",
            "--cut-cooldown",
            "1s",
            "--cut-max",
            "1",
            "--cut-root",
            root.to_str().unwrap(),
        ],
    );
    rec.expect_unexplained = true;
    workload(&["ia32-toggle", "--toggles", "2"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sealed_captures(&root).is_empty() {
        assert!(Instant::now() < deadline, "no cut");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past the cooldown: this one would cut, but the root holds --cut-max.
    std::thread::sleep(Duration::from_millis(1500));
    workload(&["ia32-toggle", "--toggles", "2"]);
    std::thread::sleep(Duration::from_secs(3));
    let (_, stderr, cap, _guard) = rec.stop();
    assert_eq!(sealed_captures(&root).len(), 1);
    assert!(
        stderr.contains("already holds 1 cuts (--cut-max 1)"),
        "{stderr}"
    );
    assert_eq!(cap.manifest.counters.lost(), 0);
}

#[test]
fn bad_cut_triggers_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let run = |args: &[&str]| {
        Command::new(record_bin())
            .arg("--out")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--cut-on", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a trigger (unexplained, became-root, policy:NAME)"),
        "{err}"
    );
    for (flag, value, why) in [
        ("--cut-after", "2h", "at most 1h"),
        ("--cut-last", "8d", "at most 7 days"),
        ("--cut-max", "0", "0 is not in 1..=100000"),
    ] {
        let out = run(&["--cut-on", "unexplained", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{flag} {value}: {err}");
    }
    let out = run(&["--cut-on", "policy:nope"]);
    assert!(!out.status.success());
    let line = credtrail_testkit::one_error_line(&out);
    assert!(
        line.contains("--cut-on policy:nope: no --policy is named \"nope\""),
        "{line}"
    );
    assert!(!dir.exists(), "nothing was written");
    let out = Command::new(record_bin())
        .args(["--print", "json", "--cut-on", "unexplained"])
        .output()
        .unwrap();
    let line = credtrail_testkit::one_error_line(&out);
    assert!(
        line.contains("--cut-on cuts a capture: pass --out"),
        "{line}"
    );
}
