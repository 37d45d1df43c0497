//! The `captures` table: the capture's own status, one row per set of
//! segments sealed and one final row (sealed, failed or recovered), so an
//! engine that reads only Parquet (Spark, DuckDB) sees which capture each
//! node wrote, whether it ended cleanly, and every loss counter.
//!
//! A row is the manifest at that moment: its node, capture id, state and
//! times, every [`Counters`] field as a column of its own (names from the
//! struct, so a new counter is a new column), the chain head and the
//! evictions. The row with the largest `segment_set` (`final_row` true once
//! the capture has ended) is the capture's last word; earlier rows show how
//! a running capture stood when each set of segments was sealed.
//!
//! Stored in the types of format 5 (see [`crate::storage`]); built column
//! by column because the counters are a list of names, not a Rust struct
//! serde_arrow can trace flat.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::Compression;
use parquet::file::properties::EnabledStatistics;
use serde_arrow::schema::{SchemaLike, TracingOptions};

use crate::error::CaptureError;
use crate::fs::Dir;
use crate::manifest::{CaptureState, Counters, Manifest, Segment};
use crate::read::{batch_reader, next_batch};
use crate::segment::writer_properties;
use crate::storage::micros;
use crate::table::CAPTURES;

/// One row of the `captures` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRow {
    pub node_name: String,
    /// The first 16 hex digits of the hash chain's first link (a hash of
    /// the node, boot, start, hooks and settings): one id per recording.
    pub capture_id: String,
    pub format_version: u32,
    pub credtrail_version: String,
    pub kernel_release: String,
    pub boot_id: String,
    pub state: CaptureState,
    /// Wall clock, ns (stored as microseconds).
    pub start_time: i64,
    pub end_time: Option<i64>,
    /// When the row was written: the newest segment's last row, or the end.
    pub as_of_time: i64,
    /// The segment number (`part-N`) of this row's file.
    pub segment_set: u32,
    /// Written when the capture ended (sealed, failed, recovered).
    pub final_row: bool,
    /// Segments listed so far, evicted ones included, this row's not.
    pub segments: u64,
    pub segments_evicted: u64,
    /// Bytes of the segments still on disk.
    pub bytes_kept: u64,
    /// Events and lifecycle records known to be lost (sums of counters).
    pub events_lost: u64,
    pub lifecycle_lost: u64,
    /// The manifest's chain head when the row was written.
    pub chain_head: Option<String>,
    pub error: Option<String>,
    pub counters: Counters,
}

/// A cell of a row; its variant fixes the column's stored type.
enum Cell {
    Str(String),
    OptStr(Option<String>),
    Int(i64),
    Time(i64),
    OptTime(Option<i64>),
    Bool(bool),
}

impl Cell {
    fn data_type(&self) -> DataType {
        match self {
            Cell::Str(_) | Cell::OptStr(_) => DataType::Utf8,
            Cell::Int(_) => DataType::Int64,
            Cell::Time(_) | Cell::OptTime(_) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            Cell::Bool(_) => DataType::Boolean,
        }
    }

    fn nullable(&self) -> bool {
        matches!(self, Cell::OptStr(_) | Cell::OptTime(_))
    }

    fn array(self) -> ArrayRef {
        let us = |ns: i64| micros(ns) / 1_000;
        match self {
            Cell::Str(s) => Arc::new(StringArray::from(vec![s])),
            Cell::OptStr(s) => Arc::new(StringArray::from(vec![s])),
            Cell::Int(v) => Arc::new(Int64Array::from(vec![v])),
            Cell::Time(ns) => {
                Arc::new(TimestampMicrosecondArray::from(vec![us(ns)]).with_timezone("UTC"))
            }
            Cell::OptTime(ns) => {
                Arc::new(TimestampMicrosecondArray::from(vec![ns.map(us)]).with_timezone("UTC"))
            }
            Cell::Bool(b) => Arc::new(BooleanArray::from(vec![b])),
        }
    }
}

