//! Answers as tables for people (`--format table`, the default): each
//! built-in question picks its columns, their order and which go first
//! when the terminal is narrow; cells say what happened (`setuid(0)`,
//! `euid 1000→0`) with human times and counts. Other formats keep every
//! column as polars holds it (`formats.rs`).

use chrono::{DateTime, Local, Utc};
use credtrail_capture::model::{Event, Syscall, options};
use credtrail_cli::term::table::{Column, Layout, Mark, Shorten, Table, thousands};
use polars::prelude::{AnyValue, DataFrame, TimeUnit};

use crate::QueryError;

/// Which answer a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Summary,
    Counters,
    BecameRoot,
    Caps,
    Groups,
    Failed,
    Timeline,
    Unexplained,
    Tree,
    Sql,
}

impl Kind {
    /// The built-in question's kind by its CLI name (`became-root`).
    pub fn of_question(name: &str) -> Option<Kind> {
        Some(match name {
            "summary" => Kind::Summary,
            "became-root" => Kind::BecameRoot,
            "caps" => Kind::Caps,
            "groups" => Kind::Groups,
            "failed" => Kind::Failed,
            "timeline" => Kind::Timeline,
            "unexplained" => Kind::Unexplained,
            "tree" => Kind::Tree,
            _ => return None,
        })
    }

    /// One row per event: long answers are cut to a limit at a terminal.
    pub fn row_per_event(self) -> bool {
        matches!(self, Kind::Timeline | Kind::Sql)
    }

    /// The footer's noun, singular and plural.
    fn noun(self) -> (&'static str, &'static str) {
        match self {
            Kind::Summary => ("group", "groups"),
            Kind::Counters => ("capture", "captures"),
            Kind::BecameRoot => ("privilege raise", "privilege raises"),
            Kind::Caps => ("capability change", "capability changes"),
            Kind::Groups => ("group change", "group changes"),
            Kind::Failed => ("refused attempt", "refused attempts"),
            Kind::Timeline => ("event", "events"),
            Kind::Unexplained => ("unexplained change", "unexplained changes"),
            Kind::Tree => ("process in the ancestry", "processes in the ancestry"),
            Kind::Sql => ("row", "rows"),
        }
    }
}

/// Rows shown at most for row-per-event answers unless `--limit`/`--all`.
pub const DEFAULT_LIMIT: usize = 50;

/// How the table is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub layout: Layout,
    /// Every column, values whole (`-o wide`).
    pub wide: bool,
    /// Rows at most (`None`: all).
    pub limit: Option<usize>,
    /// Times in the local zone instead of UTC.
    pub local: bool,
    /// Captures the answer was read from (a capture column only when > 1).
    pub captures: usize,
    /// Rows in the whole answer when the frame holds only its first ones
    /// (a question asked for a limit keeps no more); None: the frame's.
    pub total: Option<usize>,
}

