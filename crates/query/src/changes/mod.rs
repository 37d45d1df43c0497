//! Logical changes (`became-root`, `caps`, `groups`, `failed`) in memory
//! bounded by the changes, not the events: one pass over the events'
//! columns (see `columns.rs`) keeps, per logical change, numbers only (the
//! key, the first and earliest call, calls, threads, string ids), and text
//! is made for the rows returned. With a row limit only the earliest rows
//! are returned and the rest counted. When the changes themselves outgrow
//! the memory budget the events are read again, once per share of the
//! keys (by hash), each pass holding that share: exact, at the cost of
//! another read.
//!
//! A logical change is as in the polars plan (`questions::logical_changes`):
//! one row per capture, node, process image, call, arguments and result,
//! so glibc's setxid broadcast (one call per thread) is one row.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::Array;
use polars::prelude::*;

pub(crate) mod kinds;

use crate::columns::{self, Batch, Column as Ids, Strings, TextIds};
use crate::filters::Filters;
use crate::names::CHANGE_KEY;
use crate::{CaptureInfo, QueryError};

/// The columns every logical change reads.
/// (With the key, [`CHANGE_KEY`], and the text columns kept, [`TEXT`].)
const BASE: [&str; 4] = ["time", storage_time_ns(), "tid", crate::REPEAT_COUNT];

const fn storage_time_ns() -> &'static str {
    credtrail_capture::storage::TIME_NS
}

/// What a question adds to the common part: which rows are candidates,
/// and what it keeps of the first call of each change.
pub(crate) trait Question: Sync {
    type Extra: Clone + Send;
    /// Columns it reads besides [`BASE`].
    fn columns(&self) -> Vec<&'static str>;
    /// The columns [`Question::prepare`] reads to tell candidates.
    fn test_columns(&self) -> Vec<&'static str>;
    /// For one batch: per row the filters kept, None when the row is not
    /// a candidate, else what the change keeps of it.
    fn prepare<'b>(&'b self, b: &'b Batch<'_>) -> Result<Extras<'b, Self::Extra>, QueryError>;
}

/// A question's per-row test and keep, for one batch.
pub(crate) type Extras<'b, E> = Box<dyn Fn(usize) -> Option<E> + 'b>;

/// The numbers that make a logical change's identity.
#[derive(Debug, Clone, Copy, Eq)]
struct Key {
    cap: u32,
    node: u32,
    exec: u32,
    syscall: u32,
    pid: i64,
    args: [i64; 3],
    ret: i64,
}

// By field: the derived comparison of the array called memcmp, a fifth of
// the time of a question over millions of candidate rows.
impl PartialEq for Key {
    fn eq(&self, o: &Key) -> bool {
        self.pid == o.pid
            && self.args[0] == o.args[0]
            && self.args[1] == o.args[1]
            && self.args[2] == o.args[2]
            && self.ret == o.ret
            && self.syscall == o.syscall
            && self.exec == o.exec
            && self.node == o.node
            && self.cap == o.cap
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.pid.hash(h);
        self.args.hash(h);
        self.ret.hash(h);
        self.syscall.hash(h);
        self.exec.hash(h);
        self.node.hash(h);
        self.cap.hash(h);
    }
}

/// One logical change as far as it has been read.
#[derive(Debug, Clone)]
pub(crate) struct Change<E> {
    key: Key,
    time_us: i64,
    pub time_ns: i64,
    calls: u64,
    /// Distinct threads (sorted): a broadcast has one per thread.
    tids: Vec<i64>,
    /// Input order of its first call, whose strings and extra it keeps.
    first: u128,
    strings: [u32; 7],
    pub extra: E,
}

/// The strings kept, in this order.
const BINARY: usize = 0;
const ARGUMENTS: usize = 1;
const PARENT: usize = 2;
const POD_NS: usize = 3;
const POD_NAME: usize = 4;
const CONTAINER_ID: usize = 5;
const CONTAINER_NAME: usize = 6;
const TEXT: [&str; 7] = [
    "binary",
    "arguments",
    "parent_binary",
    "pod_namespace",
    "pod_name",
    "container_id",
    "container_name",
];

impl<E> Change<E> {
    /// Answer order: earliest first, then pid, then input order.
    fn order(&self) -> (i64, i64, u128) {
        (self.time_ns, self.key.pid, self.first)
    }
}

