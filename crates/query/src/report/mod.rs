//! `credtrail-query report`: one self-contained HTML page a person can
//! look at before querying: what the captures cover and what they lost, a
//! timeline of credential changes per pod or process with the findings
//! marked on it, the process tree around each privilege raise, and the
//! findings tables. The findings are the questions' own answers
//! (`became-root`, `caps`, `groups`, `failed`, `unexplained`): one
//! definition of each fact, here and on the command line.
//!
//! [`build`] makes the data ([`data`]), [`html::render`] the page.

pub mod data;
pub mod html;
mod timeline;
mod tree;

use std::collections::{BTreeSet, HashMap};

use credtrail_cli::progress::Progress;
use polars::prelude::DataFrame;

use crate::filters::Filters;
use crate::view::{self, Kind};
use crate::warnings::Warning;
use crate::{CaptureInfo, QueryError, Trust, answered, questions};
use credtrail_cli::term::table::Layout;
use data::{
    CaptureSummary, Cells, DROP, FindingRow, Findings, Header, MAX_ROWS, Mark, RAISE, REFUSED,
    Report, Timeline, Tree, UNEXPLAINED, times_ns,
};
use timeline::{Placed, lane_of};

/// Process trees drawn (one per raising process image, earliest first).
pub const MAX_TREES: usize = 50;

/// One question's answer, with what the page needs to place its rows.
struct Answer {
    question: &'static str,
    title: &'static str,
    /// Its first rows at least (all but caps' and groups').
    frame: DataFrame,
    /// Rows in the whole answer.
    total: usize,
}

