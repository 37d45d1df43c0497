//! Replay speed: `credtrail-replay` over one capture in each print format
//! and `--verify`, optionally beside another build of it (a baseline), the
//! two taking turns run by run so both meet the same machine.

use std::path::Path;
use std::process::Command;

use credtrail_capture::Capture;

use crate::measure::{measure, stats};

/// What is timed: each print format and `--verify`.
const MODES: [(&str, &[&str]); 5] = [
    ("`--print compact`", &["--print", "compact"]),
    ("`--print json`", &["--print", "json"]),
    ("`--print tetragon`", &["--print", "tetragon"]),
    (
        "`--print tetragon-compact`",
        &["--print", "tetragon-compact"],
    ),
    ("`--verify`", &["--verify"]),
];

/// Median seconds and peak RSS of `runs` runs of each binary with `args`,
/// the binaries taking turns run by run.
fn timed(
    binaries: &[&Path],
    capture: &Path,
    args: &[&str],
    runs: usize,
) -> anyhow::Result<Vec<(f64, u64)>> {
    let mut times = vec![Vec::new(); binaries.len()];
    let mut rss = vec![0; binaries.len()];
    for _ in 0..runs.max(1) {
        for (i, b) in binaries.iter().enumerate() {
            let (d, r) = measure(Command::new(b).arg(capture).args(args))?;
            times[i].push(d.as_secs_f64());
            rss[i] = rss[i].max(r);
        }
    }
    Ok(times
        .into_iter()
        .zip(rss)
        .map(|(t, r)| (stats(t).1, r))
        .collect())
}

/// The replay table (markdown): events/s of `replay` in every mode, and
/// of `baseline` beside it when given.
pub fn bench_replay(
    replay: &Path,
    baseline: Option<&Path>,
    capture: &Path,
    runs: usize,
) -> anyhow::Result<String> {
    let events = Capture::open(capture)?
        .manifest
        .counters
        .events_written
        .max(1);
    let mut md = format!(
        "Replay of {} ({events} events; output to /dev/null; {runs} runs, median; peak RSS):\n\n",
        capture.display()
    );
    md += match baseline {
        Some(_) => {
            "| replay | baseline events/s | events/s | speed-up | baseline RSS MiB | RSS MiB |\n|---|---|---|---|---|---|\n"
        }
        None => "| replay | median s | events/s | peak RSS MiB |\n|---|---|---|---|\n",
    };
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    for (label, args) in MODES {
        eprintln!("replay: {label}");
        match baseline {
            Some(old) => {
                let both = timed(&[old, replay], capture, args, runs)?;
                let ((t0, r0), (t1, r1)) = (both[0], both[1]);
                md += &format!(
                    "| {label} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.0} |\n",
                    events as f64 / t0,
                    events as f64 / t1,
                    t0 / t1,
                    mib(r0),
                    mib(r1)
                );
            }
            None => {
                let (t, r) = timed(&[replay], capture, args, runs)?[0];
                md += &format!(
                    "| {label} | {t:.2} | {:.0} | {:.0} |\n",
                    events as f64 / t,
                    mib(r)
                );
            }
        }
    }
    Ok(md)
}