/// What a column shows.
#[derive(Debug, Clone, Copy)]
enum Cell {
    /// A column of the answer, formatted by its type and name.
    Field(&'static str),
    /// The call as written: `setuid(0)`, `unshare(CLONE_NEWUSER)`.
    Call,
    /// The euid change of a privilege raise: `euid 1000→0`.
    RootChange,
    /// Every capability set's change, sets with the same change together:
    /// `eff,prm -1: NET_RAW  bnd -1: SYS_ADMIN`.
    CapChange,
    /// The capture, by its last path component.
    Capture,
}

#[derive(Clone)]
struct Spec {
    column: Column,
    cell: Cell,
}

fn spec(header: &str, cell: Cell) -> Spec {
    Spec {
        column: Column::new(header),
        cell,
    }
}

impl Spec {
    fn drop(mut self, rank: u8) -> Spec {
        self.column = self.column.drop(rank);
        self
    }
    fn right(mut self) -> Spec {
        self.column = self.column.right();
        self
    }
    fn path(mut self) -> Spec {
        self.column = self.column.shorten(Shorten::KeepEnd);
        self
    }
    fn text(mut self) -> Spec {
        self.column = self.column.shorten(Shorten::KeepStart);
        self
    }
}

use Cell::{Call, CapChange, Capture, Field, RootChange};

/// The columns each question shows, answer first; the number is the drop
/// rank (0: never left out; higher: left out sooner).
fn specs(kind: Kind, df: &DataFrame) -> Vec<Spec> {
    match kind {
        Kind::Summary => vec![
            spec("NODE", Field("node_name")).drop(3),
            spec("SYSCALL", Field("syscall")),
            spec("RESULT", Field("result")),
            spec("POD", Field("pod")).path().drop(2),
            spec("BINARY", Field("binary")).path(),
            spec("EVENTS", Field("events")).right(),
            spec("PROCESSES", Field("processes")).right().drop(1),
        ],
        Kind::Counters => vec![
            spec("CAPTURE", Capture).path(),
            spec("NODE", Field("node_name")).drop(2),
            spec("START", Field("start")).drop(1),
            spec("EVENTS", Field("events")).right(),
            spec("LOST", Field("lost")).right(),
            spec("RINGBUF_FULL", Field("ringbuf_full")).right().drop(3),
            spec("LIFECYCLE_LOST", Field("lifecycle_lost"))
                .right()
                .drop(3),
        ],
        Kind::BecameRoot => [
            who(),
            vec![spec("CALL", Call).text(), spec("CHANGE", RootChange).text()],
            covered(5),
            vec![
                spec("PARENT", Field("parent_binary")).path().drop(6),
                spec("ARGUMENTS", Field("arguments")).text().drop(7),
            ],
        ]
        .concat(),
        Kind::Caps => [
            who(),
            vec![
                spec("CALL", Field("syscall")),
                spec("CHANGE", CapChange).text(),
            ],
            covered(7),
        ]
        .concat(),
        Kind::Groups => [
            who(),
            vec![
                spec("CALL", Field("syscall")),
                spec("CHANGE", Field("groups")).text(),
            ],
            covered(5),
        ]
        .concat(),
        Kind::Failed => [
            who(),
            vec![spec("CALL", Call).text(), spec("ERROR", Field("error"))],
            covered(5),
            vec![spec("ARGUMENTS", Field("arguments")).text().drop(6)],
        ]
        .concat(),
        Kind::Timeline => vec![
            spec("TIME", Field("time")),
            spec("NODE", Field("node_name")).drop(5),
            spec("KIND", Field("kind")),
            spec("PID", Field("pid")).right().drop(2),
            spec("TID", Field("tid")).right().drop(4),
            spec("BINARY", Field("binary")).path(),
            spec("ARGS", Field("args")).text().drop(3),
            spec("DETAIL", Field("detail")).text(),
            spec("CAPTURE", Capture).drop(4),
        ],
        Kind::Unexplained => vec![
            spec("TIME", Field("time")),
            spec("NODE", Field("node_name")).drop(5),
            spec("POD", Field("pod")).path().drop(3),
            spec("PID", Field("pid")).right().drop(2),
            spec("BINARY", Field("binary")).path(),
            spec("CHANGE", Field("change")).text(),
            spec("NOTICED", Field("noticed_by")).drop(4),
            spec("FOUND", Field("found")).drop(6),
            spec("LAST_SEEN", Field("last_seen")).drop(7),
            spec("CAPTURE", Capture).drop(4),
        ],
        Kind::Tree => vec![
            spec("DEPTH", Field("depth")).right(),
            spec("PID", Field("pid")).right(),
            spec("BINARY", Field("binary")).path(),
            spec("STARTED", Field("start_time")).drop(2),
            spec("CONTAINER", Field("container_id")).drop(3),
            spec("UNEXPLAINED", Field("unexplained")),
            spec("FLAGS", Field("flags")).text().drop(4),
            spec("CWD", Field("cwd")).path().drop(5),
            spec("ARGUMENTS", Field("arguments")).text().drop(1),
        ],
        // A query's own columns all answer it: shortened, never left out.
        Kind::Sql => df
            .get_column_names()
            .into_iter()
            .map(|n| generic(leak(n.as_str())))
            .collect(),
    }
}

/// What the answers about one logical change start with: when, where,
/// which process.
fn who() -> Vec<Spec> {
    vec![
        spec("TIME", Field("time")),
        spec("NODE", Field("node_name")).drop(4),
        spec("POD", Field("pod")).path().drop(3),
        spec("BINARY", Field("binary")).path(),
        spec("PID", Field("pid")).right().drop(2),
    ]
}

/// How many threads and calls a logical change covered (left out at
/// `rank`), and its capture.
fn covered(rank: u8) -> Vec<Spec> {
    vec![
        spec("THREADS", Field("threads")).right().drop(rank),
        spec("CALLS", Field("calls")).right().drop(rank),
        spec("CAPTURE", Capture).drop(4),
    ]
}

/// A column by its name alone (SQL answers, `-o wide`).
fn generic(name: &'static str) -> Spec {
    let s = spec(&name.to_uppercase(), Field(name));
    if is_path(name) { s.path() } else { s.text() }
}

/// Column names live as long as the process: SQL and wide columns are
/// few, and `Cell` stays `Copy`.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn is_path(name: &str) -> bool {
    matches!(name, "binary" | "exe" | "cwd" | "parent_binary" | "capture")
        || name.ends_with("_binary")
        || name.ends_with("path")
}

