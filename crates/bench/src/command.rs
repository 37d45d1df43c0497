//! `credtrail-record -- COMMAND` (issue 37) as a CI step costs it: the
//! time from start to exit around a command that does nothing, and 100,000
//! credential calls timed untraced, inside a one-command recording, and
//! under a host-wide recorder (BENCHMARKS.md's `command` section).

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::measure::stats;
use crate::system::{Running, Tool, Tools};

/// Credential calls timed in each condition.
const CALLS: u64 = 100_000;

/// `credtrail-record --out DIR -- ARGV`, to its end; the command's stdout.
fn record_command(t: &Tools, tag: &str, argv: &[&str]) -> anyhow::Result<String> {
    let dir = t.work.join(format!("command-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(&t.record)
        .arg("--out")
        .arg(&dir)
        .arg("--")
        .args(argv)
        .stderr(Stdio::null())
        .output()
        .context("cannot run credtrail-record")?;
    if !out.status.success() {
        bail!("credtrail-record -- {argv:?} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ns_of(report: &str) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_str(report.lines().last().unwrap_or_default())?;
    v["ns_per_call"].as_f64().context("no ns_per_call")
}

pub fn command(t: &Tools, runs: usize) -> anyhow::Result<String> {
    let workload = t.workload.display().to_string();
    let calls = CALLS.to_string();
    let timed = [
        workload.as_str(),
        "time-calls",
        "--call",
        "setresuid",
        "--calls",
        &calls,
    ];
    let (mut startup, mut untraced, mut scoped, mut host) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs {
        eprintln!("command round {round}");
        let t0 = Instant::now();
        record_command(t, "true", &["true"])?;
        startup.push(t0.elapsed().as_secs_f64() * 1e3);
        untraced.push(t.ns_per_call("setresuid", CALLS)?);
        scoped.push(ns_of(&record_command(t, "calls", &timed)?)?);
        let r = Running::start(Tool::Credtrail, t, "command-host")?;
        host.push(t.ns_per_call("setresuid", CALLS)?);
        r.stop()?;
    }
    let fmt = |v: Vec<f64>, unit: &str| {
        let (lo, mid, hi) = stats(v);
        format!("{mid:.0} {unit} ({lo:.0}–{hi:.0})")
    };
    let base = stats(untraced.clone()).1;
    let delta = |v: &[f64]| format!("**{:+.0} ns**", stats(v.to_vec()).1 - base);
    Ok(format!(
        "{runs} rounds; median (min–max).\n\n| what | time |\n|---|---|\n| `credtrail-record --out DIR -- true`, start to exit (load and attach the programs, start the command, seal the capture) | {} |\n| {CALLS} setresuid calls (euid 0 ↔ 1234), untraced | {} per call |\n| the same inside `credtrail-record -- …` (only the command's tree recorded) | {} per call, {} |\n| the same under a host-wide `credtrail-record` | {} per call, {} |\n",
        fmt(startup, "ms"),
        fmt(untraced, "ns"),
        fmt(scoped.clone(), "ns"),
        delta(&scoped),
        fmt(host.clone(), "ns"),
        delta(&host),
    ))
}
