//! The recorder watched on a node: what a Prometheus scrape of
//! `--metrics-addr` costs it, and how long an automatic cut (`--cut-on
//! unexplained`) takes from the triggering change to a sealed cut that
//! `credtrail-replay --verify` accepts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    let mut rec = start_watched(t, &dir, &root, port)?;
    let pid = rec.id();
    std::thread::sleep(Duration::from_secs(3));
    let scraped = scrape_cost(pid, port, scrapes)?;
    let cuts = time_cuts(t, &root, rounds)?;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    rec.wait()?;
    Ok(report(&scraped, &cuts, scrapes, rounds))
}

/// The recorder with its metrics endpoint on `port` and automatic cuts
/// into `root`.
fn start_watched(t: &Tools, dir: &Path, root: &Path, port: u16) -> anyhow::Result<Child> {
    t.start_recorder(
        dir,
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
    )
}

/// What back-to-back scrapes cost the recorder.
struct Scrapes {
    /// Recorder CPU per scrape, idle CPU subtracted, seconds.
    cpu: f64,
    /// Each scrape's latency, ms.
    latency: Vec<f64>,
    /// The last exposition's size.
    bytes: usize,
}

/// Idle CPU, then the same wall time of back-to-back scrapes.
fn scrape_cost(pid: u32, port: u16, scrapes: u32) -> anyhow::Result<Scrapes> {
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
    let cpu = (cpu_seconds(pid)? - c1 - idle_rate * wall).max(0.0) / f64::from(scrapes);
    Ok(Scrapes {
        cpu,
        latency,
        bytes,
    })
}

/// Trigger-to-sealed-cut and verification times, seconds, per round.
struct Cuts {
    sealed: Vec<f64>,
    verify: Vec<f64>,
    /// Events in the last cut.
    events: u64,
}

/// Trigger to sealed cut, and its verification.
fn time_cuts(t: &Tools, root: &Path, rounds: u32) -> anyhow::Result<Cuts> {
    let mut cuts = Cuts {
        sealed: Vec::new(),
        verify: Vec::new(),
        events: 0,
    };
    for _ in 0..rounds {
        let (cut, sealed) = trigger_cut(t, root)?;
        cuts.sealed.push(sealed);
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
        cuts.verify.push(v.elapsed().as_secs_f64());
        cuts.events = Manifest::read(&cut)?.counters.events_written;
        // Past the cooldown before the next trigger.
        std::thread::sleep(Duration::from_millis(1500));
    }
    Ok(cuts)
}

/// Makes the change `--cut-on unexplained` fires on and waits for the
/// sealed cut it brings: the cut and the seconds from trigger to seal.
fn trigger_cut(t: &Tools, root: &Path) -> anyhow::Result<(PathBuf, f64)> {
    let before = sealed_captures(root).len();
    let started = Instant::now();
    let out = Command::new(&t.workload)
        .args(["ia32-toggle", "--toggles", "2"])
        .stdout(Stdio::null())
        .status()?;
    if !out.success() {
        bail!("credtrail-workload ia32-toggle failed");
    }
    let cut = loop {
        if let Some(c) = sealed_captures(root).get(before) {
            break c.clone();
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no cut under {} within 60 s", root.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok((cut, started.elapsed().as_secs_f64()))
}

fn report(s: &Scrapes, c: &Cuts, scrapes: u32, rounds: u32) -> String {
    let (scrape_cpu, bytes, events) = (s.cpu, s.bytes, c.events);
    let sealed_median = median(c.sealed.clone());
    format!(
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
        median(s.latency.clone()),
        s.latency.iter().copied().fold(0.0, f64::max),
        c.sealed.iter().copied().fold(f64::MAX, f64::min),
        c.sealed.iter().copied().fold(0.0, f64::max),
        AFTER.as_secs(),
        sealed_median - AFTER.as_secs_f64(),
        median(c.verify.clone()),
    )
}
