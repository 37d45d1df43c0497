//! `unexplained`: credential changes no recorded call explains, both those
//! the recorder found live (`unexplained` events) and those a replay of the
//! capture finds offline (`credtrail_pipeline::continuity`), with the process
//! identity the replay's enrichment gives them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use credtrail_capture::host::rfc3339_ns;
use credtrail_capture::model::creds::Creds;
use credtrail_capture::model::lifecycle::ProcEvent;
use credtrail_capture::model::{ContainerRow, Event, Syscall, UsernsRow};
use credtrail_pipeline::continuity::{Checker, Finding, Subjective, describe, judge_subjective};
use credtrail_pipeline::sink::Sink;
use polars::prelude::*;

use crate::filters::Filters;
use crate::{CaptureInfo, QueryError, invalid};

/// Who a process was, from its last enriched event or its exec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ident {
    binary: Option<String>,
    exec_id: Option<String>,
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    container_id: Option<String>,
    container_name: Option<String>,
}

impl Ident {
    /// `NAMESPACE/NAME`, as the other questions' `pod` column.
    fn pod(&self) -> Option<String> {
        match (&self.pod_namespace, &self.pod_name) {
            (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
            _ => None,
        }
    }
}

/// One answer row.
#[derive(Debug, Clone)]
struct Row {
    time: i64,
    last_seen: Option<i64>,
    node_name: String,
    pid: u32,
    tid: u32,
    comm: String,
    ident: Arc<Ident>,
    noticed_by: String,
    /// `live` (the recorder's checks) or `offline` (this replay's).
    found: &'static str,
    /// Before and after: described only for the rows shown (describing
    /// every finding was an eighth of `unexplained`'s time).
    change: (Creds, Creds),
}

/// Replays one capture, collecting both kinds of finding.
#[derive(Default)]
pub(crate) struct Collector {
    node_name: String,
    checker: Checker,
    /// Shared by the rows of a process: most events repeat their
    /// process's identity, and a copy per event was most of the time.
    idents: HashMap<u32, Arc<Ident>>,
    rows: Vec<Row>,
    /// Process images (exec_id) with an unexplained change.
    pub(crate) exec_ids: HashSet<String>,
    /// For the report: only the earliest rows are kept (see [`Bound`]).
    bound: Option<Bound>,
    /// For `tree`: only `exec_ids`, no rows (a capture whose every event
    /// is unexplained made 100 M rows of them).
    ids_only: bool,
}

/// A collector that keeps the `keep` earliest rows the filters pass, and
/// counts them all: the report shows a hundred, and a capture whose every
/// event is unexplained (10 M rows) must not be held whole.
struct Bound {
    filters: Filters,
    keep: usize,
    kept: Vec<Row>,
    total: usize,
}

/// Rows gathered before the filters run over them in bounded mode.
const BOUND_CHUNK: usize = 4096;

impl Collector {
    pub(crate) fn new(node_name: &str) -> Self {
        Collector {
            node_name: node_name.to_owned(),
            ..Collector::default()
        }
    }

    /// [`Collector::new`] keeping only the `keep` earliest rows `filters`
    /// pass (and counting them all).
    pub(crate) fn bounded(node_name: &str, filters: &Filters, keep: usize) -> Self {
        Collector {
            bound: Some(Bound {
                filters: filters.clone(),
                keep,
                kept: Vec::new(),
                total: 0,
            }),
            ..Collector::new(node_name)
        }
    }

    /// [`Collector::new`] that keeps no rows, only which process images had
    /// an unexplained change ([`Collector::exec_ids`]).
    pub(crate) fn exec_ids_only(node_name: &str) -> Self {
        Collector {
            ids_only: true,
            ..Collector::new(node_name)
        }
    }