/// Numbers that name something (ids, arguments, instants) rather than
/// count it: printed without separators.
fn is_identifier(name: &str) -> bool {
    matches!(
        name,
        "pid" | "tid" | "ppid" | "depth" | "ret" | "seq" | "option"
    ) || name.starts_with("arg")
        || name.contains("uid")
        || name.contains("gid")
        || name.contains("pid")
        || name.ends_with("_ns")
        || name.ends_with("_id")
        || name.ends_with("ino")
        || name.contains("level")
        || name.contains("cap")
}

/// The answer `df` as a table, with its footer.
pub fn render(df: &DataFrame, kind: Kind, opts: &Options) -> Result<String, QueryError> {
    let total = opts.total.unwrap_or(df.height()).max(df.height());
    let shown = opts.limit.map_or(df.height(), |l| l.min(df.height()));
    let df = df.head(Some(shown));
    let table = table(&df, kind, opts);
    let mut layout = opts.layout;
    if opts.wide {
        layout.width = None;
    }
    // No rows: the footer alone says so (`0 privilege raises in 1 capture`).
    let mut out = if total == 0 {
        String::new()
    } else {
        table.render(layout)
    };
    out.push_str(&footer(&df, kind, opts, total));
    Ok(out)
}

/// The question's table for `df`'s rows, before it is fitted to a width:
/// the terminal draws it, the HTML report shows its cells.
pub fn table(df: &DataFrame, kind: Kind, opts: &Options) -> Table {
    let mut specs: Vec<Spec> = specs(kind, df)
        .into_iter()
        .filter(|s| !matches!(s.cell, Capture) || opts.captures > 1 || kind == Kind::Counters)
        .filter(|s| !matches!(s.cell, Field(n) if df.column(n).is_err()))
        .collect();
    if opts.wide {
        // Every column of the answer the view did not already show.
        let used: Vec<&str> = specs
            .iter()
            .filter_map(|s| match s.cell {
                Field(n) => Some(n),
                _ => None,
            })
            .collect();
        let rest: Vec<Spec> = df
            .get_column_names()
            .into_iter()
            .filter(|n| !used.contains(&n.as_str()))
            .map(|n| generic(leak(n.as_str())))
            .collect();
        specs.extend(rest);
    }
    for s in &mut specs {
        // Numbers line up on the right, whatever the question.
        if let Field(n) = s.cell
            && df.column(n).is_ok_and(|c| c.dtype().is_primitive_numeric())
        {
            s.column = s.column.clone().right();
        }
    }
    let mut table = Table::new(specs.iter().map(|s| s.column.clone()).collect());
    if let Some(time) = table.columns.iter_mut().find(|c| c.header == "TIME") {
        time.header = if opts.local {
            "TIME (local)"
        } else {
            "TIME (UTC)"
        }
        .into();
    }
    for i in 0..df.height() {
        let row = Row { df, i, opts };
        let cells = specs.iter().map(|s| row.cell(s.cell, opts.wide)).collect();
        table.push(row.mark(kind), cells);
    }
    table
}

fn footer(df: &DataFrame, kind: Kind, opts: &Options, total: usize) -> String {
    let (one, many) = kind.noun();
    let captures = match opts.captures {
        1 => "in 1 capture".to_owned(),
        n => format!("in {} captures", thousands(n)),
    };
    let mut out = match kind {
        Kind::Summary => {
            let events: u64 = df
                .column("events")
                .ok()
                .and_then(|c| c.as_materialized_series().sum::<u64>().ok())
                .unwrap_or(0);
            format!(
                "{} events in {} {} {captures}\n",
                thousands(events),
                thousands(total),
                if total == 1 { one } else { many }
            )
        }
        Kind::Counters => String::new(),
        Kind::Tree => format!(
            "{} {}\n",
            thousands(total),
            if total == 1 { one } else { many }
        ),
        _ => format!(
            "{} {} {captures}\n",
            thousands(total),
            if total == 1 { one } else { many }
        ),
    };
    if df.height() < total {
        out.push_str(&format!(
            "showing the first {} of {} {many}: --limit N or --all shows more, -o csv every column\n",
            thousands(df.height()),
            thousands(total),
        ));
    }
    out
}

