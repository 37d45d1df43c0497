//! What `--policy` costs and saves: the guide's policy (every event from
//! the host's pid namespace left out in the kernel) against no policy and a
//! policy that keeps everything (`commit_creds`), with a host storm.

use std::path::{Path, PathBuf};
use std::time::Duration;

use credtrail_capture::Capture;

use crate::measure::stats;
use crate::system::{Running, Stopped, Tools};

/// A policy file of `tests/policies/tetragon/` (Tetragon's own examples).
fn tetragon_policy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/policies/tetragon")
        .join(name)
}

/// (label, the recorder's arguments; None: untraced).
fn conditions() -> Vec<(&'static str, Option<Vec<String>>)> {
    let policy = |f: &str| {
        Some(vec![
            "--policy".to_owned(),
            tetragon_policy(f).display().to_string(),
        ])
    };
    vec![
        ("untraced", None),
        ("credtrail, no policy", Some(Vec::new())),
        (
            "credtrail --policy (the guide's: host pid namespace excluded)",
            policy("process.credentials.changes.at.syscalls.yaml"),
        ),
        (
            "credtrail --policy commit_creds (everything kept)",
            policy("kprobe_commit_creds.yaml"),
        ),
    ]
}

/// One markdown table: setresuid per call (median of `runs`), then a
/// storm of `seconds` on every core: events written, left out, lost, and
/// the recorder's CPU.
pub fn policy(t: &Tools, runs: usize, seconds: u64) -> anyhow::Result<String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut md = format!(
        "Callers on the host. setresuid toggling its euid (`time-calls`, 200,000 calls, median of {runs} rounds, min–max), then `storm --threads {threads} --seconds {seconds}` (every core flat out) under each condition. With the guide's policy every storm event is left out in the kernel, before it takes ring buffer space: *written* 0, *left out* = `policy_filtered`. Recorder CPU is its user + system time from the storm's start until 2 s after its end (`/proc/PID/stat`; start-up excluded).\n\n| condition | setresuid ns/call | storm calls/s | events written | left out by the policy | lost | recorder CPU | per call issued |\n|---|---|---|---|---|---|---|---|\n"
    );
    let mut base = None;
    for (label, args) in conditions() {
        eprintln!("policy: {label}");
        let mut times = Vec::new();
        let mut storm = None;
        for round in 0..runs {
            let running = match &args {
                None => Running::None,
                Some(a) => {
                    let dir = t.work.join("capture-policy");
                    let a: Vec<&str> = a.iter().map(String::as_str).collect();
                    Running::Credtrail {
                        child: t.start_recorder(&dir, &a)?,
                        dir,
                    }
                }
            };
            times.push(t.ns_per_call("setresuid", 200_000)?);
            if round + 1 == runs {
                let pid = match &running {
                    Running::Credtrail { child, .. } => Some(child.id()),
                    _ => None,
                };
                let before = pid.map(cpu_s);
                let v = t.storm(threads, seconds)?;
                // Let the recorder drain before stopping it.
                std::thread::sleep(Duration::from_secs(2));
                let used = pid.map(cpu_s).zip(before).map(|(a, b)| a - b);
                storm = Some((v["calls"].as_u64().unwrap_or(0), used, running.stop()?));
            } else {
                running.stop()?;
            }
        }
        let (lo, mid, hi) = stats(times);
        let delta = match base {
            None => {
                base = Some(mid);
                String::new()
            }
            Some(b) => format!(", **{:+.0}**", mid - b),
        };
        let Some((issued, used, stopped)) = storm else {
            continue;
        };
        let rate = issued as f64 / seconds as f64;
        let (written, filtered, lost, cpu) = match stopped {
            Stopped::Credtrail { dir, .. } => {
                let c = Capture::open(&dir)?.manifest.counters;
                (
                    c.events_written.to_string(),
                    c.policy_filtered.to_string(),
                    c.lost().to_string(),
                    used,
                )
            }
            _ => ("–".into(), "–".into(), "–".into(), None),
        };
        let (cpu, per_call) = match cpu {
            Some(s) => (
                format!("{s:.2} s"),
                format!("{:.0} ns", s * 1e9 / issued.max(1) as f64),
            ),
            None => ("–".into(), "–".into()),
        };
        md += &format!(
            "| {label} | {mid:.0} ({lo:.0}–{hi:.0}){delta} | {rate:.0} | {written} | {filtered} | {lost} | {cpu} | {per_call} |\n"
        );
    }
    Ok(md)
}

/// User + system CPU seconds of a process so far.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces: utime is the
    // 14th field of the line, the 12th after the closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    f.iter().sum::<u64>() as f64 / hz
}
