//! The long run: the recorder under a steady credential storm plus
//! fork/exec churn, sampled for memory and open files.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use credtrail_capture::Capture;

use crate::measure::proc_status;
use crate::system::Tools;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Fork/exec churn: short-lived processes that each change credentials,
/// counted in `spawned`, until `stop`.
fn start_churn(
    t: &Tools,
    stop: Arc<AtomicBool>,
    spawned: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let workload = t.workload.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let _ = Command::new(&workload)
                .args(["su-like", "--uid", "4242"])
                .stdout(Stdio::null())
                .status();
            spawned.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(40));
        }
    })
}

/// (seconds in, RSS KiB, open fds) of the recorder every 30 s for `secs`.
fn sample(pid: u32, secs: u64) -> Vec<(u64, u64, usize)> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(30).min(Duration::from_secs(secs)));
        samples.push((
            start.elapsed().as_secs(),
            proc_status(pid, "VmRSS:")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0),
            open_fds(pid),
        ));
        eprintln!("soak: {:?}", samples.last());
    }
    samples
}

pub fn soak(t: &Tools, minutes: u64, rate: u64) -> anyhow::Result<String> {
    let dir = t.work.join("soak-capture");
    let mut rec = t.start_recorder(&dir, &["--rotate-seconds", "120"])?;
    let pid = rec.id();
    let secs = minutes * 60;
    let storm = Command::new(&t.workload)
        .args(["storm", "--threads", "2", "--seconds", &secs.to_string()])
        .args(["--rate", &rate.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let churn = start_churn(t, stop.clone(), spawned.clone());
    let samples = sample(pid, secs);
    stop.store(true, Ordering::Relaxed);
    let _ = churn.join();
    let out = storm.wait_with_output()?;
    let issued = serde_json::from_slice::<serde_json::Value>(&out.stdout)?["calls"]
        .as_u64()
        .unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    rec.wait()?;
    let cap = Capture::open(&dir)?;
    let c = &cap.manifest.counters;
    let rss: Vec<u64> = samples.iter().map(|s| s.1).collect();
    let fds: Vec<usize> = samples.iter().map(|s| s.2).collect();
    let mut md = format!(
        "`credtrail-record --rotate-seconds 120` for {minutes} min while `credtrail-workload storm --threads 2 --rate {rate}` runs and a loop starts a short-lived `credtrail-workload su-like` (fork, exec, setresuid, exit) every 40 ms. One run.\n\n- storm calls issued: {issued}; short-lived processes: {}; events written: {}; lifecycle rows: {}; counted losses: {} events, {} lifecycle records; segments sealed: {}\n- recorder RSS (sampled every 30 s): first {:.1} MiB, min {:.1}, max {:.1}, last {:.1} MiB\n- recorder open files: first {}, max {}, last {}\n\n| minute | RSS MiB | open fds |\n|---|---|---|\n",
        spawned.load(Ordering::Relaxed),
        c.events_written,
        c.lifecycle_written,
        c.lost(),
        c.lifecycle_lost(),
        cap.manifest.segments.len(),
        rss.first().copied().unwrap_or(0) as f64 / 1024.0,
        rss.iter().min().copied().unwrap_or(0) as f64 / 1024.0,
        rss.iter().max().copied().unwrap_or(0) as f64 / 1024.0,
        rss.last().copied().unwrap_or(0) as f64 / 1024.0,
        fds.first().copied().unwrap_or(0),
        fds.iter().max().copied().unwrap_or(0),
        fds.last().copied().unwrap_or(0),
    );
    let step = (samples.len() / 10).max(1);
    for (i, (s, r, f)) in samples.iter().enumerate() {
        if i % step == 0 || i + 1 == samples.len() {
            md += &format!(
                "| {:.1} | {:.1} | {f} |\n",
                *s as f64 / 60.0,
                *r as f64 / 1024.0
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(md)
}