    /// In bounded mode, filters the gathered rows and keeps the earliest.
    fn settle(&mut self, at_end: bool) -> Result<(), QueryError> {
        let Some(b) = &mut self.bound else {
            return Ok(());
        };
        if self.rows.len() < BOUND_CHUNK && !at_end {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.rows)
            .into_iter()
            .map(|r| (r, String::new()));
        let passed = filtered(chunk.collect(), &b.filters)?;
        b.total += passed.len();
        b.kept.extend(passed.into_iter().map(|(r, _)| r));
        if b.kept.len() > 2 * b.keep || at_end {
            b.kept.sort_by_key(|r| (r.time, r.tid));
            b.kept.truncate(b.keep);
        }
        if at_end {
            self.rows = std::mem::take(&mut b.kept);
        }
        Ok(())
    }

    fn offline(&mut self, found: Vec<Finding>) {
        for f in found {
            let ident = self.idents.get(&f.pid).cloned().unwrap_or_default();
            if let Some(id) = &ident.exec_id
                && !self.exec_ids.contains(id)
            {
                self.exec_ids.insert(id.clone());
            }
            if self.ids_only {
                continue;
            }
            self.rows.push(Row {
                time: f.time,
                last_seen: Some(f.last_seen),
                node_name: self.node_name.clone(),
                pid: f.pid,
                tid: f.tid,
                comm: f.comm,
                ident,
                change: (f.before, f.after),
                noticed_by: f.noticed_by,
                found: "offline",
            });
        }
    }

    pub(crate) fn finish(&mut self) -> Result<(), QueryError> {
        let found = self.checker.finish();
        self.offline(found);
        self.settle(true)
    }

    /// Rows the filters passed (bounded mode), or None.
    fn counted(&self) -> Option<usize> {
        self.bound.as_ref().map(|b| b.total)
    }
}

impl Sink for Collector {
    fn lifecycle(&mut self, p: &ProcEvent) -> anyhow::Result<()> {
        if p.kind == "exec" {
            // A new image: what the events said about the old one is stale.
            self.idents.insert(
                p.pid,
                Arc::new(Ident {
                    binary: Some(p.filename.clone()),
                    ..Ident::default()
                }),
            );
        }
        let found = self.checker.lifecycle(p);
        self.offline(found);
        Ok(self.settle(false)?)
    }

    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        let same = |i: &Ident| {
            i.binary == ev.binary
                && i.exec_id == ev.exec_id
                && i.pod_namespace == ev.pod_namespace
                && i.pod_name == ev.pod_name
                && i.container_id == ev.container_id
                && i.container_name == ev.container_name
        };
        let ident = match self.idents.get(&ev.pid) {
            Some(i) if same(i) => Arc::clone(i),
            _ => {
                let i = Arc::new(Ident {
                    binary: ev.binary.clone(),
                    exec_id: ev.exec_id.clone(),
                    pod_namespace: ev.pod_namespace.clone(),
                    pod_name: ev.pod_name.clone(),
                    container_id: ev.container_id.clone(),
                    container_name: ev.container_name.clone(),
                });
                self.idents.insert(ev.pid, Arc::clone(&i));
                i
            }
        };
        let found = self.checker.event(ev);
        self.offline(found);
        if ev.syscall_kind() == Some(Syscall::Unexplained)
            && let Some(id) = &ev.exec_id
            && !self.exec_ids.contains(id)
        {
            self.exec_ids.insert(id.clone());
        }
        if ev.syscall_kind() == Some(Syscall::Unexplained) && !self.ids_only {
            self.rows.push(Row {
                time: ev.time,
                last_seen: ev.last_seen,
                node_name: ev.node_name.clone(),
                pid: ev.pid,
                tid: ev.tid,
                comm: ev.comm.clone(),
                ident,
                noticed_by: noticed_by(ev),
                found: "live",
                change: (ev.old_creds(), ev.new_creds()),
            });
        }
        Ok(self.settle(false)?)
    }

    fn container(&mut self, _: &ContainerRow) -> anyhow::Result<()> {
        Ok(())
    }