struct Row<'a> {
    df: &'a DataFrame,
    i: usize,
    opts: &'a Options,
}

impl Row<'_> {
    fn any(&self, name: &str) -> AnyValue<'_> {
        self.df
            .column(name)
            .ok()
            .and_then(|c| c.get(self.i).ok())
            .unwrap_or(AnyValue::Null)
    }

    fn int(&self, name: &str) -> Option<i64> {
        match self.any(name) {
            AnyValue::Null => None,
            v => v.extract::<i64>(),
        }
    }

    fn str(&self, name: &str) -> Option<String> {
        match self.any(name) {
            AnyValue::Null => None,
            AnyValue::String(s) => Some(s.to_owned()),
            AnyValue::StringOwned(s) => Some(s.to_string()),
            v => Some(v.to_string()),
        }
    }

    fn cell(&self, cell: Cell, wide: bool) -> Option<String> {
        match cell {
            Field(name) => self.field(name, wide),
            Call => Some(self.call()),
            RootChange => Some(self.root_change()),
            CapChange => Some(self.cap_change()),
            Capture => self.str("capture").map(|c| {
                if wide {
                    c
                } else {
                    short_capture(&c).to_owned()
                }
            }),
        }
    }

    fn field(&self, name: &str, wide: bool) -> Option<String> {
        let v = self.any(name);
        Some(match v {
            AnyValue::Null => return None,
            AnyValue::Datetime(t, unit, _) => self.time(to_ns(t, unit)),
            AnyValue::DatetimeOwned(t, unit, _) => self.time(to_ns(t, unit)),
            AnyValue::Boolean(b) => if b { "yes" } else { "no" }.to_owned(),
            AnyValue::String(_) | AnyValue::StringOwned(_) => {
                let s = self.str(name)?;
                match DateTime::parse_from_rfc3339(&s) {
                    // Times kept as text (RFC 3339 from manifests).
                    Ok(t) if !wide => self.time(t.timestamp_nanos_opt()?),
                    _ => s,
                }
            }
            AnyValue::List(s) => s
                .iter()
                .map(|v| match v {
                    AnyValue::String(s) => s.to_owned(),
                    v => v.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            AnyValue::Float32(_) | AnyValue::Float64(_) => {
                let f = v.extract::<f64>()?;
                format!("{f:.2}")
            }
            v if v.is_integer() => match v.extract::<i128>() {
                Some(n) if !is_identifier(name) => thousands(n),
                Some(n) => n.to_string(),
                None => v.to_string(),
            },
            v => v.to_string(),
        })
    }

    /// `2026-11-29 06:48:45.550`, UTC unless `--local`.
    fn time(&self, ns: i64) -> String {
        let t = DateTime::<Utc>::from_timestamp_nanos(ns);
        let fmt = "%Y-%m-%d %H:%M:%S%.3f";
        if self.opts.local {
            t.with_timezone(&Local).format(fmt).to_string()
        } else {
            t.format(fmt).to_string()
        }
    }

    /// The call with its arguments, read as the compact printer reads them.
    fn call(&self) -> String {
        let Some(syscall) = self.str("syscall") else {
            return "-".into();
        };
        let args = ["arg0", "arg1", "arg2"].map(|a| self.int(a).unwrap_or(0));
        // Answers without an option column: named from the arguments, as
        // the recorder names it.
        let option = self
            .str("option")
            .or_else(|| Syscall::from_name(&syscall).and_then(|s| options::option_name(s, args)));
        let ev = Event {
            syscall,
            arg0: args[0],
            arg1: args[1],
            arg2: args[2],
            option,
            ..Event::default()
        };
        credtrail_pipeline::print::call(&ev)
    }

    /// `euid 1000→0`, or where only a user namespace sees root:
    /// `userns euid 0 (host 1000→1000)`.
    fn root_change(&self) -> String {
        let id = |n: &str| self.int(n).map_or("?".into(), |v| v.to_string());
        let (old, new) = (id("old_euid"), id("new_euid"));
        if self.str("scope").as_deref() == Some("namespace") {
            return format!("userns euid {} (host {old}→{new})", id("ns_euid"));
        }
        let mut s = format!("euid {old}→{new}");
        let (fo, fnew) = (id("old_fsuid"), id("new_fsuid"));
        if (fo.as_str(), fnew.as_str()) != (old.as_str(), new.as_str()) {
            s.push_str(&format!(" fsuid {fo}→{fnew}"));
        }
        s
    }

    fn cap_change(&self) -> String {
        let mut groups: Vec<(Vec<&str>, String)> = Vec::new();
        for (set, short) in CAP_SETS {
            let change = self.str(set).unwrap_or_default();
            if change.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(_, c)| *c == change) {
                Some((sets, _)) => sets.push(short),
                None => groups.push((vec![short], change)),
            }
        }
        groups
            .iter()
            .map(|(sets, change)| format!("{} {}", sets.join(","), caps(change)))
            .collect::<Vec<_>>()
            .join("  ")
    }

    fn mark(&self, kind: Kind) -> Mark {
        match kind {
            Kind::BecameRoot => Mark::Raise,
            Kind::Failed => Mark::Refused,
            Kind::Summary if self.str("result").as_deref() == Some("failed") => Mark::Refused,
            Kind::Counters if self.int("lost").unwrap_or(0) > 0 => Mark::Refused,
            Kind::Caps => {
                let gained = RAISING_CAP_SETS
                    .iter()
                    .any(|n| self.str(n).is_some_and(|s| s.contains('+')));
                if gained { Mark::Raise } else { Mark::Plain }
            }
            Kind::Groups if self.str("groups").is_some_and(|g| g.contains('+')) => Mark::Raise,
            Kind::Unexplained => Mark::Raise,
            Kind::Tree if self.any("unexplained") == AnyValue::Boolean(true) => Mark::Raise,
            Kind::Timeline => {
                let detail = self.str("detail").unwrap_or_default();
                if detail.starts_with("ret=-") {
                    Mark::Refused
                } else if became_root(&detail) {
                    Mark::Raise
                } else {
                    Mark::Plain
                }
            }
            _ => Mark::Plain,
        }
    }
}