/// What every call of a change updates, kept in the table's entry itself:
/// one random memory access per candidate row, not two (with millions of
/// changes, those accesses are the time).
#[derive(Debug, Clone, Copy)]
struct Hot {
    time_us: i64,
    time_ns: i64,
    calls: u64,
    /// The first thread seen; `more` indexes the thread list once a
    /// second one calls.
    tid: i64,
    more: u32,
    /// Its first call's strings and extra, in `cold`.
    at: u32,
}

const NONE: u32 = u32::MAX;

/// What only a change's first call sets.
struct Cold<E> {
    first: u128,
    strings: [u32; 7],
    extra: E,
}

/// One pass's state in a worker.
struct Pass<E> {
    index: PlHashMap<Key, Hot>,
    cold: Vec<Cold<E>>,
    /// Threads of the changes more than one thread made (sorted).
    tids: Vec<Vec<i64>>,
    ids: [TextIds; 10],
    /// More changes than a pass may hold: the pass stops, and the events
    /// are read again in more shares.
    overflowed: bool,
}

/// The answer: the rows kept (earliest first) and how many there were.
pub(crate) struct Answer<E> {
    pub rows: Vec<Change<E>>,
    pub total: usize,
    pub strings: Arc<Strings>,
    /// Capture names, by the key's index.
    names: Vec<String>,
}

/// Runs `q` over the events, keeping the first `limit` rows (None: all).
pub(crate) fn run<Q: Question>(
    caps: &[CaptureInfo],
    f: &Filters,
    q: &Q,
    limit: Option<usize>,
) -> Result<Answer<Q::Extra>, QueryError> {
    let columns = read_columns(q);
    let mut test_columns = q.test_columns();
    test_columns.extend(f.columns());
    let test = |b: &Batch| candidates(f, q, b);
    let strings = Arc::new(Strings::default());
    let reading = Reading {
        caps,
        q,
        columns,
        select: columns::Select {
            columns: test_columns,
            test: &test,
        },
        strings: &strings,
        max_changes: max_changes::<Q::Extra>(),
        hasher: PlRandomState::default(),
        limit,
    };
    let mut shares: u64 = 1;
    let (rows, total) = loop {
        if let Some(read) = reading.in_shares(shares)? {
            break read;
        }
        if shares >= 4096 {
            return Err(QueryError::Invalid(format!(
                "more logical changes than the memory budget holds even in 4096 passes ({} per pass): narrow the question (--since/--until, --node, --pod) or raise --memory-limit",
                reading.max_changes
            )));
        }
        shares *= 8;
        tracing::debug!(shares, "logical changes exceed a pass; reading in shares");
    };
    Ok(Answer {
        rows,
        total,
        strings,
        names: caps.iter().map(|c| c.name.clone()).collect(),
    })
}

/// The columns a question's changes read: [`BASE`], the key, the text
/// kept and the question's own.
fn read_columns<Q: Question>(q: &Q) -> Vec<&'static str> {
    let mut columns: Vec<&str> = BASE.to_vec();
    columns.extend(CHANGE_KEY);
    columns.extend(TEXT);
    columns.extend(q.columns());
    columns
}

/// Per row of a batch: whether the filters keep it and it is a candidate.
fn candidates<Q: Question>(f: &Filters, q: &Q, b: &Batch) -> Result<Vec<bool>, QueryError> {
    let keep = f.keep(b)?;
    let candidate = q.prepare(b)?;
    Ok((0..b.len())
        .map(|i| keep.as_ref().is_none_or(|k| k[i]) && candidate(i).is_some())
        .collect())
}

/// How many changes one pass may hold.
fn max_changes<E>() -> usize {
    // Half the budget for the changes of one pass, each worker
    // holding up to all of them; the answer and the batches being read
    // need the rest. A change costs its entry, its first call and room for
    // the table and the list to double.
    let budget = credtrail_cli::budget::limit().unwrap_or(usize::MAX);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let change_bytes =
        2 * (size_of::<(Key, Hot)>() * 8 / 7 + 1 + size_of::<Cold<E>>() + size_of::<i64>());
    (budget / 2 / workers / change_bytes).max(1_000)
}

/// What every pass over the events for one question shares.
struct Reading<'a, Q: Question> {
    caps: &'a [CaptureInfo],
    q: &'a Q,
    columns: Vec<&'static str>,
    select: columns::Select<'a>,
    strings: &'a Strings,
    max_changes: usize,
    hasher: PlRandomState,
    limit: Option<usize>,
}

