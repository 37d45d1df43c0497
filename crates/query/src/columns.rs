//! The built-in questions' own scan: a table's segments read as Arrow
//! record batches of only the columns a question needs, strings as their
//! Parquet dictionaries, by every core at once (a segment split into parts
//! of its row groups), each worker folding batches into its own state and
//! the states merged at the end. What a question keeps is its choice; the
//! scan holds one batch per worker.
//!
//! Used where every capture is stored as format 5 and later without a
//! `--policy` (the policy is a polars expression); otherwise the questions
//! take their polars plans.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int64Array, ListArray, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use credtrail_capture::manifest::Segment;
use credtrail_capture::projected::{self, CheckedSegment, SegmentPart};
use credtrail_capture::storage;
use polars::prelude::PlHashMap;

use crate::filters::Filters;
use crate::{CaptureInfo, QueryError};

/// Rows per part a segment is split into, so that a capture of one large
/// segment still keeps every core busy.
const PART_ROWS: u64 = 1_000_000;

/// Kept rows are skipped to (not decoded and filtered) only when runs of
/// them are this many rows apart on average: on 10 M events, skipping to
/// 10% scattered rows took 8 s.
const SCATTERED: usize = 64;

/// Whether every answered capture can be read by this scan.
pub(crate) fn supported(caps: &[CaptureInfo]) -> bool {
    crate::answered(caps)
        .all(|c| c.policy.is_none() && c.manifest.format_version >= storage::SINCE_FORMAT)
}

/// One piece of work: a part of one segment.
struct Part<'a> {
    cap: usize,
    info: &'a CaptureInfo,
    seg_index: usize,
    seg: &'a Segment,
    /// The segment's place among all the work's segments (its parts share
    /// one opened, checked file).
    slot: usize,
    part: usize,
    parts: usize,
}

fn parts<'a>(caps: &'a [CaptureInfo], table: &'a str) -> Vec<Part<'a>> {
    let mut out = Vec::new();
    let mut slot = 0;
    for (cap, info) in caps.iter().enumerate().filter(|(_, c)| !c.schema_only) {
        for (seg_index, seg) in info.manifest.segments_of(table).enumerate() {
            let parts = usize::try_from(seg.rows.div_ceil(PART_ROWS).clamp(1, 64)).unwrap_or(1);
            for part in 0..parts {
                out.push(Part {
                    cap,
                    info,
                    seg_index,
                    seg,
                    slot,
                    part,
                    parts,
                });
            }
            slot += 1;
        }
    }
    out
}

/// A record batch and where it came from.
pub(crate) struct Batch<'a> {
    pub cap: usize,
    pub info: &'a CaptureInfo,
    pub rb: RecordBatch,
    /// The input order of the batch's first row: capture, segment, row.
    first: u128,
}

impl Batch<'_> {
    /// The input order of row `i` (earlier rows order first).
    pub fn order(&self, i: usize) -> u128 {
        self.first + i as u128
    }

    pub fn len(&self) -> usize {
        self.rb.num_rows()
    }

    fn column(&self, name: &str) -> Option<&ArrayRef> {
        self.rb.column_by_name(name)
    }

    /// An integer column (every id, mask and count is stored as int64);
    /// None when the capture's format has no such column.
    pub fn ints(&self, name: &str) -> Option<&Int64Array> {
        self.column(name)?.as_primitive_opt::<Int64Type>()
    }

    /// An integer column the table always has.
    pub fn need_ints(&self, name: &str) -> Result<&Int64Array, QueryError> {
        self.ints(name).ok_or_else(|| missing(self, name))
    }

    pub fn times(&self, name: &str) -> Result<&TimestampMicrosecondArray, QueryError> {
        self.column(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| missing(self, name))
    }

    /// A text column, as the dictionary the reader passed through.
    pub fn text(&self, name: &str) -> Option<&DictionaryArray<Int32Type>> {
        self.column(name)?.as_dictionary_opt::<Int32Type>()
    }

    pub fn list(&self, name: &str) -> Option<&ListArray> {
        self.column(name)?.as_list_opt::<i32>()
    }
}

fn missing(b: &Batch, name: &str) -> QueryError {
    QueryError::Invalid(format!(
        "{}: the events table has no {name} column of the stored type",
        b.info.name
    ))
}

