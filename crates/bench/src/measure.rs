//! Measuring a child process: wall time, peak memory, /proc fields.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Wall time and peak RSS of one child process. The peak comes from the
/// child's own VmHWM, polled while it runs: `ru_maxrss` would report this
/// (large) harness's RSS for any child it spawned, since Linux carries the
/// parent's high-water mark through the child's exec.
pub(crate) fn measure(cmd: &mut Command) -> anyhow::Result<(Duration, u64)> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(vm_hwm(pid));
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = start.elapsed();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("{cmd:?} failed: {err}");
    }
    Ok((wall, peak))
}

/// The first word of a `/proc/PID/status` field (`VmRSS:` → KiB count);
/// None once the process is gone.
pub(crate) fn proc_status(pid: u32, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_owned)
}

/// A live process's peak resident set (VmHWM), bytes; 0 once it is gone.
pub(crate) fn vm_hwm(pid: u32) -> u64 {
    proc_status(pid, "VmHWM:")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Minimum, median and maximum.
pub(crate) fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}
