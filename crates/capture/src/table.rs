//! The five tables of a capture: their names, their row types, the Arrow
//! schema each row type traces to, and where a manifest record's file is.

use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use std::path::Path;

use crate::columnar::Columns;
use crate::error::CaptureError;
use crate::manifest::{Manifest, Segment};
use crate::model::{ContainerRow, Event, ProcEvent, ProcessRow, UsernsRow};

pub const EVENTS: &str = "events";
pub const PROCESSES: &str = "processes";
pub const LIFECYCLE: &str = "lifecycle";
pub const CONTAINERS: &str = "containers";
pub const USER_NAMESPACES: &str = "user_namespaces";
/// The capture's own status, a row per set of segments (see `status`).
pub const CAPTURES: &str = "captures";
/// Every table of a capture. A finished capture (sealed, recovered or
/// failed) lists at least one segment of each, empty if need be, so that
/// readers of the files alone (DuckDB, Spark) find every table. Captures
/// older than format 3 have no `user_namespaces`, older than format 6 no
/// `captures`: they read as empty.
pub const TABLES: [&str; 6] = [
    EVENTS,
    LIFECYCLE,
    CONTAINERS,
    PROCESSES,
    USER_NAMESPACES,
    CAPTURES,
];

/// A table's Arrow schema, traced from its Rust type so the struct is the
/// single definition of the columns.
pub trait Table: Serialize + DeserializeOwned {
    const NAME: &'static str;
    /// Columns stored with a type other than the traced one.
    fn overrides(opts: TracingOptions) -> TracingOptions {
        opts
    }
    /// Columns that are nearly sorted integers: delta encoding beats dictionaries.
    const DELTA_COLUMNS: &'static [&'static str] = &[];
    /// The boot-clock time of a row, for segment ranges.
    fn ktime_ns(&self) -> u64;

    /// The batch's rows read column by column, when its columns are exactly
    /// this table's (None: read them through serde_arrow).
    fn typed_rows(_batch: &RecordBatch) -> Option<Vec<Self>> {
        None
    }

    /// Typed builders for this table's columns (None: serde_arrow's).
    fn typed_columns() -> Option<Box<dyn Columns<Self>>> {
        None
    }

    fn fields() -> Vec<FieldRef> {
        let opts = Self::overrides(
            TracingOptions::default()
                .strings_as_large_utf8(false)
                .sequence_as_large_list(false),
        );
        Vec::<FieldRef>::from_type::<Self>(opts).expect("table types trace to a schema")
    }
}

impl Table for Event {
    const NAME: &'static str = EVENTS;
    const DELTA_COLUMNS: &'static [&'static str] = &["time", "time_ns", "ktime_ns", "seq"];
    fn overrides(opts: TracingOptions) -> TracingOptions {
        timestamps(
            opts,
            &[
                ("time", false),
                ("last_seen", true),
                ("last_time", true),
                ("start_time", true),
                ("parent_start_time", true),
                ("container_start_time", true),
            ],
        )
    }
    fn ktime_ns(&self) -> u64 {
        self.ktime_ns
    }
    fn typed_rows(batch: &RecordBatch) -> Option<Vec<Self>> {
        crate::columnar::events_from_batch(batch)
    }
    fn typed_columns() -> Option<Box<dyn Columns<Self>>> {
        Some(Box::<crate::columnar::EventColumns>::default())
    }
}

/// Stores these i64 nanosecond columns as UTC timestamps.
fn timestamps(mut opts: TracingOptions, cols: &[(&str, bool)]) -> TracingOptions {
    for (name, nullable) in cols {
        opts = opts
            .overwrite(
                *name,
                serde_json::json!({
                    "name": name,
                    "data_type": "Timestamp(Nanosecond, Some(\"UTC\"))",
                    "nullable": nullable,
                }),
            )
            .expect("valid override");
    }
    opts
}

impl Table for ProcEvent {
    const NAME: &'static str = LIFECYCLE;
    const DELTA_COLUMNS: &'static [&'static str] = &["time", "time_ns", "ktime_ns", "seq"];
    fn overrides(opts: TracingOptions) -> TracingOptions {
        timestamps(opts, &[("time", false)])
    }
    fn ktime_ns(&self) -> u64 {
        self.ktime_ns
    }
}

impl Table for ContainerRow {
    const NAME: &'static str = CONTAINERS;
    fn overrides(opts: TracingOptions) -> TracingOptions {
        timestamps(opts, &[("container_start_time", true)])
    }
    fn ktime_ns(&self) -> u64 {
        self.first_seen_ktime_ns
    }
}

impl Table for UsernsRow {
    const NAME: &'static str = USER_NAMESPACES;
    const DELTA_COLUMNS: &'static [&'static str] = &["time", "time_ns", "ktime_ns", "seq"];
    fn overrides(opts: TracingOptions) -> TracingOptions {
        timestamps(opts, &[("time", false)])
    }
    fn ktime_ns(&self) -> u64 {
        self.ktime_ns
    }
}

impl Table for ProcessRow {
    const NAME: &'static str = PROCESSES;
    fn ktime_ns(&self) -> u64 {
        self.snapshot_ktime_ns
    }
}

/// The tables of rows the manifest lists no readable segment of (the
/// `captures` row is written on its own when a capture ends).
pub(crate) fn missing_tables(manifest: &Manifest) -> impl Iterator<Item = &'static str> + '_ {
    TABLES
        .into_iter()
        .filter(|t| *t != CAPTURES && manifest.segments_of(t).next().is_none())
}

/// The segment number of `table/part-NNNNN.parquet`.
pub(crate) fn epoch_of(file: &str) -> Option<u32> {
    file.rsplit('/')
        .next()?
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// Where a manifest record's file is: its table and its name in the
/// table's folder. The only names credtrail writes, `TABLE/part-N.parquet`
/// with TABLE the record's table, are accepted: an absolute path, `..`, a
/// glob or any other name in a manifest is refused, so no reader and no
/// `recover` ever reaches a file outside the capture's table folders.
pub fn segment_location(seg: &Segment) -> Result<(&'static str, &str), String> {
    file_location(&seg.table, &seg.file)
}

/// [`segment_location`] of a record naming `file` in `table`.
pub fn file_location<'a>(
    record_table: &str,
    file: &'a str,
) -> Result<(&'static str, &'a str), String> {
    let bad = |why: &str| {
        Err(format!(
            "manifest record {file:?} (table {record_table:?}): {why}; refusing to touch it"
        ))
    };
    let Some((table, name)) = file.split_once('/') else {
        return bad("not TABLE/part-N.parquet");
    };
    let Some(table) = TABLES.into_iter().find(|t| *t == table) else {
        return bad("not in a table folder of the capture");
    };
    if table != record_table {
        return bad("its folder is not its table");
    }
    let digits = name
        .strip_prefix("part-")
        .and_then(|n| n.strip_suffix(".parquet"));
    match digits {
        Some(d) if !d.is_empty() && d.len() <= 10 && d.bytes().all(|b| b.is_ascii_digit()) => {
            Ok((table, name))
        }
        _ => bad("not a segment name credtrail writes (part-N.parquet)"),
    }
}

pub(crate) fn schema_err(path: &Path, e: serde_arrow::Error) -> CaptureError {
    CaptureError::Schema {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
