//! Root: `credtrail-record --metrics-addr` scraped by a real Prometheus
//! (Debian's server), whose HTTP API then reports exactly what the
//! capture's manifest counts; `--log-format json` lines; the endpoint's
//! refusals.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use credtrail_capture::Capture;
use credtrail_capture::model::event::{Outcome, errno_name};
use credtrail_testkit::{
    Prometheus, bpf_available, free_port, http_get, one_error_line, record_bin, serial,
    workload_bin,
};

/// The `result` label a row should be counted under, worked out here from
/// the row (not with the recorder's code).
fn result_label(e: &credtrail_capture::model::Event) -> String {
    match e.outcome() {
        Outcome::Ok => "ok".into(),
        Outcome::Refused => "refused".into(),
        Outcome::Query => "query".into(),
        Outcome::Failed(ret) => errno_name(ret).unwrap_or("failed").into(),
    }
}

fn label(v: &serde_json::Value, name: &str) -> String {
    v[name].as_str().unwrap_or_default().to_owned()
}

#[test]
fn prometheus_scrapes_exactly_what_the_manifest_counts() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let port = free_port();
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("capture");
    let done = tmp.path().join("done");
    // Every hooked call once (a refused setuid among them) and changes
    // through the 32-bit entry (unexplained); then the command waits for
    // its stdin to close, so nothing happens between the scrape and the end.
    let w = workload_bin();
    let script = format!(
        "{w} steps >/dev/null && {w} ia32 >/dev/null && : > {} && {{ read x || true; }}",
        done.display()
    );
    let mut rec = Command::new(record_bin())
        .arg("--out")
        .arg(&dir)
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "json", "--", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done.exists() {
        assert!(
            rec.try_wait().unwrap().is_none(),
            "the recorder exited early"
        );
        assert!(Instant::now() < deadline, "the workload did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The counters reach the endpoint with the next checkpoint (0.5 s).
    std::thread::sleep(Duration::from_secs(2));
    prom.wait_scraped_after(SystemTime::now());

    let by_call: BTreeMap<(String, String), f64> = prom
        .query("credtrail_events_total")
        .into_iter()
        .map(|(m, v)| ((label(&m, "syscall"), label(&m, "result")), v))
        .collect();
    let lost: BTreeMap<String, f64> = prom
        .query("credtrail_events_lost_total")
        .into_iter()
        .map(|(m, v)| (label(&m, "reason"), v))
        .collect();
    let checks: BTreeMap<String, f64> = prom
        .query("credtrail_unexplained_changes_total")
        .into_iter()
        .map(|(m, v)| (label(&m, "check"), v))
        .collect();
    let lifecycle_lost: f64 = prom
        .query("credtrail_lifecycle_lost_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    let scraped_rss = prom.query("process_resident_memory_bytes");

    drop(rec.stdin.take());
    let out = rec.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");

    let cap = Capture::open(&dir).unwrap();
    let c = &cap.manifest.counters;
    let events = cap.events().unwrap();
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut want_checks: BTreeMap<String, f64> = BTreeMap::new();
    for e in &events {
        *want
            .entry((e.syscall.clone(), result_label(e)))
            .or_default() += 1.0;
        if e.syscall == "unexplained" {
            *want_checks
                .entry(e.option.clone().unwrap_or_default())
                .or_default() += 1.0;
        }
    }
    assert_eq!(
        by_call, want,
        "credtrail_events_total by syscall and result"
    );
    assert_eq!(
        by_call.values().sum::<f64>(),
        c.events_written as f64,
        "the sum is the manifest's events_written"
    );
    assert!(
        want.contains_key(&("setuid".into(), "EPERM".into())),
        "the refused setuid is counted under its errno: {want:?}"
    );
    assert_eq!(checks, want_checks, "unexplained changes by check");
    assert!(
        !checks.is_empty(),
        "the ia32 changes were found unexplained"
    );
    let reasons = [
        ("ringbuf_full", c.ringbuf_full),
        ("fold_full", c.fold_full),
        ("enter_store_failure", c.enter_store_failures),
        ("decode_error", c.decode_errors),
        ("write_error", c.events_lost_io),
    ];
    assert_eq!(
        lost,
        reasons
            .iter()
            .map(|(r, n)| ((*r).to_owned(), *n as f64))
            .collect::<BTreeMap<_, _>>(),
        "losses by reason"
    );
    assert_eq!(lost.values().sum::<f64>(), c.lost() as f64);
    assert_eq!(lifecycle_lost, c.lifecycle_lost() as f64);
    assert!(
        scraped_rss.first().is_some_and(|(_, v)| *v > 1e6),
        "the recorder's RSS is scraped: {scraped_rss:?}"
    );

    // Every stderr line is one JSON object with a level and a message.
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 3, "{stderr}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        stderr.contains("\"sealed "),
        "the closing line is JSON too: {stderr}"
    );
}

#[test]
fn the_metrics_endpoint_answers_only_its_path_and_refuses_bad_addresses() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // A port in use: one line, before anything is loaded.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(record_bin())
        .arg("--out")
        .arg(tmp.path().join("c"))
        .args(["--metrics-addr", &addr, "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(
        line.contains(&format!("--metrics-addr {addr}: cannot listen there")),
        "{line}"
    );
    assert!(!tmp.path().join("c").exists(), "nothing was written");

    let port = free_port();
    let mut rec = Command::new(record_bin())
        .arg("--out")
        .arg(tmp.path().join("d"))
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--duration", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        if let Ok((200, body)) = http_get(port, "/metrics") {
            break body;
        }
        assert!(Instant::now() < deadline, "no /metrics");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text");
    assert!(body.contains("# TYPE credtrail_events counter"), "{body}");
    assert_eq!(http_get(port, "/nothing").unwrap().0, 404);
    // Connections that send nothing hold every slot only until their
    // head timeout (2 s): scrapes resume while they stay open.
    let idle: Vec<_> = (0..32)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = slow.write_all(b"GET /metrics HTTP/1.1\r\n");
    let t0 = Instant::now();
    while !matches!(http_get(port, "/metrics"), Ok((200, _))) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "idle connections held the endpoint for {:?}",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop((idle, slow));
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(rec.id() as i32, libc::SIGINT) };
    assert!(rec.wait().unwrap().success());
}