impl<Q: Question> Reading<'_, Q> {
    /// Reads the events once per share of the keys (`passes` shares): the
    /// rows kept and how many changes there were; None when a share's
    /// changes outgrow a pass.
    #[allow(clippy::type_complexity)]
    fn in_shares(&self, passes: u64) -> Result<Option<(Vec<Change<Q::Extra>>, usize)>, QueryError> {
        let mut kept: Vec<Change<Q::Extra>> = Vec::new();
        let mut total = 0usize;
        for share in 0..passes {
            let pass = self.pass(share, passes)?;
            if pass.overflowed || pass.index.len() > self.max_changes {
                return Ok(None);
            }
            total += pass.index.len();
            kept.extend(pass.into_changes(self.limit));
            if let Some(n) = self.limit
                && kept.len() > n.saturating_mul(2).max(1024)
            {
                trim(&mut kept, n);
            }
        }
        match self.limit {
            Some(n) => trim(&mut kept, n),
            None => kept.sort_unstable_by_key(Change::order),
        }
        Ok(Some((kept, total)))
    }

    /// One read of the events, keeping the changes of share `share`.
    fn pass(&self, share: u64, passes: u64) -> Result<Pass<Q::Extra>, QueryError> {
        columns::fold(
            self.caps,
            credtrail_capture::EVENTS,
            &self.columns,
            Some(&self.select),
            Pass::new,
            |p, b| {
                if p.overflowed {
                    return Ok(());
                }
                read(p, b, self.q, self.strings, |k| {
                    passes == 1 || self.hasher.hash_one(k) % passes == share
                })?;
                if p.index.len() > self.max_changes {
                    p.overflowed = true;
                }
                Ok(())
            },
            |a, b| a.merge(b),
        )
    }
}

/// Keeps the `n` earliest changes, sorted.
fn trim<E>(kept: &mut Vec<Change<E>>, n: usize) {
    if kept.len() > n && n > 0 {
        kept.select_nth_unstable_by_key(n - 1, Change::order);
        kept.truncate(n);
    } else if n == 0 {
        kept.clear();
    }
    kept.sort_unstable_by_key(Change::order);
}

/// Adds a batch of candidate rows (the selection kept only those the
/// filters and the question pass) to the pass's changes.
fn read<Q: Question>(
    p: &mut Pass<Q::Extra>,
    b: &Batch,
    q: &Q,
    strings: &Strings,
    mine: impl Fn(&Key) -> bool,
) -> Result<(), QueryError> {
    let rows = Rows::new(b, &mut p.ids, strings)?;
    let extra_of = q.prepare(b)?;
    for i in 0..b.len() {
        let Some(extra) = extra_of(i) else {
            continue;
        };
        let key = rows.key(i);
        if !mine(&key) {
            continue;
        }
        let call = rows.call(i);
        if let Some(hot) = p.index.get_mut(&key) {
            hot.time_us = hot.time_us.min(call.time_us);
            hot.time_ns = hot.time_ns.min(call.time_ns);
            hot.calls = hot.calls.saturating_add(call.calls);
            if call.tid != hot.tid {
                add_tid(&mut p.tids, hot, call.tid);
            }
            // A worker reads its parts in input order, so a later row is
            // never a first call: the cold part is not touched.
            continue;
        }
        let cold = Cold {
            first: b.order(i),
            strings: std::array::from_fn(|s| rows.text[s].id(i)),
            extra,
        };
        p.add(key, call, cold);
    }
    Ok(())
}

/// A batch's columns that make its rows' keys and calls.
struct Rows<'b> {
    cap: u32,
    time: &'b arrow::array::TimestampMicrosecondArray,
    time_ns: &'b arrow::array::Int64Array,
    pid: &'b arrow::array::Int64Array,
    tid: &'b arrow::array::Int64Array,
    args: [&'b arrow::array::Int64Array; 3],
    ret: &'b arrow::array::Int64Array,
    repeat: Option<&'b arrow::array::Int64Array>,
    node: Ids,
    exec: Ids,
    syscall: Ids,
    /// The kept strings' ids, as [`TEXT`].
    text: Vec<Ids>,
}