/// Every field of [`Counters`], in declaration order (traced from the type,
/// so fields left out of the JSON while zero are still named).
pub fn counter_names() -> Vec<String> {
    Vec::<arrow::datatypes::FieldRef>::from_type::<Counters>(TracingOptions::default())
        .expect("Counters traces to a schema")
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// The capture id of a manifest (see [`CaptureRow::capture_id`]).
pub fn capture_id(m: &Manifest) -> String {
    m.genesis()[..16].to_owned()
}

impl CaptureRow {
    /// The row for `manifest` as it stands, written as segment `segment_set`.
    pub fn of(m: &Manifest, segment_set: u32, final_row: bool) -> CaptureRow {
        let wall = |ktime: u64| ktime as i64 + m.realtime_offset_ns;
        let newest = m.segments.iter().map(|s| s.last_ktime_ns).max();
        let as_of = m
            .end
            .as_ref()
            .map(|e| e.ktime_ns)
            .or(newest)
            .unwrap_or(m.start.ktime_ns)
            .max(m.start.ktime_ns);
        CaptureRow {
            node_name: m.node_name.clone(),
            capture_id: capture_id(m),
            format_version: m.format_version,
            credtrail_version: m.credtrail_version.clone(),
            kernel_release: m.kernel_release.clone(),
            boot_id: m.boot_id.clone(),
            state: m.state,
            start_time: wall(m.start.ktime_ns),
            end_time: m.end.as_ref().map(|e| wall(e.ktime_ns)),
            as_of_time: wall(as_of),
            segment_set,
            final_row,
            segments: m.record_counts().0,
            segments_evicted: m.record_counts().1,
            bytes_kept: m.kept_bytes(),
            events_lost: m.counters.lost(),
            lifecycle_lost: m.counters.lifecycle_lost(),
            chain_head: m.chain_head.clone(),
            error: m.error.clone(),
            counters: m.counters.clone(),
        }
    }

    /// The columns, in order: the single definition of the table.
    fn cells(&self) -> Vec<(String, Cell)> {
        let int = |v: u64| Cell::Int(v as i64);
        let mut cells = vec![
            ("node_name", Cell::Str(self.node_name.clone())),
            ("capture_id", Cell::Str(self.capture_id.clone())),
            ("format_version", int(self.format_version.into())),
            (
                "credtrail_version",
                Cell::Str(self.credtrail_version.clone()),
            ),
            ("kernel_release", Cell::Str(self.kernel_release.clone())),
            ("boot_id", Cell::Str(self.boot_id.clone())),
            ("state", Cell::Str(state_name(self.state))),
            ("start_time", Cell::Time(self.start_time)),
            ("end_time", Cell::OptTime(self.end_time)),
            ("as_of_time", Cell::Time(self.as_of_time)),
            ("segment_set", int(self.segment_set.into())),
            ("final_row", Cell::Bool(self.final_row)),
            ("segments", int(self.segments)),
            ("segments_evicted", int(self.segments_evicted)),
            ("bytes_kept", int(self.bytes_kept)),
            ("events_lost", int(self.events_lost)),
            ("lifecycle_lost", int(self.lifecycle_lost)),
            ("chain_head", Cell::OptStr(self.chain_head.clone())),
            ("error", Cell::OptStr(self.error.clone())),
        ]
        .into_iter()
        .map(|(n, c)| (n.to_owned(), c))
        .collect::<Vec<_>>();
        let values = serde_json::to_value(&self.counters).expect("counters serialize");
        for name in counter_names() {
            let v = values.get(&name).and_then(|v| v.as_u64()).unwrap_or(0);
            cells.push((name, int(v)));
        }
        cells
    }

    /// The stored schema of the table.
    pub fn schema() -> SchemaRef {
        let blank = CaptureRow::of(&Manifest::new("", 0, 0), 0, false);
        schema_of(&blank.cells())
    }

    pub fn to_batch(&self) -> RecordBatch {
        let cells = self.cells();
        let schema = schema_of(&cells);
        let columns = cells.into_iter().map(|(_, c)| c.array()).collect();
        RecordBatch::try_new(schema, columns).expect("cells match their schema")
    }

    /// The rows of a stored batch, refusing one whose columns are not this
    /// table's.
    pub fn from_batch(batch: &RecordBatch) -> Result<Vec<CaptureRow>, String> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("no column {name:?}"))
        };
        let ints = |name: &str| -> Result<Vec<Option<i64>>, String> {
            let a = col(name)?;
            let a = a
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| format!("column {name:?} is not int64"))?;
            Ok(a.iter().collect())
        };
        let strs = |name: &str| -> Result<Vec<Option<String>>, String> {
            let a = col(name)?;
            let a = a
                .as_string_opt::<i32>()
                .ok_or_else(|| format!("column {name:?} is not a string"))?;
            Ok(a.iter().map(|s| s.map(str::to_owned)).collect())
        };
        let times = |name: &str| -> Result<Vec<Option<i64>>, String> {
            let a = col(name)?;
            let a = a
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| format!("column {name:?} is not a microsecond timestamp"))?;
            Ok(a.iter().map(|v| v.map(|us| us * 1_000)).collect())
        };
        let finals = col("final_row")?
            .as_boolean_opt()
            .ok_or("column \"final_row\" is not a boolean")?
            .iter()
            .collect::<Vec<_>>();
        let need = |v: Option<i64>, name: &str| v.ok_or_else(|| format!("{name} is null"));
        let need_s = |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} is null"));
        let names = counter_names();
        let counters = names
            .iter()
            .map(|n| ints(n))
            .collect::<Result<Vec<_>, _>>()?;
        let (node, id, ver, cver, kernel, boot, state) = (
            strs("node_name")?,
            strs("capture_id")?,
            ints("format_version")?,
            strs("credtrail_version")?,
            strs("kernel_release")?,
            strs("boot_id")?,
            strs("state")?,
        );
        let (start, end, as_of) = (
            times("start_time")?,
            times("end_time")?,
            times("as_of_time")?,
        );
        let (set, segs, evicted, kept) = (
            ints("segment_set")?,
            ints("segments")?,
            ints("segments_evicted")?,
            ints("bytes_kept")?,
        );
        let (elost, llost, head, error) = (
            ints("events_lost")?,
            ints("lifecycle_lost")?,
            strs("chain_head")?,
            strs("error")?,
        );
        let mut rows = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let mut map = serde_json::Map::new();
            for (n, c) in names.iter().zip(&counters) {
                map.insert(n.clone(), (need(c[i], n)? as u64).into());
            }
            let counters: Counters =
                serde_json::from_value(map.into()).map_err(|e| format!("counters: {e}"))?;
            let state_text = need_s(state[i].clone(), "state")?;
            let state = serde_json::from_value(serde_json::Value::String(state_text.clone()))
                .map_err(|_| format!("unknown state {state_text:?}"))?;
            rows.push(CaptureRow {
                node_name: need_s(node[i].clone(), "node_name")?,
                capture_id: need_s(id[i].clone(), "capture_id")?,
                format_version: need(ver[i], "format_version")? as u32,
                credtrail_version: need_s(cver[i].clone(), "credtrail_version")?,
                kernel_release: need_s(kernel[i].clone(), "kernel_release")?,
                boot_id: need_s(boot[i].clone(), "boot_id")?,
                state,
                start_time: need(start[i], "start_time")?,
                end_time: end[i],
                as_of_time: need(as_of[i], "as_of_time")?,
                segment_set: need(set[i], "segment_set")? as u32,
                final_row: finals[i].ok_or("final_row is null")?,
                segments: need(segs[i], "segments")? as u64,
                segments_evicted: need(evicted[i], "segments_evicted")? as u64,
                bytes_kept: need(kept[i], "bytes_kept")? as u64,
                events_lost: need(elost[i], "events_lost")? as u64,
                lifecycle_lost: need(llost[i], "lifecycle_lost")? as u64,
                chain_head: head[i].clone(),
                error: error[i].clone(),
                counters,
            });
        }
        Ok(rows)
    }
}

