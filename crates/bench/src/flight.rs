//! The flight recorder on a node: what it costs while nothing happens (CPU
//! per hour, memory), and how long a cut of the last minutes takes while
//! it records under load.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use credtrail_capture::manifest::{Counters, Manifest};

use crate::measure::proc_status;
use crate::system::{Tools, dir_bytes};

/// User and system CPU of a process so far, seconds.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

fn kib(pid: u32, key: &str) -> f64 {
    proc_status(pid, key)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

pub fn flight(t: &Tools, idle_secs: u64, window_secs: u64, rate: u64) -> anyhow::Result<String> {
    let root = t.work.join("flight");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let dir = root.join("running");
    let mut rec = t.start_recorder(&dir, &["--keep", "30m"])?;
    let pid = rec.id();
    let idle = idle_phase(pid, &dir, idle_secs)?;
    // Load, then the cut of the last `window_secs`.
    let load = load_phase(t, pid, window_secs, rate)?;
    let incident = root.join("incident");
    let cut = cut_phase(t, &dir, &incident, window_secs)?;
    let (load_rss, load_hwm) = (kib(pid, "VmRSS:"), kib(pid, "VmHWM:"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    rec.wait()?;
    let source = Manifest::read(&dir)?;
    let cut_manifest = Manifest::read(&incident)?;
    let manifest_bytes = std::fs::metadata(dir.join("manifest.json"))?.len();
    let cut_bytes = dir_bytes(&incident)?;

    let Idle {
        cpu: idle_cpu,
        wall: idle_wall,
        rows0,
        rows1,
        rss: idle_rss,
        hwm: idle_hwm,
    } = idle;
    let (load_cpu, load_wall) = load;
    let per_hour = idle_cpu * 3600.0 / idle_wall;
    let line = &cut.line;
    Ok(format!(
        "`credtrail-record --keep 30m` (30 s segments), release build, one run.\n\n\
| phase | wall | recorder CPU | CPU per hour | RSS (peak) | rows written |\n|---|---|---|---|---|---|\n\
| idle (the machine's own activity) | {idle_wall:.0} s | {idle_cpu:.2} s | **{per_hour:.0} s/h ({:.2}% of a core)** | {idle_rss:.1} MiB ({idle_hwm:.1}) | {} events, {} lifecycle |\n\
| `storm --threads 1 --rate {rate}` | {load_wall:.0} s | {load_cpu:.2} s | – | {load_rss:.1} MiB ({load_hwm:.1}) | {} events |\n\n\
- **Cut of the last {} min** (`credtrail-record cut RUNNING INCIDENT --last {window_secs}s`) while the recorder runs: **{:.2} s** wall, {} events, {} bytes in its files (hard links to the running capture's, but for the rewritten one); then `credtrail-replay --verify` of the cut: {:.1} s ({}).\n\
- The cut's own line: `{line}`\n\
- The recorder lost {} events and {} lifecycle records in all; its manifest was {manifest_bytes} bytes with {} segment records at the end.\n",
        per_hour / 36.0,
        rows1.events_written - rows0.events_written,
        rows1.lifecycle_written - rows0.lifecycle_written,
        source.counters.events_written - rows1.events_written,
        window_secs / 60,
        cut.wall.as_secs_f64(),
        cut_manifest.counters.events_written,
        cut_bytes,
        cut.verify_wall.as_secs_f64(),
        if cut.verified { "OK" } else { "FAILED" },
        source.counters.lost(),
        source.counters.lifecycle_lost(),
        source.segments.len(),
    ))
}

/// The recorder while nothing is asked of it.
struct Idle {
    cpu: f64,
    wall: f64,
    rows0: Counters,
    rows1: Counters,
    rss: f64,
    hwm: f64,
}

/// Idle: whatever the machine does on its own.
fn idle_phase(pid: u32, dir: &Path, idle_secs: u64) -> anyhow::Result<Idle> {
    std::thread::sleep(Duration::from_secs(5));
    let (c0, t0) = (cpu_seconds(pid)?, Instant::now());
    let rows0 = Manifest::read(dir)?.counters;
    std::thread::sleep(Duration::from_secs(idle_secs));
    let cpu = cpu_seconds(pid)? - c0;
    let wall = t0.elapsed().as_secs_f64();
    let rows1 = Manifest::read(dir)?.counters;
    let (rss, hwm) = (kib(pid, "VmRSS:"), kib(pid, "VmHWM:"));
    Ok(Idle {
        cpu,
        wall,
        rows0,
        rows1,
        rss,
        hwm,
    })
}

/// A storm a little longer than the window: the recorder's CPU and the
/// storm's wall time.
fn load_phase(t: &Tools, pid: u32, window_secs: u64, rate: u64) -> anyhow::Result<(f64, f64)> {
    let load_secs = window_secs + 20;
    let (c1, t1) = (cpu_seconds(pid)?, Instant::now());
    let storm = Command::new(&t.workload)
        .args([
            "storm",
            "--threads",
            "1",
            "--seconds",
            &load_secs.to_string(),
        ])
        .args(["--rate", &rate.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !storm.success() {
        bail!("credtrail-workload storm failed");
    }
    let load_cpu = cpu_seconds(pid)? - c1;
    let load_wall = t1.elapsed().as_secs_f64();
    Ok((load_cpu, load_wall))
}

/// A cut of the running capture and its verification.
struct Cut {
    wall: Duration,
    /// What `cut` printed on stderr.
    line: String,
    verify_wall: Duration,
    verified: bool,
}

fn cut_phase(t: &Tools, dir: &Path, incident: &Path, window_secs: u64) -> anyhow::Result<Cut> {
    let started = Instant::now();
    let out = Command::new(&t.record)
        .arg("cut")
        .arg(dir)
        .arg(incident)
        .args(["--last", &format!("{window_secs}s")])
        .output()?;
    let cut_wall = started.elapsed();
    if !out.status.success() {
        bail!("cut failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let started = Instant::now();
    let verified = Command::new(&t.replay)
        .arg("--verify")
        .arg(incident)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let verify_wall = started.elapsed();
    Ok(Cut {
        wall: cut_wall,
        line,
        verify_wall,
        verified: verified.success(),
    })
}