impl<'b> Rows<'b> {
    fn new(b: &'b Batch, ids: &mut [TextIds; 10], strings: &Strings) -> Result<Self, QueryError> {
        let time = b.times("time")?;
        let time_ns = b.need_ints(storage_time_ns())?;
        let (pid, tid) = (b.need_ints("pid")?, b.need_ints("tid")?);
        let args = [
            b.need_ints("arg0")?,
            b.need_ints("arg1")?,
            b.need_ints("arg2")?,
        ];
        let ret = b.need_ints("ret")?;
        let repeat = b.ints(crate::REPEAT_COUNT);
        let [node_ids, exec_ids, syscall_ids, rest @ ..] = ids;
        let node = node_ids.of(strings, b, "node_name");
        let exec = exec_ids.of(strings, b, "exec_id");
        let syscall = syscall_ids.of(strings, b, "syscall");
        let text: Vec<Ids> = rest
            .iter_mut()
            .zip(TEXT)
            .map(|(ids, name)| ids.of(strings, b, name))
            .collect();
        Ok(Rows {
            cap: b.cap as u32,
            time,
            time_ns,
            pid,
            tid,
            args,
            ret,
            repeat,
            node,
            exec,
            syscall,
            text,
        })
    }

    /// Row `i`'s change.
    fn key(&self, i: usize) -> Key {
        Key {
            cap: self.cap,
            node: self.node.id(i),
            exec: self.exec.id(i),
            syscall: self.syscall.id(i),
            pid: value(self.pid, i),
            args: [
                value(self.args[0], i),
                value(self.args[1], i),
                value(self.args[2], i),
            ],
            ret: value(self.ret, i),
        }
    }

    /// Row `i` as a change's one call (no other threads, not yet placed).
    fn call(&self, i: usize) -> Hot {
        let calls = columns::opt_int(self.repeat, i).map_or(1, |n| n.max(1) as u64);
        let time_us = if self.time.is_null(i) {
            i64::MAX
        } else {
            self.time.value(i)
        };
        let time_ns = columns::int(self.time_ns, i).unwrap_or(i64::MAX);
        Hot {
            time_us,
            time_ns,
            calls,
            tid: value(self.tid, i),
            more: NONE,
            at: 0,
        }
    }
}

/// An integer column's value, 0 when null.
fn value(a: &arrow::array::Int64Array, i: usize) -> i64 {
    columns::int(a, i).unwrap_or(0)
}

/// Adds a thread to a change other threads made.
fn add_tid(lists: &mut Vec<Vec<i64>>, hot: &mut Hot, tid: i64) {
    if hot.more == NONE {
        hot.more = u32::try_from(lists.len()).unwrap_or(NONE);
        lists.push(vec![hot.tid]);
    }
    if let Some(list) = lists.get_mut(hot.more as usize)
        && let Err(at) = list.binary_search(&tid)
    {
        list.insert(at, tid);
    }
}

impl<E> Pass<E> {
    fn new() -> Self {
        Pass {
            index: PlHashMap::default(),
            cold: Vec::new(),
            tids: Vec::new(),
            ids: Default::default(),
            overflowed: false,
        }
    }

    fn add(&mut self, key: Key, mut hot: Hot, cold: Cold<E>) {
        hot.at = u32::try_from(self.cold.len()).unwrap_or(NONE);
        self.cold.push(cold);
        self.index.insert(key, hot);
    }

    /// Merges another worker's pass in.
    fn merge(&mut self, b: Pass<E>) {
        self.overflowed |= b.overflowed;
        let mut cold: Vec<Option<Cold<E>>> = b.cold.into_iter().map(Some).collect();
        let threads = |hot: &Hot| match b.tids.get(hot.more as usize) {
            Some(list) => list.clone(),
            None => vec![hot.tid],
        };
        for (key, theirs) in b.index {
            let Some(c) = cold.get_mut(theirs.at as usize).and_then(Option::take) else {
                continue;
            };
            let Some(hot) = self.index.get_mut(&key) else {
                let mut hot = Hot {
                    more: NONE,
                    ..theirs
                };
                if theirs.more != NONE {
                    hot.more = u32::try_from(self.tids.len()).unwrap_or(NONE);
                    self.tids.push(threads(&theirs));
                }
                self.add(key, hot, c);
                continue;
            };
            hot.time_us = hot.time_us.min(theirs.time_us);
            hot.time_ns = hot.time_ns.min(theirs.time_ns);
            hot.calls = hot.calls.saturating_add(theirs.calls);
            if theirs.more != NONE || theirs.tid != hot.tid {
                for t in threads(&theirs) {
                    if t != hot.tid || hot.more != NONE {
                        add_tid(&mut self.tids, hot, t);
                    }
                }
            }
            if let Some(mine) = self.cold.get_mut(hot.at as usize)
                && c.first < mine.first
            {
                *mine = c;
            }
        }
    }

