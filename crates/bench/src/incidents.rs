//! The recorder watched on a node: what a Prometheus scrape of
//! `--metrics-addr` costs it, and how long an automatic cut (`--cut-on
//! unexplained`) takes from the triggering change to a sealed cut that
//! `credtrail-replay --verify` accepts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use credtrail_capture::manifest::Manifest;
use credtrail_testkit::{free_port, http_get, sealed_captures};

use crate::flight::cpu_seconds;
use crate::system::Tools;

/// How long the window runs past its event (`--cut-after`).
const AFTER: Duration = Duration::from_secs(1);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn incidents(t: &Tools, scrapes: u32, rounds: u32) -> anyhow::Result<String> {
    let work = t.work.join("incidents");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let (dir, root) = (work.join("running"), work.join("cuts"));
    let port = free_port();
    let mut rec = t.start_recorder(
        &dir,
        &[
            "--keep",
            "30m",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--cut-on",
            "unexplained",
            "--cut-last",
            "1m",
            "--cut-after",
            &format!("{}s", AFTER.as_secs()),
            "--cut-cooldown",
            "1s",
            "--cut-root",
            root.to_str().context("work path")?,
        ],
    )?;
    let pid = rec.id();
    std::thread::sleep(Duration::from_secs(3));

    // Idle CPU, then the same wall time of back-to-back scrapes.
    let (c0, t0) = (cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let idle_rate = (cpu_seconds(pid)? - c0) / t0.elapsed().as_secs_f64();
    let mut bytes = 0;
    let mut latency = Vec::new();
    let (c1, t1) = (cpu_seconds(pid)?, Instant::now());
    for _ in 0..scrapes {
        let s = Instant::now();
        let (status, body) = http_get(port, "/metrics").map_err(anyhow::Error::msg)?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        latency.push(s.elapsed().as_secs_f64() * 1e3);
        bytes = body.len();
    }
    let wall = t1.elapsed().as_secs_f64();
    let scrape_cpu = (cpu_seconds(pid)? - c1 - idle_rate * wall).max(0.0) / f64::from(scrapes);

    // Trigger to sealed cut, and its verification.
    let mut sealed = Vec::new();
    let mut verify = Vec::new();
    let mut events = 0;
    for _ in 0..rounds {
        let before = sealed_captures(&root).len();
        let started = Instant::now();
        let out = Command::new(&t.workload)
            .args(["ia32-toggle", "--toggles", "2"])
            .stdout(Stdio::null())
            .status()?;
        if !out.success() {
            bail!("credtrail-workload ia32-toggle failed");
        }
        let cut = loop {
            if let Some(c) = sealed_captures(&root).get(before) {
                break c.clone();
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("no cut under {} within 60 s", root.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        sealed.push(started.elapsed().as_secs_f64());
        let v = Instant::now();
        let ok = Command::new(&t.replay)
            .arg("--verify")
            .arg(&cut)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !ok.success() {
            bail!("{} does not verify", cut.display());
        }
        verify.push(v.elapsed().as_secs_f64());
        events = Manifest::read(&cut)?.counters.events_written;
        // Past the cooldown before the next trigger.
        std::thread::sleep(Duration::from_millis(1500));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    rec.wait()?;
    let sealed_median = median(sealed.clone());
    Ok(format!(
        "`credtrail-record --keep 30m --metrics-addr 127.0.0.1:PORT --cut-on unexplained --cut-last 1m --cut-after {}s`, release build, one run.\n\n\
| what | figure |\n|---|---|\n\
| recorder CPU per scrape ({scrapes} scrapes back to back, idle CPU subtracted) | **{:.0} µs** |\n\
| at Prometheus' usual 15 s interval | **{:.4}% of a core** ({:.2} s of CPU per day) |\n\
| scrape latency, median (max) | {:.2} ms ({:.2} ms) |\n\
| exposition size | {bytes} bytes |\n\
| trigger (an `int $0x80` setresuid, `workload ia32-toggle`) to a sealed cut, median of {rounds} (min, max) | **{sealed_median:.2} s** ({:.2}, {:.2}); of which --cut-after {} s |\n\
| so after the window's end | {:.2} s |\n\
| `credtrail-replay --verify` of the cut, median | {:.2} s (a cut of {events} events) |\n",
        AFTER.as_secs(),
        scrape_cpu * 1e6,
        scrape_cpu / 15.0 * 100.0,
        scrape_cpu / 15.0 * 86_400.0,
        median(latency.clone()),
        latency.iter().copied().fold(0.0, f64::max),
        sealed.iter().copied().fold(f64::MAX, f64::min),
        sealed.iter().copied().fold(0.0, f64::max),
        AFTER.as_secs(),
        sealed_median - AFTER.as_secs_f64(),
        median(verify),
    ))
}