/// A first read of a few columns that picks the rows the second read
/// decodes: the rest are skipped undecoded (most of a question's time
/// when few rows are candidates).
pub(crate) struct Select<'s> {
    pub columns: Vec<&'static str>,
    #[allow(clippy::type_complexity)]
    pub test: &'s (dyn Fn(&Batch) -> Result<Vec<bool>, QueryError> + Sync),
}

/// Folds every batch of `table` over `caps` (only `columns` decoded, and
/// only the rows `select` keeps) into per-worker states made by `init`,
/// then merges them into one. Work is handed out part by part to one
/// worker per core.
pub(crate) fn fold<S: Send>(
    caps: &[CaptureInfo],
    table: &str,
    columns: &[&str],
    select: Option<&Select>,
    init: impl Fn() -> S + Sync,
    each: impl Fn(&mut S, &Batch) -> Result<(), QueryError> + Sync,
    merge: impl Fn(&mut S, S),
) -> Result<S, QueryError> {
    let work = Work::new(parts(caps, table));
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(work.parts.len().max(1));
    let run = || -> Result<S, QueryError> {
        let mut state = init();
        while let Some(p) = work.take() {
            fold_part(&work, p, columns, select, &mut |b| each(&mut state, b))?;
        }
        Ok(state)
    };
    let mut states = on_workers(workers, &work.stop, run)?.into_iter();
    let mut out = states.next().unwrap_or_else(&init);
    for s in states {
        merge(&mut out, s);
    }
    Ok(out)
}

/// The parts one `fold` hands out, shared by its workers.
struct Work<'a> {
    parts: Vec<Part<'a>>,
    /// Each segment opened and checked once, by the first worker to reach
    /// one of its parts (the others wait for it).
    segments: Vec<OnceLock<Result<CheckedSegment, String>>>,
    next: AtomicUsize,
    /// Set when a worker failed: the others take no more parts.
    stop: AtomicBool,
}

