//! What an answer must say about the captures it rests on: events lost
//! while recording, a recovery after a crash, a recorder that stopped
//! early, a manifest whose hash chain does not hold. One text per fact,
//! printed on stderr with every answer and shown at the top of the report.

use credtrail_capture::manifest::{CaptureState, Counters, Manifest};

use crate::{CaptureInfo, Trust, answered, lossy};

/// Chain problems named per capture; the rest are counted.
const MAX_CHAIN_PROBLEMS: usize = 3;

/// One warning about one capture (text unescaped: callers escape it for
/// where it goes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// `lost`, `folded`, `corrupt`, `recovered`, `failed`, `unsealed`,
    /// `chain` or `unverified`.
    pub kind: &'static str,
    pub capture: String,
    pub text: String,
}

/// Every warning about the answered captures, in capture order.
pub fn warnings(caps: &[CaptureInfo], trust: Trust) -> Vec<Warning> {
    let mut out: Vec<Warning> = lossy(caps)
        .into_iter()
        .map(|(c, counters)| lost(c, counters))
        .collect();
    for c in answered(caps) {
        out.extend(counter_warnings(c));
        out.extend(state_warning(c));
        out.extend(chain_warnings(c));
    }
    if trust == Trust::BoundsOnly && answered(caps).next().is_some() {
        out.push(Warning {
            kind: "unverified",
            capture: String::new(),
            text: "--no-verify: segments were read without checking their sha256 against the manifests".into(),
        });
    }
    out
}

fn warning(kind: &'static str, c: &CaptureInfo, text: String) -> Warning {
    Warning {
        kind,
        capture: c.name.clone(),
        text,
    }
}

/// What `c` lost while recording.
fn lost(c: &CaptureInfo, counters: &Counters) -> Warning {
    warning(
        "lost",
        c,
        format!(
            "{} lost {} events and {} lifecycle records while recording (ringbuf_full {}, enter_store_failures {}, decode_errors {}); answers may be incomplete",
            c.name,
            counters.lost(),
            counters.lifecycle_lost(),
            counters.ringbuf_full,
            counters.enter_store_failures,
            counters.decode_errors
        ),
    )
}

/// What `c`'s counters say beyond its losses: calls folded, the processes
/// whose events were lost, counts no recorder could have made.
fn counter_warnings(c: &CaptureInfo) -> Vec<Warning> {
    let m = &c.manifest;
    let mut out = Vec::new();
    if m.counters.folded_calls > 0 {
        out.push(warning(
            "folded",
            c,
            format!(
                "{}: {} calls of processes over their share of a full ring buffer were folded into {} rows (repeat_count; {}); counts of calls include them, row counts do not",
                c.name,
                m.counters.folded_calls,
                m.counters.folded_rows,
                Manifest::most_by_pid(&m.folded_by_pid, 5)
            ),
        ));
    }
    if !m.lost_by_pid.is_empty() {
        out.push(warning(
            "lost",
            c,
            format!(
                "{}: the events lost were made by {} processes ({})",
                c.name,
                m.lost_by_pid.len(),
                Manifest::most_by_pid(&m.lost_by_pid, 5),
            ),
        ));
    }
    if let Some(why) = m.counters.implausible() {
        out.push(warning(
            "corrupt",
            c,
            format!(
                "{}: {why}; its loss counts cannot be trusted (`credtrail-replay --verify` reports it)",
                c.name
            ),
        ));
    }
    out
}

/// What `c`'s state says may be missing (None when sealed).
fn state_warning(c: &CaptureInfo) -> Option<Warning> {
    let m = &c.manifest;
    match m.state {
        CaptureState::Recovered => Some(warning(
            "recovered",
            c,
            format!(
                "{} was recovered after its recorder died: at least {} events lost, and what happened after {} may be missing",
                c.name,
                m.recovery.as_ref().map_or(0, |r| r.events_lost_at_least),
                m.end
                    .as_ref()
                    .map_or("its last checkpoint", |e| e.time.as_str())
            ),
        )),
        CaptureState::Failed => Some(warning(
            "failed",
            c,
            format!(
                "{} stopped recording on an error ({}): what happened after it is missing",
                c.name,
                m.error.as_deref().unwrap_or("no error recorded")
            ),
        )),
        CaptureState::Recording => Some(warning(
            "unsealed",
            c,
            format!(
                "{} is not sealed (its recorder is still running, or died: `credtrail-record recover` seals it): its newest events may be missing",
                c.name
            ),
        )),
        CaptureState::Sealed => None,
    }
}

/// The first problems of `c`'s hash chain, the rest counted.
fn chain_warnings(c: &CaptureInfo) -> Vec<Warning> {
    let problems = c.manifest.check_chain();
    let mut out: Vec<Warning> = problems
        .iter()
        .take(MAX_CHAIN_PROBLEMS)
        .map(|p| {
            warning(
                "chain",
                c,
                format!(
                    "{} failed verification: its manifest's hash chain does not hold ({p}); `credtrail-replay --verify` checks it in full",
                    c.name
                ),
            )
        })
        .collect();
    if problems.len() > MAX_CHAIN_PROBLEMS {
        out.push(warning(
            "chain",
            c,
            format!(
                "{}: … and {} more hash chain problems",
                c.name,
                problems.len() - MAX_CHAIN_PROBLEMS
            ),
        ));
    }
    out
}
