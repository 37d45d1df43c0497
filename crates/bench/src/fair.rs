//! A flood hides nothing (issue 34): a 2-thread storm flat out beside a
//! quiet process changing its euid every 50 ms, once toggling two
//! transitions (folded in the kernel) and once making a new one with every
//! call (nothing to fold). Per process: calls issued, rows, folded calls
//! and losses counted against it; the recorder's CPU per call and memory.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use credtrail_capture::Capture;
use credtrail_capture::model::event::Event;

use crate::system::{Running, Stopped, Tool, Tools};

/// What the capture holds of one process's calls.
#[derive(Default)]
struct Held {
    rows: u64,
    folded_rows: u64,
    calls: u64,
}

fn held(cap: &Capture, pid: u64) -> anyhow::Result<Held> {
    let mut h = Held::default();
    for e in cap.stream::<Event>() {
        let e = e?;
        if u64::from(e.pid) == pid {
            h.rows += 1;
            h.folded_rows += u64::from(e.repeat_count.is_some());
            h.calls += e.calls();
        }
    }
    Ok(h)
}

fn report(out: std::process::Output) -> anyhow::Result<(u64, u64)> {
    anyhow::ensure!(
        out.status.success(),
        "credtrail-workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok((
        v["pid"].as_u64().context("no pid")?,
        v["calls"].as_u64().context("no calls")?,
    ))
}

fn pct(part: u64, whole: u64) -> String {
    format!("{:.1}%", part as f64 * 100.0 / whole.max(1) as f64)
}

/// Both storms under the default recorder, `seconds` each.
pub fn fair(t: &Tools, seconds: u64) -> anyhow::Result<String> {
    let mut md = format!(
        "`credtrail-workload storm --threads 2 --seconds {seconds}` flat out (toggling: euid 0 ↔ 1234, two transitions; varying: a new euid every call) beside `storm --threads 1 --rate 20 --uid 4321` (one change every 50 ms, from 1 s in), default recorder settings; one run each. *Accounted* = rows + folded calls + losses counted against the process.\n\n\
         | storm | storm calls | rows | folded calls (rows) | lost (its pid) | accounted | quiet: calls, rows | recorder CPU per call issued | peak RSS |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for (name, call) in [("toggling", "setresuid"), ("varying", "setresuid-vary")] {
        eprintln!("fair: {name} storm");
        let r = Running::start(Tool::Credtrail, t, &format!("fair-{name}"))?;
        let storm = Command::new(&t.workload)
            .args(["storm", "--threads", "2", "--seconds", &seconds.to_string()])
            .args(["--call", call])
            .stdout(Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_secs(1));
        let quiet = Command::new(&t.workload)
            .args(["storm", "--threads", "1", "--rate", "20", "--uid", "4321"])
            .args(["--seconds", &seconds.saturating_sub(2).max(1).to_string()])
            .output()?;
        let (quiet_pid, quiet_issued) = report(quiet)?;
        let (storm_pid, storm_issued) = report(storm.wait_with_output()?)?;
        std::thread::sleep(Duration::from_secs(2));
        let Stopped::Credtrail {
            dir,
            cpu_s,
            max_rss,
        } = r.stop()?
        else {
            unreachable!("credtrail was started");
        };
        let cap = Capture::open(&dir)?;
        let s = held(&cap, storm_pid)?;
        let q = held(&cap, quiet_pid)?;
        let lost = cap
            .manifest
            .lost_by_pid
            .get(&(storm_pid as u32))
            .copied()
            .unwrap_or(0);
        let folded = s.calls - (s.rows - s.folded_rows);
        md += &format!(
            "| {name} | {storm_issued} | {} | {folded} ({}) | {lost} | {} | {quiet_issued}, {} ({}) | {:.0} ns | {:.0} MiB |\n",
            s.rows - s.folded_rows,
            s.folded_rows,
            pct(s.calls + lost, storm_issued),
            q.rows - q.folded_rows,
            pct(q.rows - q.folded_rows, quiet_issued),
            cpu_s * 1e9 / (storm_issued + quiet_issued).max(1) as f64,
            max_rss as f64 / (1 << 20) as f64,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(md)
}