    fn user_namespace(&mut self, _: &UsernsRow) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What noticed a live row: its check, and for a subjective one that the
/// rule does not count as evidence, why (a capture can claim anything).
fn noticed_by(ev: &Event) -> String {
    let check = ev.option.clone().unwrap_or_default();
    if !ev.is_subjective() {
        return check;
    }
    match judge_subjective(ev.arg0, &ev.old_creds(), &ev.new_creds()) {
        Subjective::Override => check,
        Subjective::Same => format!("{check} (the same credentials)"),
        Subjective::Inconclusive => {
            format!("{check} (inconclusive: an override may be open there)")
        }
    }
}

/// Replays `cap` through the recorder's enrichment into `sink`.
pub(crate) fn replay_into(cap: &CaptureInfo, sink: &mut dyn Sink) -> Result<(), QueryError> {
    let c = cap.capture();
    let mut inputs = credtrail_pipeline::playback::open(&c).map_err(invalid)?;
    let mut enricher = credtrail_pipeline::playback::enricher(&c, &mut inputs);
    for rec in inputs.records {
        enricher
            .apply(rec.map_err(invalid)?, sink)
            .map_err(invalid)?;
    }
    Ok(())
}

/// The rows the filters keep: the events table's own predicate
/// (`Filters::events_predicate`), run over the rows' columns of the same
/// names, so every question filters alike.
fn filtered(rows: Vec<(Row, String)>, f: &Filters) -> Result<Vec<(Row, String)>, QueryError> {
    let Some(predicate) = f.events_predicate() else {
        return Ok(rows);
    };
    let opt = |g: &dyn Fn(&Row) -> Option<String>| {
        rows.iter()
            .map(|(r, _)| g(r))
            .collect::<Vec<Option<String>>>()
    };
    let frame = DataFrame::new_infer_height(vec![
        Column::new("row".into(), (0..rows.len() as u32).collect::<Vec<_>>()),
        Column::new(
            "time".into(),
            rows.iter().map(|(r, _)| r.time).collect::<Vec<_>>(),
        ),
        // What the filters compare (`time_ns`, as in every table).
        Column::new(
            credtrail_capture::storage::TIME_NS.into(),
            rows.iter().map(|(r, _)| r.time).collect::<Vec<_>>(),
        ),
        Column::new("node_name".into(), opt(&|r| Some(r.node_name.clone()))),
        Column::new(
            "pod_namespace".into(),
            opt(&|r| r.ident.pod_namespace.clone()),
        ),
        Column::new("pod_name".into(), opt(&|r| r.ident.pod_name.clone())),
        Column::new(
            "container_id".into(),
            opt(&|r| r.ident.container_id.clone()),
        ),
        Column::new(
            "container_name".into(),
            opt(&|r| r.ident.container_name.clone()),
        ),
        Column::new("binary".into(), opt(&|r| r.ident.binary.clone())),
        Column::new(
            "syscall".into(),
            vec![Syscall::Unexplained.name(); rows.len()],
        ),
    ])?;
    let kept = frame
        .lazy()
        .filter(predicate)
        .select([col("row")])
        .collect()?;
    let kept: HashSet<u32> = kept.column("row")?.u32()?.into_no_null_iter().collect();
    Ok(rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| kept.contains(&(*i as u32)))
        .map(|(_, r)| r)
        .collect())
}

/// Every unexplained change in `caps`, live and offline, in time order;
/// with a `limit`, only the earliest rows (the rest counted). Also returns
/// how many rows the whole answer has.
pub fn unexplained(
    caps: &[CaptureInfo],
    f: &Filters,
    limit: Option<usize>,
) -> Result<(DataFrame, usize), QueryError> {
    let mut found = Found::default();
    for cap in crate::answered(caps) {
        let node = &cap.manifest.node_name;
        let mut c = match limit {
            Some(keep) => Collector::bounded(node, f, keep),
            None => Collector::new(node),
        };
        replay_into(cap, &mut c)?;
        found.add(c, &cap.name)?;
    }
    let (df, total) = found.frame(f)?;
    // Each capture kept its earliest rows: of them all, the earliest.
    Ok((df.head(Some(limit.unwrap_or(total))), total))
}

/// What the collectors of several captures found, each row with its
/// capture's name.
#[derive(Default)]
pub(crate) struct Found {
    rows: Vec<(Row, String)>,
    /// Rows bounded collectors counted (they keep only the earliest).
    counted: Option<usize>,
}

