//! Per-call overhead: each condition timing the same calls on one thread,
//! round after round (BENCHMARKS.md's `overhead` section).

use crate::measure::stats;
use crate::system::{Running, Tool, Tools};

/// The calls timed under each tool: (`time-calls --call`, label, calls
/// per round, calls per round under auditd, which slows credential calls
/// ~100×).
const TIMED_CALLS: [(&str, &str, u64, u64); 6] = [
    ("setresuid", "setresuid", 200_000, 20_000),
    ("getpid", "getpid", 2_000_000, 2_000_000),
    ("prctl-name", "prctl(PR_SET_NAME)", 1_000_000, 1_000_000),
    ("io-uring-nop", "io_uring NOP", 500_000, 500_000),
    ("getpid32", "getpid via int $0x80", 2_000_000, 2_000_000),
    (
        "switch",
        "sched_yield to a thread on the same CPU (2 switches)",
        500_000,
        500_000,
    ),
];

/// Per-call overhead: `runs` rounds of every tool, each timing every call
/// of [`TIMED_CALLS`].
pub fn overhead(t: &Tools, runs: usize) -> anyhow::Result<String> {
    let tools = [
        Tool::None,
        Tool::Credtrail,
        Tool::CredtrailSubjective,
        Tool::CredtrailNoDetect,
        Tool::CredtrailCompat,
        Tool::Bpftrace,
        Tool::Auditd,
    ];
    // times[tool][call]: ns per call, one per round.
    let mut times = vec![vec![Vec::new(); TIMED_CALLS.len()]; tools.len()];
    for round in 0..runs {
        for (i, tool) in tools.iter().enumerate() {
            eprintln!("overhead round {round}: {}", tool.name());
            let r = Running::start(*tool, t, "overhead")?;
            for (j, (call, _, calls, audited)) in TIMED_CALLS.iter().enumerate() {
                let n = if *tool == Tool::Auditd {
                    *audited
                } else {
                    *calls
                };
                times[i][j].push(t.ns_per_call(call, n)?);
            }
            r.stop()?;
        }
    }
    let medians: Vec<Vec<(f64, f64, f64)>> = times
        .into_iter()
        .map(|per_call| per_call.into_iter().map(stats).collect())
        .collect();
    let mut md = format!(
        "`credtrail-workload time-calls` on one thread, {runs} rounds, each round runs every condition in turn (fresh processes each time): setresuid toggling its euid 0 ↔ 1234 (a real change every call, recorded); getpid (traced by nobody); prctl(PR_SET_NAME) (credtrail's prctl hook runs and drops it in the kernel); an io_uring NOP (credtrail's request hook runs and returns: no personality); getpid through the 32-bit entry; sched_yield between two threads pinned to one CPU (two context switches per call, each a switch-out the detector checks). `credtrail` has detection on as by default (switch-out check, 1 s sweep); the row without them shows what they cost, the row with `--subjective-check` what the return-to-user check of subjective credentials costs. Median ns per call (min–max), overhead against untraced from the medians.\n\n| condition |"
    );
    for (_, label, _, _) in TIMED_CALLS {
        md += &format!(" {label} |");
    }
    md += "\n|---|";
    md += &"---|".repeat(TIMED_CALLS.len());
    md += "\n";
    for (i, tool) in tools.iter().enumerate() {
        md += &format!("| {} |", tool.name());
        for (j, &(lo, mid, hi)) in medians[i].iter().enumerate() {
            let base = medians[0][j].1;
            let delta = if i == 0 {
                String::new()
            } else {
                format!(", **{:+.0} ns**", mid - base)
            };
            md += &format!(" {mid:.0} ({lo:.0}–{hi:.0}){delta} |");
        }
        md += "\n";
    }
    Ok(md)
}
