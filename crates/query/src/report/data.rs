//! The data a report shows and embeds (as JSON, for other tools and the
//! page's own script): what it covers, the findings tables as the
//! questions answer them, the timeline's lanes and marks, and the process
//! trees. Everything is bounded: a capture of ten million events makes a
//! page of about the same size as one of ten.

use polars::prelude::*;
use serde::Serialize;

use crate::QueryError;
use crate::warnings::Warning;

/// Rows of each findings table shown (each also a mark on the timeline);
/// the CLI question gives them all.
pub const MAX_ROWS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub header: Header,
    pub timeline: Timeline,
    pub findings: Vec<Findings>,
    pub trees: Vec<Tree>,
}

/// What the page covers, and what it cannot vouch for.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub nodes: Vec<String>,
    /// The first and last event shown, RFC 3339 UTC (None: no event).
    pub start: Option<String>,
    pub end: Option<String>,
    /// Credential events the filters keep.
    pub events: u64,
    /// The filters applied, as typed (`--pod default/xwing`).
    pub filters: Vec<String>,
    pub captures: Vec<CaptureSummary>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaptureSummary {
    pub name: String,
    pub node: String,
    pub state: String,
    pub format_version: u32,
    pub events_written: u64,
    pub events_lost: u64,
    pub lifecycle_lost: u64,
    /// What was checked before the capture was read.
    pub verification: String,
}

/// One question's answer, as far as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    /// The CLI question (`became-root`), also the anchor prefix.
    pub question: &'static str,
    pub title: &'static str,
    pub columns: Vec<String>,
    pub rows: Vec<FindingRow>,
    /// Rows the question answered (more than `rows` when capped).
    pub total: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    /// Anchor of the row (`f-became-root-0`).
    pub id: String,
    pub cells: Vec<Option<String>>,
    /// Anchor of its mark on the timeline.
    pub mark: String,
    /// Anchor of its process tree, for privilege raises.
    pub tree: Option<String>,
}

/// Mark kinds, each drawn its own way: privilege gained (root, a
/// capability, a group), given up, refused, or changed with no call.
pub const RAISE: &str = "raise";
pub const DROP: &str = "drop";
pub const REFUSED: &str = "refused";
pub const UNEXPLAINED: &str = "unexplained";

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// Where offsets count from: the first instant shown, in ms since the
    /// epoch (exact in a browser's numbers), and as text.
    pub start_ms: i64,
    pub start: Option<String>,
    /// Offsets are µs from `start_ms`; the range shown is 0..=span_us.
    pub span_us: i64,
    /// Equal slices of the range each lane's events are counted in.
    pub buckets: u32,
    pub lanes: Vec<Lane>,
    pub marks: Vec<Mark>,
    /// What the timeline leaves out, said in words.
    pub notes: Vec<String>,
}

/// A pod, a container, or a process outside containers, on one node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lane {
    pub node: String,
    pub label: String,
    pub events: u64,
    /// (bucket, events, refused) for each bucket with events.
    pub cells: Vec<(u32, u64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub id: String,
    pub kind: &'static str,
    pub lane: usize,
    pub t_us: i64,
    pub label: String,
    /// Anchor of its findings row.
    pub finding: String,
}

/// The process tree around one privilege raise.
#[derive(Debug, Clone, Serialize)]
pub struct Tree {
    pub id: String,
    pub capture: String,
    pub exec_id: String,
    /// Anchor of the first findings row of this process image.
    pub finding: String,
    /// The raise as one line (`--print compact`'s), when the replay found it.
    pub raise: Option<String>,
    /// Root first, the raising process last.
    pub ancestry: Vec<TreeNode>,
    pub children: Vec<TreeNode>,
    pub children_left_out: usize,
    /// Ancestors above the root shown, which the process cache counted but
    /// did not keep (a re-exec loop or a deep fork chain).
    #[serde(skip_serializing_if = "is_zero")]
    pub ancestors_left_out: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TreeNode {
    pub pid: u32,
    pub exec_id: String,
    pub binary: String,
    pub arguments: String,
    pub cwd: String,
    pub start: String,
    pub container: Option<String>,
    pub pod: Option<String>,
    /// Credentials as last known then (for the raising process: just
    /// before the raise).
    pub creds: Option<String>,
    /// What its exec changed (a setuid binary's `euid 1000→0`), if it did.
    pub exec_change: Option<String>,
}

/// The `time` column in ns since the epoch: a datetime in the event
/// questions, RFC 3339 text in `unexplained`.
pub fn times_ns(df: &DataFrame) -> Result<Vec<Option<i64>>, QueryError> {
    let c = df.column("time")?;
    Ok(match c.dtype() {
        DataType::String => c
            .str()?
            .iter()
            .map(|v| {
                v.and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
                    .and_then(|t| t.timestamp_nanos_opt())
            })
            .collect(),
        DataType::Datetime(unit, _) => {
            let per = match unit {
                TimeUnit::Nanoseconds => 1,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Milliseconds => 1_000_000,
            };
            c.cast(&DataType::Int64)?
                .i64()?
                .iter()
                .map(|v| v.map(|v| v.saturating_mul(per)))
                .collect()
        }
        other => {
            return Err(QueryError::Invalid(format!(
                "report: the time column is {other}, not a time"
            )));
        }
    })
}

/// A text column of `df` (any type, as text), or all None when absent.
pub fn text_column(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>, QueryError> {
    let Ok(c) = df.column(name) else {
        return Ok(vec![None; df.height()]);
    };
    Ok(c.cast(&DataType::String)?
        .str()?
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect())
}

/// The first [`MAX_ROWS`] rows of a frame as text, column by column: what
/// marks and trees are made of.
pub struct Cells(std::collections::HashMap<String, Vec<Option<String>>>);

impl Cells {
    pub fn of(df: &DataFrame) -> Result<Cells, QueryError> {
        let small = df.head(Some(MAX_ROWS));
        let mut cols = std::collections::HashMap::new();
        for c in small.columns() {
            cols.insert(c.name().to_string(), text_column(&small, c.name())?);
        }
        Ok(Cells(cols))
    }

    /// Row `i` of column `name` (None: null, or no such column).
    pub fn get(&self, name: &str, i: usize) -> Option<String> {
        self.0.get(name).and_then(|c| c.get(i).cloned().flatten())
    }

    /// Row `i` of column `name`, empty when null.
    pub fn text(&self, name: &str, i: usize) -> String {
        self.get(name, i).unwrap_or_default()
    }
}
