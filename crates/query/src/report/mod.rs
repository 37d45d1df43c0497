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
mod replayed;
mod timeline;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use credtrail_cli::progress::Progress;
use polars::prelude::DataFrame;

use crate::filters::Filters;
use crate::view::{self, Kind};
use crate::warnings::Warning;
use crate::{CaptureInfo, QueryError, Trust, answered, questions};
use credtrail_cli::term::table::Layout;
use data::{
    CaptureSummary, Cells, DROP, FindingRow, Findings, Header, Lane, MAX_ROWS, Mark, RAISE,
    REFUSED, Report, Timeline, Tree, UNEXPLAINED, times_ns,
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

/// A row shown: which answer (its place in the page's order) and which of
/// that answer's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RowOf {
    answer: usize,
    row: usize,
}

/// The report's data for `caps` as the filters keep it.
pub fn build(
    caps: &[CaptureInfo],
    f: &Filters,
    trust: Trust,
    warnings: Vec<Warning>,
) -> Result<Report, QueryError> {
    let (answers, rows, snaps) = answers_marked(caps, f)?;

    let _p = Progress::spinner("counting events per pod and process");
    let Counted {
        span,
        events,
        lanes,
    } = count_events(caps, f, &rows.placed)?;
    let nodes: BTreeSet<String> = answered(caps).map(|c| c.node.clone()).collect();
    let (placed, mark_of) = number_marks(rows.placed, span.start_ns());
    let (lanes, marks, mut notes) = timeline::layout(lanes, placed, nodes.len() > 1);
    let links = Links {
        marks: mark_of,
        trees: rows.trees.of_row,
    };
    let findings = findings_tables(&answers, answered(caps).count(), &links, &mut notes)?;
    let trees = trees_of(rows.trees.targets, snaps, rows.trees.first_rows);
    let rfc = |t: i64| credtrail_capture::host::rfc3339_ns(t);
    Ok(Report {
        header: Header {
            nodes: nodes.into_iter().collect(),
            start: span.lo.map(rfc),
            end: span.hi.map(rfc),
            events,
            filters: filter_args(f),
            captures: answered(caps).map(|c| summary(c, trust)).collect(),
            warnings,
        },
        timeline: Timeline {
            start_ms: span.start_ns().div_euclid(1_000_000),
            start: span.lo.map(rfc),
            span_us: ((span.end_ns() - span.start_ns()) / 1_000).max(1),
            buckets: timeline::BUCKETS,
            lanes,
            marks,
            notes,
        },
        findings,
        trees,
    })
}

/// Every answer, in the page's order, with its rows shown marked; and what
/// the replay found for the trees the raises picked.
fn answers_marked(
    caps: &[CaptureInfo],
    f: &Filters,
) -> Result<(Vec<Answer>, Rows, Vec<replayed::Snapshot>), QueryError> {
    let answers = event_answers(caps, f)?;
    // Every row shown is a mark; raises get a tree.
    let mut rows = Rows::default();
    for (q, a) in answers.iter().enumerate() {
        rows.add(q, a, true)?;
    }
    let (snaps, found) = replayed::collect(caps, &rows.trees.targets, f)?;
    let (frame, total) = found.frame(f)?;
    let unexplained = Answer {
        question: "unexplained",
        title: "Unexplained changes",
        total,
        frame,
    };
    // No trees: the replay that picks them has run (and found these rows).
    rows.add(answers.len(), &unexplained, false)?;
    let answers = answers.into_iter().chain([unexplained]).collect();
    Ok((answers, rows, snaps))
}