impl<'a> Work<'a> {
    fn new(parts: Vec<Part<'a>>) -> Self {
        let segments = (0..parts.last().map_or(0, |p| p.slot + 1))
            .map(|_| OnceLock::new())
            .collect();
        Work {
            parts,
            segments,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// The next part no worker took yet (None: none left, or one failed).
    fn take(&self) -> Option<&Part<'a>> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        self.parts.get(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Part `p` of its segment, opened and checked.
    fn open(&self, p: &Part) -> Result<SegmentPart, QueryError> {
        Ok(self.segments[p.slot]
            .get_or_init(|| projected::open(&p.info.files, p.seg).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| QueryError::Invalid(e.clone()))?
            .part(p.part, p.parts))
    }
}

impl<'a> Part<'a> {
    /// A batch of this part: `rb`, whose first row is row `row` of `part`.
    fn batch(&self, part: &SegmentPart, rb: RecordBatch, row: u128) -> Batch<'a> {
        let base = ((self.cap as u128) << 96) | ((self.seg_index as u128) << 64);
        Batch {
            cap: self.cap,
            info: self.info,
            rb,
            first: base | (u128::from(part.first_row) + row),
        }
    }
}

/// Passes every batch of part `p` (only `columns`, only the rows `select`
/// keeps) to `each`.
fn fold_part(
    work: &Work,
    p: &Part,
    columns: &[&str],
    select: Option<&Select>,
    each: &mut dyn FnMut(&Batch) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let part = work.open(p)?;
    let keep = match select {
        None => None,
        Some(sel) => {
            let keep = selected(p, &part, sel)?;
            if !keep.contains(&true) {
                return Ok(());
            }
            Some(keep)
        }
    };
    let (skip, mut filter) = skip_or_filter(keep.as_deref());
    // With a selection, rows are numbered among those kept: still
    // in input order, which is all the number is for.
    let mut row = 0u128;
    for rb in part.read(columns, skip)? {
        let mut rb = rb?;
        if let Some(flags) = &mut filter {
            rb = filter_batch(p, rb, flags)?;
        }
        let n = rb.num_rows() as u128;
        each(&p.batch(&part, rb, row))?;
        row += n;
    }
    Ok(())
}

/// Per row of `part`: whether `sel` keeps it.
fn selected(p: &Part, part: &SegmentPart, sel: &Select) -> Result<Vec<bool>, QueryError> {
    let mut keep = Vec::with_capacity(usize::try_from(part.rows).unwrap_or(0));
    for rb in part.read(&sel.columns, None)? {
        let b = p.batch(part, rb?, keep.len() as u128);
        keep.extend((sel.test)(&b)?);
    }
    Ok(keep)
}

/// The rows to skip undecoded, or (when the kept rows are scattered) to
/// filter out after decoding: one of the two, or neither without a selection.
fn skip_or_filter(keep: Option<&[bool]>) -> (Option<&[bool]>, Option<&[bool]>) {
    // Skipping rows pays per run of kept rows: a scattered few are
    // cheaper decoded with the rest and filtered out.
    let runs = keep.map_or(0, |k| k.windows(2).filter(|w| w[1] && !w[0]).count());
    match keep {
        Some(k) if runs.saturating_mul(SCATTERED) > k.len() => (None, Some(k)),
        _ => (keep, None),
    }
}

/// The rows of `rb` that the first of `flags` keep; `flags` is left with
/// the rest.
fn filter_batch(p: &Part, rb: RecordBatch, flags: &mut &[bool]) -> Result<RecordBatch, QueryError> {
    let (now, rest) = flags.split_at(rb.num_rows().min(flags.len()));
    *flags = rest;
    arrow::compute::filter_record_batch(&rb, &BooleanArray::from(now.to_vec()))
        .map_err(|e| QueryError::Invalid(format!("{}: {e}", p.info.name)))
}

/// Runs `run` on `workers` threads: their states in worker order, or the
/// first error in that order. A worker that fails sets `stop`, so the
/// others take no more parts.
fn on_workers<S: Send>(
    workers: usize,
    stop: &AtomicBool,
    run: impl Fn() -> Result<S, QueryError> + Sync,
) -> Result<Vec<S>, QueryError> {
    let results: Vec<Result<S, QueryError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let r = run();
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(QueryError::Invalid(
                        "a worker reading the capture failed (malformed data?)".into(),
                    ))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Every distinct string the questions keep, as a number: rows hold
/// numbers, and only the rows printed become text again.
#[derive(Default)]
pub(crate) struct Strings {
    ids: Mutex<Interned>,
}

/// Each string's id, and the strings by id.
type Interned = (PlHashMap<Arc<str>, u32>, Vec<Arc<str>>);

/// The id of a null string.
pub(crate) const NULL: u32 = u32::MAX;

impl Strings {
    /// Ids of every value of a dictionary, in its order.
    fn intern(&self, values: &StringArray) -> Vec<u32> {
        let mut guard = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let (map, all) = &mut *guard;
        values
            .iter()
            .map(|v| match v {
                None => NULL,
                Some(s) => {
                    if let Some(id) = map.get(s) {
                        return *id;
                    }
                    let id = u32::try_from(all.len()).unwrap_or(NULL - 1);
                    let s: Arc<str> = Arc::from(s);
                    all.push(Arc::clone(&s));
                    map.insert(s, id);
                    id
                }
            })
            .collect()
    }

    pub fn get(&self, id: u32) -> Option<Arc<str>> {
        if id == NULL {
            return None;
        }
        let guard = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.get(id as usize).cloned()
    }
}

/// A text column of one batch as string ids, mapped once per dictionary
/// (a dictionary shared by batches of a row group is mapped once).
#[derive(Default)]
pub(crate) struct TextIds {
    last: Option<(ArrayRef, Arc<Vec<u32>>)>,
}

impl TextIds {
    /// Per row: the string's id (NULL for a null or an absent column).
    pub fn of(&mut self, strings: &Strings, b: &Batch, name: &str) -> Column {
        let Some(arr) = b.text(name) else {
            return Column::Absent;
        };
        let values = arr.values();
        let ids = match &self.last {
            Some((v, ids)) if Arc::ptr_eq(v, values) => Arc::clone(ids),
            _ => {
                let ids = Arc::new(match values.as_string_opt::<i32>() {
                    Some(s) => strings.intern(s),
                    None => Vec::new(),
                });
                self.last = Some((Arc::clone(values), Arc::clone(&ids)));
                ids
            }
        };
        Column::Dict {
            keys: arr.keys().clone(),
            ids,
        }
    }
}

/// A text column as ids.
pub(crate) enum Column {
    Absent,
    Dict {
        keys: arrow::array::Int32Array,
        ids: Arc<Vec<u32>>,
    },
}

impl Column {
    pub fn id(&self, i: usize) -> u32 {
        match self {
            Column::Absent => NULL,
            Column::Dict { keys, ids } => {
                if keys.is_null(i) {
                    return NULL;
                }
                usize::try_from(keys.value(i))
                    .ok()
                    .and_then(|k| ids.get(k).copied())
                    .unwrap_or(NULL)
            }
        }
    }
}

/// Per row of a text column: whether `test` holds for its value (false
/// for null), testing each distinct value once.
pub(crate) fn text_test(b: &Batch, name: &str, test: impl Fn(&str) -> bool) -> Vec<bool> {
    let Some(arr) = b.text(name) else {
        return vec![false; b.len()];
    };
    let Some(values) = arr.values().as_string_opt::<i32>() else {
        return vec![false; b.len()];
    };
    let per_value: Vec<bool> = values.iter().map(|v| v.is_some_and(&test)).collect();
    arr.keys()
        .iter()
        .map(|k| {
            k.and_then(|k| usize::try_from(k).ok())
                .and_then(|k| per_value.get(k).copied())
                .unwrap_or(false)
        })
        .collect()
}

impl Filters {
    /// Which rows of an events batch the filters keep (None: all).
    pub(crate) fn keep(&self, b: &Batch) -> Result<Option<Vec<bool>>, QueryError> {
        let mut keep: Option<Vec<bool>> = None;
        let mut and = |rows: Vec<bool>| match &mut keep {
            None => keep = Some(rows),
            Some(k) => k.iter_mut().zip(rows).for_each(|(a, b)| *a &= b),
        };
        if let Some(n) = &self.node {
            and(text_test(b, "node_name", |v| v == n));
        }
        if let Some(pod) = &self.pod {
            match pod.split_once('/') {
                Some((ns, name)) => {
                    and(text_test(b, "pod_namespace", |v| v == ns));
                    and(text_test(b, "pod_name", |v| v == name));
                }
                None => and(text_test(b, "pod_name", |v| v == pod)),
            }
        }
        if let Some(c) = &self.container {
            let by_id = text_test(b, "container_id", |v| v.starts_with(c.as_str()));
            let by_name = text_test(b, "container_name", |v| v == c);
            and(by_id.into_iter().zip(by_name).map(|(a, b)| a | b).collect());
        }
        if let Some(bin) = &self.binary {
            let tail = format!("/{bin}");
            and(text_test(b, "binary", |v| v == bin || v.ends_with(&tail)));
        }
        if let Some(s) = &self.syscall {
            and(text_test(b, "syscall", |v| v == s));
        }
        if self.since.is_some() || self.until.is_some() {
            let t = b.need_ints(storage::TIME_NS)?;
            let (lo, hi) = (self.since, self.until);
            and(t
                .iter()
                .map(|t| {
                    t.is_some_and(|t| lo.is_none_or(|lo| t >= lo) && hi.is_none_or(|hi| t < hi))
                })
                .collect());
        }
        Ok(keep)
    }

    /// The columns [`Filters::keep`] reads.
    pub(crate) fn columns(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.node.is_some() {
            c.push("node_name");
        }
        if self.pod.is_some() {
            c.extend(["pod_namespace", "pod_name"]);
        }
        if self.container.is_some() {
            c.extend(["container_id", "container_name"]);
        }
        if self.binary.is_some() {
            c.push("binary");
        }
        if self.syscall.is_some() {
            c.push("syscall");
        }
        if self.since.is_some() || self.until.is_some() {
            c.push(storage::TIME_NS);
        }
        c
    }
}

/// An int64 value, null as None.
pub(crate) fn int(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// An optional int64 column's value (None: null, or no such column).
pub(crate) fn opt_int(a: Option<&Int64Array>, i: usize) -> Option<i64> {
    a.and_then(|a| int(a, i))
}

/// A list-of-int64 value (empty for null).
pub(crate) fn int_list(a: Option<&ListArray>, i: usize) -> Vec<i64> {
    let Some(a) = a else {
        return Vec::new();
    };
    if a.is_null(i) {
        return Vec::new();
    }
    let v = a.value(i);
    v.as_primitive_opt::<Int64Type>()
        .map(|p| p.iter().flatten().collect())
        .unwrap_or_default()
}