impl Found {
    /// A capture's findings, once its replay has ended.
    pub(crate) fn add(&mut self, mut c: Collector, capture: &str) -> Result<(), QueryError> {
        c.finish()?;
        if let Some(n) = c.counted() {
            *self.counted.get_or_insert(0) += n;
        }
        self.rows
            .extend(c.rows.into_iter().map(|r| (r, capture.to_owned())));
        Ok(())
    }

    /// The answer of `unexplained`: the rows the filters keep, in time
    /// order; and how many there are (more than the frame's when the
    /// collectors were bounded).
    pub(crate) fn frame(self, f: &Filters) -> Result<(DataFrame, usize), QueryError> {
        let counted = self.counted;
        let df = frame(self.rows, f)?;
        let total = counted.unwrap_or(df.height());
        Ok((df, total))
    }
}

fn frame(rows: Vec<(Row, String)>, f: &Filters) -> Result<DataFrame, QueryError> {
    let mut rows = filtered(rows, f)?;
    rows.sort_by(|(a, ca), (b, cb)| (a.time, ca, a.tid).cmp(&(b.time, cb, b.tid)));
    let strs = |g: &dyn Fn(&Row) -> Option<String>| {
        rows.iter()
            .map(|(r, _)| g(r))
            .collect::<Vec<Option<String>>>()
    };
    Ok(DataFrame::new_infer_height(vec![
        Column::new("time".into(), strs(&|r| Some(rfc3339_ns(r.time)))),
        Column::new("last_seen".into(), strs(&|r| r.last_seen.map(rfc3339_ns))),
        Column::new("node_name".into(), strs(&|r| Some(r.node_name.clone()))),
        Column::new("pod".into(), strs(&|r| r.ident.pod())),
        Column::new(
            "container_id".into(),
            strs(&|r| {
                r.ident
                    .container_id
                    .as_deref()
                    .map(|c| c[..c.len().min(12)].to_owned())
            }),
        ),
        Column::new(
            "pid".into(),
            rows.iter().map(|(r, _)| r.pid).collect::<Vec<_>>(),
        ),
        Column::new(
            "tid".into(),
            rows.iter().map(|(r, _)| r.tid).collect::<Vec<_>>(),
        ),
        Column::new("comm".into(), strs(&|r| Some(r.comm.clone()))),
        Column::new("binary".into(), strs(&|r| r.ident.binary.clone())),
        Column::new(
            "change".into(),
            strs(&|r| Some(describe(&r.change.0, &r.change.1))),
        ),
        Column::new("noticed_by".into(), strs(&|r| Some(r.noticed_by.clone()))),
        Column::new("found".into(), strs(&|r| Some(r.found.to_owned()))),
        Column::new("exec_id".into(), strs(&|r| r.ident.exec_id.clone())),
        Column::new(
            "capture".into(),
            rows.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
        ),
    ])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time: i64, node: &str) -> Row {
        Row {
            time,
            last_seen: None,
            node_name: node.to_owned(),
            pid: 1,
            tid: time as u32,
            comm: String::new(),
            ident: Arc::default(),
            noticed_by: String::new(),
            found: "offline",
            change: Default::default(),
        }
    }

    #[test]
    fn a_bounded_collector_keeps_the_earliest_rows_the_filters_pass_and_counts_all() {
        let filters = Filters {
            node: Some("a".into()),
            ..Filters::default()
        };
        let mut c = Collector::bounded("a", &filters, 3);
        // 10,000 rows, latest first, every other one on another node.
        for t in (0..10_000).rev() {
            c.rows.push(row(t, if t % 2 == 0 { "a" } else { "b" }));
            c.settle(false).unwrap();
            assert!(c.rows.len() <= BOUND_CHUNK);
        }
        let mut found = Found::default();
        found.add(c, "cap").unwrap();
        let (df, total) = found.frame(&filters).unwrap();
        assert_eq!(total, 5_000);
        let tids: Vec<i64> = df
            .column("tid")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        // The earliest three on node a.
        assert_eq!(tids, [0, 2, 4]);
    }
}