/// The report's data for `caps` as the filters keep it.
pub fn build(
    caps: &[CaptureInfo],
    f: &Filters,
    trust: Trust,
    warnings: Vec<Warning>,
) -> Result<Report, QueryError> {
    let answers = {
        let _p = Progress::spinner("answering became-root, caps, groups and failed");
        let cut = Some(MAX_ROWS);
        [
            (
                "became-root",
                "Became root",
                questions::became_root_rows(caps, f, cut)?,
            ),
            (
                "caps",
                "Capabilities gained (+) and lost (-)",
                questions::caps_rows(caps, f, cut)?,
            ),
            (
                "groups",
                "Supplementary groups gained (+) and lost (-)",
                questions::groups_rows(caps, f, cut)?,
            ),
            (
                "failed",
                "Refused attempts",
                questions::failed_rows(caps, f, cut)?,
            ),
        ]
        .into_iter()
        .map(|(question, title, (frame, total))| Answer {
            question,
            title,
            frame,
            total,
        })
        .collect::<Vec<_>>()
    };
    // Every row shown is a mark; raises get a tree.
    let mut placed: Vec<(usize, usize, Placed)> = Vec::new();
    let mut targets: Vec<tree::Target> = Vec::new();
    let mut tree_of: HashMap<(String, String), usize> = HashMap::new();
    let mut tree_rows: Vec<String> = Vec::new();
    let mut row_trees: HashMap<(usize, usize), usize> = HashMap::new();
    for (q, a) in answers.iter().enumerate() {
        let c = Cells::of(&a.frame)?;
        for (i, (kind, t, key, label)) in marks_of(a, &c)?.into_iter().enumerate() {
            if let (RAISE, Some(capture), Some(exec_id), Some(t)) =
                (kind, c.get("capture", i), c.get("exec_id", i), t)
            {
                let k = (capture.clone(), exec_id.clone());
                let next = targets.len();
                let tree = match tree_of.get(&k) {
                    Some(n) => Some(*n),
                    None if next < MAX_TREES => {
                        tree_of.insert(k, next);
                        targets.push(tree::Target {
                            capture,
                            exec_id,
                            syscall: c.text("syscall", i),
                            time_ns: t,
                        });
                        tree_rows.push(row_id(a.question, i));
                        Some(next)
                    }
                    None => None,
                };
                if let Some(n) = tree {
                    row_trees.insert((q, i), n);
                }
            }
            placed.push((q, i, placed_mark(kind, t, key, label, a.question, i)));
        }
    }
    let (snaps, found) = tree::collect(caps, &targets, f)?;
    let (frame, total) = found.frame(f)?;
    let unexplained = Answer {
        question: "unexplained",
        title: "Unexplained changes",
        total,
        frame,
    };
    let uq = answers.len();
    let c = Cells::of(&unexplained.frame)?;
    for (i, (kind, t, key, label)) in marks_of(&unexplained, &c)?.into_iter().enumerate() {
        placed.push((
            uq,
            i,
            placed_mark(kind, t, key, label, unexplained.question, i),
        ));
    }
    let answers: Vec<Answer> = answers.into_iter().chain([unexplained]).collect();

    let _p = Progress::spinner("counting events per pod and process");
    let (range, events) = timeline::extent(caps, f)?;
    let times = placed.iter().filter_map(|(_, _, p)| p.time_ns);
    let lo = range.map(|r| r.0).into_iter().chain(times.clone()).min();
    let hi = range.map(|r| r.1).into_iter().chain(times).max();
    let (start_ns, end_ns) = (lo.unwrap_or(0), hi.unwrap_or(0));
    let counted = if range.is_some() {
        timeline::counts(caps, f, start_ns, end_ns)?
    } else {
        Default::default()
    };
    let nodes: BTreeSet<String> = answered(caps).map(|c| c.node.clone()).collect();
    let mut marks_placed = Vec::new();
    let mut mark_of: HashMap<(usize, usize), String> = HashMap::new();
    for (n, (q, i, mut p)) in placed.into_iter().enumerate() {
        p.mark.id = format!("m-{n}");
        p.mark.t_us = p.time_ns.map_or(0, |t| (t - start_ns) / 1_000);
        mark_of.insert((q, i), p.mark.id.clone());
        marks_placed.push(p);
    }
    let (lanes, marks, mut notes) = timeline::layout(counted, marks_placed, nodes.len() > 1);
    let mut findings = Vec::new();
    for (q, a) in answers.iter().enumerate() {
        // The terminal's table for the question, its cells whole.
        let kind = Kind::of_question(a.question).ok_or_else(|| {
            QueryError::Invalid(format!("report: {} is not a question", a.question))
        })?;
        let opts = view::Options {
            layout: Layout::default(),
            wide: false,
            limit: None,
            local: false,
            captures: answered(caps).count(),
            total: None,
        };
        let shown = a.frame.head(Some(a.frame.height().min(MAX_ROWS)));
        let table = view::table(&shown, kind, &opts);
        let headers: Vec<String> = table.columns.iter().map(|c| c.header.clone()).collect();
        let order = answer_first(&headers);
        let columns: Vec<String> = order.iter().map(|&c| headers[c].clone()).collect();
        let rows: Vec<Vec<Option<String>>> = table
            .rows
            .into_iter()
            .map(|(_, mut r)| order.iter().map(|&c| r[c].take()).collect())
            .collect();
        if a.total > rows.len() {
            notes.push(format!(
                "{}: the first {} of {} rows are marked; `credtrail-query CAPTURES {}` lists them all",
                a.question,
                rows.len(),
                a.total,
                a.question
            ));
        }
        findings.push(Findings {
            question: a.question,
            title: a.title,
            columns,
            total: a.total,
            rows: rows
                .into_iter()
                .enumerate()
                .map(|(i, cells)| FindingRow {
                    id: row_id(a.question, i),
                    cells,
                    mark: mark_of[&(q, i)].clone(),
                    tree: row_trees.get(&(q, i)).map(|n| format!("tree-{n}")),
                })
                .collect(),
        });
    }
    let trees = targets
        .into_iter()
        .zip(snaps)
        .zip(tree_rows)
        .enumerate()
        .map(|(n, ((t, s), finding))| Tree {
            id: format!("tree-{n}"),
            capture: t.capture,
            exec_id: t.exec_id,
            finding,
            raise: s.raise,
            ancestry: s.ancestry,
            children: s.children,
            children_left_out: s.children_left_out,
            ancestors_left_out: s.ancestors_left_out,
        })
        .collect();
    let rfc = |t: i64| credtrail_capture::host::rfc3339_ns(t);
    Ok(Report {
        header: Header {
            nodes: nodes.into_iter().collect(),
            start: lo.map(rfc),
            end: hi.map(rfc),
            events,
            filters: filter_args(f),
            captures: answered(caps).map(|c| summary(c, trust)).collect(),
            warnings,
        },
        timeline: Timeline {
            start_ms: start_ns.div_euclid(1_000_000),
            start: lo.map(rfc),
            span_us: ((end_ns - start_ns) / 1_000).max(1),
            buckets: timeline::BUCKETS,
            lanes,
            marks,
            notes,
        },
        findings,
        trees,
    })
}

/// The terminal's columns with the answer (`CHANGE`, or a refusal's
/// `ERROR`) and its `CALL` moved right after the time: a page is read
/// left to right, and the answer must not sit past a window's right edge.
fn answer_first(headers: &[String]) -> Vec<usize> {
    let rank = |h: &str| match h {
        h if h.starts_with("TIME") => 0,
        "CHANGE" | "ERROR" => 1,
        "CALL" => 2,
        _ => 3,
    };
    let mut order: Vec<usize> = (0..headers.len()).collect();
    // Stable: the other columns keep the terminal's order.
    order.sort_by_key(|&c| rank(&headers[c]));
    order
}

