//! The replay engine: a capture's records back through the enricher the live
//! recorder uses ([`Enricher::apply`]), in the recorder's arrival order
//! (`seq`). Nothing here reads the clock, /proc or the host name, and no
//! output depends on hash order, so the same capture always gives the same
//! result. `credtrail-replay` prints and verifies with it; `credtrail-query
//! tree` rebuilds a process's ancestry with it.

use std::collections::BTreeMap;

use crate::enrich::{Enricher, StoredPods};
use crate::policy::decide::{FilterCounts, PolicyFilter};
use crate::policy::{Rules, capture_host};
use crate::process::Lineage;
use crate::sink::PolicySink;
use crate::sink::{Record, Sink};
use credtrail_capture::error::CaptureError;
use credtrail_capture::model::{ContainerRow, Event, ProcEvent, ProcessRow, UsernsRow};
use credtrail_capture::{Capture, Prefetched, TableStream};

/// A capture opened for replay: the small tables in memory, events and
/// lifecycle streamed and merged in the recorder's arrival order (`seq`).
pub struct Inputs {
    pub procs: Vec<ProcessRow>,
    pub containers: BTreeMap<String, ContainerRow>,
    pub records: Records,
}

/// Events, lifecycle and user namespace rows merged by `seq`: each table is
/// already in seq order, so memory holds a few record batches per table,
/// never the capture. Events, nearly all the rows, are decoded on a thread
/// of their own.
pub struct Records {
    events: std::iter::Peekable<Prefetched<Event>>,
    lifecycle: std::iter::Peekable<TableStream<ProcEvent>>,
    user_namespaces: std::iter::Peekable<TableStream<UsernsRow>>,
}

/// The seq of a stream's next row: errors first (they surface as soon as
/// they are seen), an ended stream last.
fn head<T>(
    s: &mut std::iter::Peekable<impl Iterator<Item = Result<T, CaptureError>>>,
    seq: fn(&T) -> u64,
) -> Option<Option<u64>> {
    match s.peek()? {
        Ok(row) => Some(Some(seq(row))),
        Err(_) => Some(None),
    }
}

impl Iterator for Records {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        // (seq or None for an error, table index): the smallest goes first.
        let heads = [
            head(&mut self.events, |e| e.seq).map(|s| (s, 0)),
            head(&mut self.lifecycle, |p| p.seq).map(|s| (s, 1)),
            head(&mut self.user_namespaces, |u| u.seq).map(|s| (s, 2)),
        ];
        let (_, which) = heads.into_iter().flatten().min()?;
        Some(match which {
            0 => self.events.next()?.map(Record::Cred).map_err(Into::into),
            1 => self.lifecycle.next()?.map(Record::Proc).map_err(Into::into),
            _ => self
                .user_namespaces
                .next()?
                .map(Record::Userns)
                .map_err(Into::into),
        })
    }
}

/// Opens a capture's tables (checksums are checked as each segment is read).
pub fn open(cap: &Capture) -> anyhow::Result<Inputs> {
    // The first snapshot seeds the cache: /proc at start, or, when
    // --max-capture-bytes evicted the oldest segments, the cache snapshot
    // that opens the oldest one left. Later ones only let a segment be read
    // alone.
    let mut procs = Vec::new();
    for p in cap.stream::<ProcessRow>() {
        let p = p?;
        if procs
            .first()
            .is_some_and(|f: &ProcessRow| f.snapshot_ktime_ns != p.snapshot_ktime_ns)
        {
            break;
        }
        procs.push(p);
    }
    let mut containers = BTreeMap::new();
    for c in cap.stream::<ContainerRow>() {
        let c = c?;
        containers.insert(c.container_id.clone(), c);
    }
    Ok(Inputs {
        procs,
        containers,
        records: Records {
            events: cap.stream::<Event>().prefetched().peekable(),
            lifecycle: cap.stream::<ProcEvent>().peekable(),
            user_namespaces: cap.stream::<UsernsRow>().peekable(),
        },
    })
}

/// The enricher replay starts from: seeded with the capture's /proc snapshot,
/// container metadata from the capture.
pub fn enricher(cap: &Capture, inputs: &mut Inputs) -> Enricher<StoredPods> {
    enricher_with(cap, inputs, None)
}

fn enricher_with(
    cap: &Capture,
    inputs: &mut Inputs,
    lineage: Option<Lineage>,
) -> Enricher<StoredPods> {
    let m = &cap.manifest;
    let mut e = Enricher::new(
        &m.node_name,
        m.realtime_offset_ns,
        StoredPods(std::mem::take(&mut inputs.containers)),
    )
    .with_lineage(lineage);
    e.seed(&inputs.procs);
    e
}

/// Runs a capture's records through the enrichment into `sink`, until the
/// records end or the sink wants no more. `lineage`: the marks of the
/// policy `sink` decides with (`Rules::lineage`).
pub fn run_records(
    cap: &Capture,
    mut inputs: Inputs,
    lineage: Option<Lineage>,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    let mut enricher = enricher_with(cap, &mut inputs, lineage);
    for rec in inputs.records {
        if !sink.wants_more() {
            break;
        }
        enricher.apply(rec?, sink)?;
    }
    Ok(())
}

/// [`run_records`] through `policy`'s pass when given, decided as the
/// recorder decides (the capture's own `host_ns`): the one way replay and
/// query apply `--policy`. Returns what the pass left out.
pub fn run_with_policy(
    cap: &Capture,
    inputs: Inputs,
    policy: Option<&Rules>,
    sink: &mut dyn Sink,
) -> anyhow::Result<FilterCounts> {
    let Some(rules) = policy else {
        run_records(cap, inputs, None, sink)?;
        return Ok(FilterCounts::default());
    };
    let mut filter = PolicyFilter::new(rules.clone(), capture_host(cap)?);
    let mut policy_sink = PolicySink::new(&mut filter, sink);
    run_records(cap, inputs, rules.lineage(), &mut policy_sink)?;
    Ok(filter.counts)
}