/// The event questions' answers, in the page's order.
fn event_answers(caps: &[CaptureInfo], f: &Filters) -> Result<Vec<Answer>, QueryError> {
    let _p = Progress::spinner("answering became-root, caps, groups and failed");
    let cut = Some(MAX_ROWS);
    Ok([
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
    .collect())
}

/// Every row shown as a mark, in the page's order, and the trees its
/// raises pick.
#[derive(Default)]
struct Rows {
    placed: Vec<(RowOf, Placed)>,
    trees: TreePicks,
}

impl Rows {
    /// Marks the rows shown of `a`, answer `q` of the page; with
    /// `pick_trees`, its raises also pick trees.
    fn add(&mut self, q: usize, a: &Answer, pick_trees: bool) -> Result<(), QueryError> {
        let c = Cells::of(&a.frame)?;
        for (i, (kind, t, key, label)) in marks_of(a, &c)?.into_iter().enumerate() {
            let at = RowOf { answer: q, row: i };
            if pick_trees && kind == RAISE {
                self.trees.pick(at, a.question, &c, t);
            }
            self.placed
                .push((at, placed_mark(kind, t, key, label, a.question, i)));
        }
        Ok(())
    }
}

/// The process images whose trees are drawn (the first [`MAX_TREES`] to
/// raise, in row order) and the raising rows that link to them.
#[derive(Default)]
struct TreePicks {
    targets: Vec<replayed::Target>,
    /// Index in `targets` of each (capture, exec_id) picked.
    by_image: HashMap<(String, String), usize>,
    /// Anchor of the first row of each target.
    first_rows: Vec<String>,
    /// The tree of each raising row whose image has one.
    of_row: HashMap<RowOf, usize>,
}

impl TreePicks {
    /// Links raise row `at` to its process image's tree, picking the image
    /// while there is room; rows with no capture, exec id or time get none.
    fn pick(&mut self, at: RowOf, question: &str, c: &Cells, time_ns: Option<i64>) {
        let i = at.row;
        let (Some(capture), Some(exec_id), Some(time_ns)) =
            (c.get("capture", i), c.get("exec_id", i), time_ns)
        else {
            return;
        };
        let image = (capture.clone(), exec_id.clone());
        let next = self.targets.len();
        let tree = match self.by_image.get(&image) {
            Some(n) => *n,
            None if next < MAX_TREES => {
                self.by_image.insert(image, next);
                self.targets.push(replayed::Target {
                    capture,
                    exec_id,
                    syscall: c.text("syscall", i),
                    time_ns,
                });
                self.first_rows.push(row_id(question, i));
                next
            }
            None => return,
        };
        self.of_row.insert(at, tree);
    }
}

/// The instants the timeline covers, in ns: the first and last of the
/// filtered events and the marks (None when there are neither).
#[derive(Debug, Clone, Copy)]
struct Span {
    lo: Option<i64>,
    hi: Option<i64>,
}

impl Span {
    fn start_ns(self) -> i64 {
        self.lo.unwrap_or(0)
    }

    fn end_ns(self) -> i64 {
        self.hi.unwrap_or(0)
    }
}

/// The filtered events over the span: counted, and per lane.
struct Counted {
    span: Span,
    events: u64,
    lanes: BTreeMap<(String, String), Lane>,
}

/// The filtered events, counted over the span of both them and the marks
/// `placed`.
fn count_events(
    caps: &[CaptureInfo],
    f: &Filters,
    placed: &[(RowOf, Placed)],
) -> Result<Counted, QueryError> {
    let (range, events) = timeline::extent(caps, f)?;
    let times = placed.iter().filter_map(|(_, p)| p.time_ns);
    let span = Span {
        lo: range.map(|r| r.0).into_iter().chain(times.clone()).min(),
        hi: range.map(|r| r.1).into_iter().chain(times).max(),
    };
    let lanes = if range.is_some() {
        timeline::counts(caps, f, span.start_ns(), span.end_ns())?
    } else {
        Default::default()
    };
    Ok(Counted {
        span,
        events,
        lanes,
    })
}

/// The marks numbered in the page's order, their times made offsets from
/// `start_ns`; and each row's mark anchor.
fn number_marks(
    placed: Vec<(RowOf, Placed)>,
    start_ns: i64,
) -> (Vec<Placed>, HashMap<RowOf, String>) {
    let mut marks_placed = Vec::new();
    let mut mark_of = HashMap::new();
    for (n, (at, mut p)) in placed.into_iter().enumerate() {
        p.mark.id = format!("m-{n}");
        p.mark.t_us = p.time_ns.map_or(0, |t| (t - start_ns) / 1_000);
        mark_of.insert(at, p.mark.id.clone());
        marks_placed.push(p);
    }
    (marks_placed, mark_of)
}

/// Where each row shown links to: its mark, and its tree if it has one.
struct Links {
    marks: HashMap<RowOf, String>,
    trees: HashMap<RowOf, usize>,
}

impl Links {
    fn row(&self, at: RowOf, question: &str, cells: Vec<Option<String>>) -> FindingRow {
        FindingRow {
            id: row_id(question, at.row),
            cells,
            mark: self.marks[&at].clone(),
            tree: self.trees.get(&at).map(|n| format!("tree-{n}")),
        }
    }
}

/// The findings tables, in the page's order, from `captures` captures.
fn findings_tables(
    answers: &[Answer],
    captures: usize,
    links: &Links,
    notes: &mut Vec<String>,
) -> Result<Vec<Findings>, QueryError> {
    let mut findings = Vec::new();
    for (q, a) in answers.iter().enumerate() {
        findings.push(findings_of(q, a, captures, links, notes)?);
    }
    Ok(findings)
}

/// The findings table of `a`, answer `q` of the page, from `captures`
/// captures; a note when it shows only the answer's first rows.
fn findings_of(
    q: usize,
    a: &Answer,
    captures: usize,
    links: &Links,
    notes: &mut Vec<String>,
) -> Result<Findings, QueryError> {
    // The terminal's table for the question, its cells whole.
    let kind = Kind::of_question(a.question)
        .ok_or_else(|| QueryError::Invalid(format!("report: {} is not a question", a.question)))?;
    let opts = view::Options {
        layout: Layout::default(),
        wide: false,
        limit: None,
        local: false,
        captures,
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
    Ok(Findings {
        question: a.question,
        title: a.title,
        columns,
        total: a.total,
        rows: rows
            .into_iter()
            .enumerate()
            .map(|(i, cells)| links.row(RowOf { answer: q, row: i }, a.question, cells))
            .collect(),
    })
}

/// The trees drawn: each target with what the replay found of it and the
/// first row that raised there.
fn trees_of(
    targets: Vec<replayed::Target>,
    snaps: Vec<replayed::Snapshot>,
    first_rows: Vec<String>,
) -> Vec<Tree> {
    targets
        .into_iter()
        .zip(snaps)
        .zip(first_rows)
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
        .collect()
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