/// A timeline detail whose euid went from non-zero to 0.
fn became_root(detail: &str) -> bool {
    detail
        .split(" euid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|change| change.split_once('→'))
        .is_some_and(|(a, b)| a != "0" && b == "0")
}

fn to_ns(t: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Nanoseconds => t,
        TimeUnit::Microseconds => t.saturating_mul(1_000),
        TimeUnit::Milliseconds => t.saturating_mul(1_000_000),
    }
}

/// A capture by its last path component (`s3://b/node=a/c1` → `c1`).
fn short_capture(name: &str) -> &str {
    name.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(name)
}

/// The capability set columns of `caps`, and how a table names them.
pub(crate) const CAP_SETS: [(&str, &str); 5] = [
    ("effective", "eff"),
    ("permitted", "prm"),
    ("inheritable", "inh"),
    ("bounding", "bnd"),
    ("ambient", "amb"),
];

/// The sets in which a capability gained is a privilege raise: gaining one
/// in the inheritable or bounding set grants nothing by itself.
pub(crate) const RAISING_CAP_SETS: [&str; 3] = ["effective", "permitted", "ambient"];

/// `-CAP_A -CAP_B +CAP_C` as `+1: C  -2: A B`.
fn caps(list: &str) -> String {
    let mut out = Vec::new();
    for sign in ['+', '-'] {
        let names: Vec<&str> = list
            .split_whitespace()
            .filter_map(|c| c.strip_prefix(sign))
            .map(|c| c.strip_prefix("CAP_").unwrap_or(c))
            .collect();
        if !names.is_empty() {
            out.push(format!("{sign}{}: {}", names.len(), names.join(" ")));
        }
    }
    out.join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_people_write_them() {
        assert_eq!(caps("-CAP_NET_RAW"), "-1: NET_RAW");
        assert_eq!(
            caps("+CAP_SYS_ADMIN -CAP_CHOWN -CAP_KILL"),
            "+1: SYS_ADMIN  -2: CHOWN KILL"
        );
        assert_eq!(caps(""), "");
        assert!(became_root("ret=0 uid 1000→0 euid 1000→0"));
        assert!(!became_root("ret=0 uid 0→0 euid 0→0"));
        assert!(!became_root("ppid=1 cwd=/ exit=0"));
        assert_eq!(short_capture("../fixtures/k8s-xwing-su"), "k8s-xwing-su");
        assert_eq!(short_capture("s3://b/node=a/c1/"), "c1");
        assert!(is_identifier("new_euid") && is_identifier("pid") && is_identifier("arg0"));
        assert!(!is_identifier("events") && !is_identifier("calls"));
    }
}