    /// The pass's changes, whole; with a `limit`, only the earliest that
    /// many (chosen before any is made whole).
    fn into_changes(self, limit: Option<usize>) -> Vec<Change<E>> {
        let mut entries: Vec<(Key, Hot)> = self.index.into_iter().collect();
        let order = |(k, h): &(Key, Hot)| {
            let first = self.cold.get(h.at as usize).map_or(u128::MAX, |c| c.first);
            (h.time_ns, k.pid, first)
        };
        if let Some(n) = limit.filter(|n| *n < entries.len()) {
            if n == 0 {
                entries.clear();
            } else {
                entries.select_nth_unstable_by_key(n - 1, order);
                entries.truncate(n);
            }
        }
        let mut cold: Vec<Option<Cold<E>>> = self.cold.into_iter().map(Some).collect();
        let mut lists = self.tids;
        entries
            .into_iter()
            .filter_map(|(key, hot)| {
                let c = cold.get_mut(hot.at as usize)?.take()?;
                let tids = match lists.get_mut(hot.more as usize) {
                    Some(l) => std::mem::take(l),
                    None => vec![hot.tid],
                };
                Some(Change {
                    key,
                    time_us: hot.time_us,
                    time_ns: hot.time_ns,
                    calls: hot.calls,
                    tids,
                    first: c.first,
                    strings: c.strings,
                    extra: c.extra,
                })
            })
            .collect()
    }
}

impl<E> Answer<E> {
    fn text(&self, id: u32) -> Option<String> {
        self.strings.get(id).map(|s| s.to_string())
    }

    /// The columns every logical change answers with, in the polars
    /// plan's types. `pick` names which.
    pub fn column(&self, name: &str) -> Result<Column, QueryError> {
        let rows = &self.rows;
        let texts = |f: &dyn Fn(&Change<E>) -> Option<String>| -> Column {
            Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
        };
        Ok(match name {
            "time" => Column::new(
                name.into(),
                rows.iter().map(|c| c.time_us).collect::<Vec<_>>(),
            )
            .cast(&DataType::Datetime(
                TimeUnit::Microseconds,
                Some(TimeZone::UTC),
            ))?,
            "node_name" => texts(&|c| self.text(c.key.node)),
            "pod" => texts(&|c| self.pod(c)),
            "pid" => Column::new(
                name.into(),
                rows.iter().map(|c| c.key.pid).collect::<Vec<_>>(),
            ),
            "binary" => texts(&|c| self.text(c.strings[BINARY])),
            "arguments" => texts(&|c| self.text(c.strings[ARGUMENTS])),
            "parent_binary" => texts(&|c| self.text(c.strings[PARENT])),
            "container_name" => texts(&|c| self.text(c.strings[CONTAINER_NAME])),
            "syscall" => texts(&|c| self.text(c.key.syscall)),
            "arg0" | "arg1" | "arg2" => {
                let n = usize::from(name.as_bytes()[3] - b'0');
                Column::new(
                    name.into(),
                    rows.iter().map(|c| c.key.args[n]).collect::<Vec<_>>(),
                )
            }
            "ret" => Column::new(
                name.into(),
                rows.iter().map(|c| c.key.ret).collect::<Vec<_>>(),
            ),
            "threads" => Column::new(
                name.into(),
                rows.iter()
                    .map(|c| c.tids.len() as IdxSize)
                    .collect::<Vec<_>>(),
            ),
            "calls" => Column::new(
                name.into(),
                rows.iter().map(|c| c.calls).collect::<Vec<_>>(),
            ),
            "capture" => texts(&|c| self.names.get(c.key.cap as usize).cloned()),
            "exec_id" => texts(&|c| self.text(c.key.exec)),
            other => {
                return Err(QueryError::Invalid(format!(
                    "logical changes have no {other} column"
                )));
            }
        })
    }

    /// `ns/name` when the pod is known, else the first 12 characters of
    /// the container id (as `questions::pod_expr`).
    fn pod(&self, c: &Change<E>) -> Option<String> {
        match self.text(c.strings[POD_NAME]) {
            Some(name) => Some(match self.text(c.strings[POD_NS]) {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            }),
            None => self
                .text(c.strings[CONTAINER_ID])
                .map(|id| id.chars().take(12).collect()),
        }
    }

    /// A frame of `names` (see [`Answer::column`]) plus `more`.
    pub fn frame(&self, names: &[&str], more: Vec<Column>) -> Result<DataFrame, QueryError> {
        let mut cols = Vec::with_capacity(names.len() + more.len());
        for n in names {
            cols.push(self.column(n)?);
        }
        cols.extend(more);
        Ok(DataFrame::new_infer_height(cols)?)
    }
}