fn state_name(s: CaptureState) -> String {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("states serialize as strings"),
    }
}

fn schema_of(cells: &[(String, Cell)]) -> SchemaRef {
    Arc::new(Schema::new(
        cells
            .iter()
            .map(|(n, c)| Field::new(n, c.data_type(), c.nullable()))
            .collect::<Vec<_>>(),
    ))
}

/// The Parquet bytes of a table holding `rows`.
pub fn parquet_bytes(rows: &[CaptureRow]) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let schema = CaptureRow::schema();
    // A handful of rows: per-column statistics, dictionaries and
    // compression would make the footer most of the file (15 KB a row with
    // them, measured).
    let props = writer_properties(CAPTURES, &[])
        .into_builder()
        .set_statistics_enabled(EnabledStatistics::None)
        .set_dictionary_enabled(false)
        .set_compression(Compression::UNCOMPRESSED)
        .build();
    // Nor the Arrow schema (as large again): the Parquet types say it all.
    let opts = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    let mut w = ArrowWriter::try_new_with_options(Vec::new(), schema, opts)?;
    for r in rows {
        w.write(&r.to_batch())?;
    }
    w.into_inner()
}

/// Writes `part-{segment_set}.parquet` in the `captures` folder `dir` for the manifest as it
/// stands (atomically: a crash leaves no partial file under that name) and
/// returns its record, not yet listed.
/// Written durably at once, or with `job`, queued to be made durable
/// before the manifest that lists it.
pub(crate) fn write_status(
    dir: &Dir,
    m: &Manifest,
    segment_set: u32,
    final_row: bool,
    job: Option<&mut crate::durable::Job>,
) -> Result<Segment, CaptureError> {
    let row = CaptureRow::of(m, segment_set, final_row);
    let name = format!("part-{segment_set:05}.parquet");
    let bytes =
        parquet_bytes(std::slice::from_ref(&row)).map_err(|source| CaptureError::Parquet {
            path: dir.child(&name),
            source,
        })?;
    dir.replace_file(&name, &bytes, job.is_none())?;
    if let Some(job) = job {
        job.files.push((
            dir.child(&name).display().to_string(),
            dir.open_file(&name)?,
        ));
        job.dirs.push(dir.try_clone()?);
    }
    let ktime = (row.as_of_time - m.realtime_offset_ns).max(0) as u64;
    Ok(Segment {
        table: CAPTURES.to_owned(),
        file: format!("{CAPTURES}/{name}"),
        rows: 1,
        bytes: bytes.len() as u64,
        sha256: crate::integrity::sha256_hex(&bytes),
        first_ktime_ns: ktime,
        last_ktime_ns: ktime,
        recovered: false,
        evicted: false,
        chain: None,
        folded: None,
    })
}