fn row_id(question: &str, i: usize) -> String {
    format!("f-{question}-{i}")
}

fn placed_mark(
    kind: &'static str,
    time_ns: Option<i64>,
    key: (String, String),
    label: String,
    question: &str,
    i: usize,
) -> Placed {
    Placed {
        key,
        time_ns,
        mark: Mark {
            id: String::new(),
            kind,
            lane: 0,
            t_us: 0,
            label,
            finding: row_id(question, i),
        },
    }
}

/// A row's mark before it is placed: kind, time (ns), lane, label.
type RowMark = (&'static str, Option<i64>, (String, String), String);

/// For each row shown: its mark.
fn marks_of(a: &Answer, c: &Cells) -> Result<Vec<RowMark>, QueryError> {
    let df = &a.frame;
    let n = df.height().min(MAX_ROWS);
    let times = times_ns(df)?;
    let mut out = Vec::with_capacity(n);
    for (i, &time_ns) in times.iter().enumerate().take(n) {
        let args: Vec<String> = ["arg0", "arg1", "arg2"]
            .iter()
            .filter_map(|a| c.get(a, i))
            .collect();
        let call = format!("{}({})", c.text("syscall", i), args.join(", "));
        let (kind, what) = match a.question {
            "became-root" => (
                RAISE,
                format!(
                    "{call} euid {}→{} ({})",
                    c.text("old_euid", i),
                    c.text("new_euid", i),
                    c.text("scope", i)
                ),
            ),
            "caps" | "groups" => {
                let sets: Vec<&str> = if a.question == "caps" {
                    view::CAP_SETS.iter().map(|(set, _)| *set).collect()
                } else {
                    vec!["groups"]
                };
                let mut gained = false;
                let mut what = c.text("syscall", i);
                for s in sets {
                    let v = c.text(s, i);
                    gained |=
                        v.contains('+') && (s == "groups" || view::RAISING_CAP_SETS.contains(&s));
                    if !v.is_empty() {
                        what.push_str(&format!(" {s} {v}"));
                    }
                }
                (if gained { RAISE } else { DROP }, what)
            }
            "failed" => (REFUSED, format!("{call} refused: {}", c.text("error", i))),
            _ => (
                UNEXPLAINED,
                format!(
                    "unexplained {} (noticed: {}, {})",
                    c.text("change", i),
                    c.text("noticed_by", i),
                    c.text("found", i)
                ),
            ),
        };
        let key = lane_of(
            c.get("node_name", i).as_deref(),
            c.get("pod", i).as_deref(),
            c.get("container_id", i).as_deref(),
            c.get("binary", i).as_deref(),
        );
        let time = time_ns.map(credtrail_capture::host::rfc3339_ns);
        // The row says it all; the mark's label says what to look for.
        let what = shorten(&what, 120);
        let label = format!(
            "{} {}: pid {} {}: {what}",
            time.as_deref().unwrap_or("?"),
            key.1,
            c.text("pid", i),
            c.text("binary", i)
        );
        out.push((kind, time_ns, key, label));
    }
    Ok(out)
}

/// `s` cut to `max` characters, with an ellipsis.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn summary(c: &CaptureInfo, trust: Trust) -> CaptureSummary {
    let m = &c.manifest;
    let mut checked = match trust {
        Trust::Verify => "every segment's size and sha256 against the manifest".to_owned(),
        Trust::BoundsOnly => "decoding bounds only (--no-verify)".to_owned(),
    };
    if m.format_version >= 2 {
        let chain = if m.check_chain().is_empty() {
            "; hash chain holds"
        } else {
            "; hash chain BROKEN"
        };
        checked.push_str(chain);
    } else {
        checked.push_str("; format 1 has no hash chain");
    }
    CaptureSummary {
        name: c.name.clone(),
        node: c.node.clone(),
        state: format!("{:?}", m.state).to_lowercase(),
        format_version: m.format_version,
        events_written: m.counters.events_written,
        events_lost: m.counters.lost(),
        lifecycle_lost: m.counters.lifecycle_lost(),
        verification: checked,
    }
}

/// The filters as they were typed.
fn filter_args(f: &Filters) -> Vec<String> {
    let rfc = |t: i64| credtrail_capture::host::rfc3339_ns(t);
    [
        ("--node", f.node.clone()),
        ("--pod", f.pod.clone()),
        ("--container", f.container.clone()),
        ("--binary", f.binary.clone()),
        ("--syscall", f.syscall.clone()),
        ("--since", f.since.map(rfc)),
        ("--until", f.until.map(rfc)),
    ]
    .into_iter()
    .filter_map(|(flag, v)| v.map(|v| format!("{flag} {v}")))
    .collect()
}