/// Decodes the rows of a `captures` segment (bounds-checked, like every
/// segment read).
pub fn read_rows<R: parquet::file::reader::ChunkReader + 'static>(
    path: &Path,
    reader: R,
) -> Result<Vec<CaptureRow>, CaptureError> {
    let (mut reader, _) = batch_reader(path, reader, CAPTURES)?;
    let mut rows = Vec::new();
    while let Some(batch) = next_batch(path, &mut reader)? {
        rows.extend(
            CaptureRow::from_batch(&batch).map_err(|message| CaptureError::Schema {
                path: path.to_owned(),
                message: format!("columns do not match credtrail's {CAPTURES} table: {message}"),
            })?,
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_round_trips_with_every_counter_as_a_column() {
        let mut m = Manifest::new("node-a", 1_700_000_000_000_000_000, 5_000_000_123);
        m.counters.ringbuf_full = 7;
        m.counters.unexplained = 3; // left out of the manifest JSON while zero
        m.error = Some("disk full".into());
        let row = CaptureRow::of(&m, 4, true);
        let batch = row.to_batch();
        for name in counter_names() {
            assert!(batch.column_by_name(&name).is_some(), "{name}");
        }
        assert!(batch.column_by_name("unexplained").is_some());
        let back = CaptureRow::from_batch(&batch).unwrap();
        let mut want = row.clone();
        want.start_time = micros(want.start_time);
        want.as_of_time = micros(want.as_of_time);
        assert_eq!(back, vec![want]);
        assert_eq!(back[0].counters.ringbuf_full, 7);
        assert_eq!(back[0].capture_id.len(), 16);
    }
}
