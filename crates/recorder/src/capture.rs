//! Capture format (v2): a directory of zstd Parquet segments plus a manifest.
//! See `docs/capture-format.md`.
//!
//! The writer keeps one open segment per table. The open segment is named
//! `part-NNNNN.parquet.open` and renamed on seal, so `events/*.parquet` only
//! ever matches complete files, whatever happened to the recorder.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as MonoInstant};

use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;
use parquet::schema::types::{ColumnPath, SchemaDescPtr};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::ArrayBuilder;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use sha2::{Digest, Sha256};

use crate::columnar::Columns;
use crate::containers::ContainerRow;
use crate::error::CaptureError;
use crate::event::Event;
use crate::fsutil::{self, Dir};
use crate::lifecycle::ProcEvent;
use crate::manifest::{CaptureState, Counters, FORMAT_VERSION, Manifest, Segment, SigningKey};
use crate::process::ProcessRow;
use crate::recover::{CHECKPOINT_SUFFIX, Checkpoint};

pub const EVENTS: &str = "events";
pub const PROCESSES: &str = "processes";
pub const LIFECYCLE: &str = "lifecycle";
pub const CONTAINERS: &str = "containers";
/// Every table of a capture. A finished capture (sealed, recovered or
/// failed) lists at least one segment of each, empty if need be, so that
/// readers of the files alone (DuckDB, Spark) find every table.
pub const TABLES: [&str; 4] = [EVENTS, LIFECYCLE, CONTAINERS, PROCESSES];

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
    const DELTA_COLUMNS: &'static [&'static str] = &["time", "ktime_ns", "seq"];
    fn overrides(opts: TracingOptions) -> TracingOptions {
        timestamps(
            opts,
            &[
                ("time", false),
                ("start_time", true),
                ("parent_start_time", true),
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
    const DELTA_COLUMNS: &'static [&'static str] = &["time", "ktime_ns", "seq"];
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

impl Table for ProcessRow {
    const NAME: &'static str = PROCESSES;
    fn ktime_ns(&self) -> u64 {
        self.snapshot_ktime_ns
    }
}

/// When to close a segment and start the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_age: Duration::from_secs(300),
            max_bytes: 256 << 20,
        }
    }
}

/// Rows are written out (a Parquet row group plus a checkpoint) at least
/// this often: the most a killed recorder can lose, with the poll interval.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Row groups per segment at most. A steady trickle of events flushes a
/// small row group every [`FLUSH_INTERVAL`], and each checkpoint rewrites
/// the footer of all of them (≈ 9 KB each for the events table): this
/// bounds that footer (and the segment) at ≈ 0.6 MB, 32 s of such a trickle.
const MAX_ROW_GROUPS: usize = 64;
/// Rows per row group at most (a storm fills one well within a second).
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows kept as Rust-side column builders before they are encoded into the
/// row group in progress: encoded pages are far smaller than builders, so
/// this bounds the recorder's memory under a storm.
const BATCH_ROWS: usize = 8 * 1024;

fn writer_properties(table: &str, delta: &[&str]) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(
                "credtrail.format_version".to_owned(),
                FORMAT_VERSION.to_string(),
            ),
            KeyValue::new("credtrail.table".to_owned(), table.to_owned()),
        ]))
        .set_created_by(format!("credtrail {}", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    for col in delta {
        let path = ColumnPath::from(*col);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// Rows not yet encoded, in a table's typed builders or serde_arrow's.
enum Builder<T> {
    Typed(Box<dyn Columns<T>>),
    Serde(ArrayBuilder),
}

impl<T: Table> Builder<T> {
    fn new(fields: &[FieldRef], path: &Path) -> Result<Self, CaptureError> {
        Ok(match T::typed_columns() {
            Some(columns) => Builder::Typed(columns),
            None => {
                Builder::Serde(ArrayBuilder::from_arrow(fields).map_err(|e| schema_err(path, e))?)
            }
        })
    }

    fn push(&mut self, row: &T, path: &Path) -> Result<(), CaptureError> {
        match self {
            Builder::Typed(c) => c.push(row),
            Builder::Serde(b) => b.push(row).map_err(|e| schema_err(path, e))?,
        }
        Ok(())
    }

    /// The rows pushed since the last call, as one batch.
    fn take_batch(
        &mut self,
        fields: &[FieldRef],
        path: &Path,
    ) -> Result<RecordBatch, CaptureError> {
        match self {
            Builder::Typed(c) => c.finish(fields).map_err(|e| CaptureError::Schema {
                path: path.to_owned(),
                message: e.to_string(),
            }),
            Builder::Serde(b) => b.to_record_batch().map_err(|e| schema_err(path, e)),
        }
    }
}

struct OpenSegment<T> {
    /// `part-NNNNN.parquet.open`, in the table's folder.
    open_name: String,
    /// For messages.
    open_path: PathBuf,
    /// `part-NNNNN.parquet`.
    final_name: String,
    writer: ArrowWriter<File>,
    builder: Builder<T>,
    /// Rows in `builder`, not yet encoded.
    buffered: usize,
    /// Rows encoded since the last flush to the file.
    unflushed: bool,
    rows: u64,
    first_ktime_ns: u64,
    last_ktime_ns: u64,
    opened: MonoInstant,
}

impl<T: Table> OpenSegment<T> {
    /// Encodes the builders' rows (columns `fields`) into the row group in
    /// progress.
    fn encode(&mut self, fields: &[FieldRef]) -> Result<(), CaptureError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let batch = self.builder.take_batch(fields, &self.open_path)?;
        self.writer
            .write(&batch)
            .map_err(|e| parquet_err(&self.open_path, e))?;
        self.rows += self.buffered as u64;
        self.buffered = 0;
        self.unflushed = true;
        Ok(())
    }
}

/// A write error keeps its I/O cause visible (ENOSPC reads as such).
fn parquet_err(path: &Path, e: parquet::errors::ParquetError) -> CaptureError {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => CaptureError::Io {
                    path: path.to_owned(),
                    op: "write",
                    source: *io,
                },
                Err(inner) => CaptureError::Parquet {
                    path: path.to_owned(),
                    source: parquet::errors::ParquetError::External(inner),
                },
            }
        }
        source => CaptureError::Parquet {
            path: path.to_owned(),
            source,
        },
    }
}

/// Writes one table's segments.
struct TableWriter<T: Table> {
    dir: Dir,
    fields: Vec<FieldRef>,
    props: WriterProperties,
    /// What a footer written at a checkpoint needs: the Parquet schema and
    /// the key-value metadata (with the Arrow schema) the real footer gets.
    schema_descr: SchemaDescPtr,
    footer_kv: Option<Vec<KeyValue>>,
    open: Option<OpenSegment<T>>,
    last_flush: MonoInstant,
    _marker: std::marker::PhantomData<fn(T)>,
}

impl<T: Table> TableWriter<T> {
    fn new(capture: &Dir) -> Result<Self, CaptureError> {
        let dir = capture.create_subdir(T::NAME)?;
        let fields = T::fields();
        let props = writer_properties(T::NAME, T::DELTA_COLUMNS);
        let schema = arrow::datatypes::Schema::new(fields.clone());
        let schema_descr = Arc::new(
            parquet::arrow::ArrowSchemaConverter::new()
                .with_coerce_types(props.coerce_types())
                .convert(&schema)
                .map_err(|source| CaptureError::Parquet {
                    path: dir.path().to_owned(),
                    source,
                })?,
        );
        let mut with_schema = props.clone();
        parquet::arrow::add_encoded_arrow_schema_to_metadata(&schema, &mut with_schema);
        Ok(TableWriter {
            dir,
            fields,
            footer_kv: with_schema.key_value_metadata().cloned(),
            props,
            schema_descr,
            open: None,
            last_flush: MonoInstant::now(),
            _marker: std::marker::PhantomData,
        })
    }

    fn open_segment(&mut self, epoch: u32) -> Result<&mut OpenSegment<T>, CaptureError> {
        if self.open.is_none() {
            let final_name = format!("part-{epoch:05}.parquet");
            let open_name = format!("{final_name}.open");
            let open_path = self.dir.child(&open_name);
            let file = self.dir.create_new(&open_name)?;
            let schema = Arc::new(arrow::datatypes::Schema::new(self.fields.clone()));
            let writer = ArrowWriter::try_new(file, schema, Some(self.props.clone()))
                .map_err(|e| parquet_err(&open_path, e))?;
            let builder = Builder::new(&self.fields, &open_path)?;
            self.open = Some(OpenSegment {
                open_name,
                open_path,
                final_name,
                writer,
                builder,
                buffered: 0,
                unflushed: false,
                rows: 0,
                first_ktime_ns: 0,
                last_ktime_ns: 0,
                opened: MonoInstant::now(),
            });
        }
        Ok(self.open.as_mut().expect("just opened"))
    }

    fn push(&mut self, epoch: u32, row: &T) -> Result<(), CaptureError> {
        let seg = self.open_segment(epoch)?;
        seg.builder.push(row, &seg.open_path)?;
        let k = row.ktime_ns();
        if seg.rows == 0 && seg.buffered == 0 {
            seg.first_ktime_ns = k;
        }
        seg.first_ktime_ns = seg.first_ktime_ns.min(k);
        seg.last_ktime_ns = seg.last_ktime_ns.max(k);
        seg.buffered += 1;
        if seg.buffered >= BATCH_ROWS {
            let seg = self.open.as_mut().expect("opened above");
            seg.encode(&self.fields)?;
        }
        Ok(())
    }

    /// Closes the row group in progress, pushes it to the kernel and writes
    /// the checkpoint that lets `recover` seal the file as it is now.
    /// `durable`: the data, then the checkpoint, reach the disk first, so a
    /// power cut or a kernel crash leaves a checkpoint whose bytes exist.
    fn flush(&mut self, durable: bool) -> Result<(), CaptureError> {
        self.last_flush = MonoInstant::now();
        let Some(seg) = self.open.as_mut() else {
            return Ok(());
        };
        seg.encode(&self.fields)?;
        if !seg.unflushed {
            return Ok(());
        }
        seg.writer
            .flush()
            .map_err(|e| parquet_err(&seg.open_path, e))?;
        // Past parquet's own buffer into the kernel: a killed recorder keeps it.
        seg.writer.sync().map_err(|source| CaptureError::Io {
            path: seg.open_path.clone(),
            op: "write",
            source,
        })?;
        if durable {
            seg.writer
                .inner()
                .sync_data()
                .map_err(|source| CaptureError::Io {
                    path: seg.open_path.clone(),
                    op: "sync",
                    source,
                })?;
        }
        seg.unflushed = false;
        let ck = Checkpoint {
            ktime_ns: crate::host::boottime_ns(),
            data_len: seg.writer.bytes_written() as u64,
            rows: seg.rows,
            first_ktime_ns: seg.first_ktime_ns,
            last_ktime_ns: seg.last_ktime_ns,
            footer: footer_bytes(
                &self.props,
                &self.schema_descr,
                &self.footer_kv,
                seg.writer.flushed_row_groups(),
            )
            .map_err(|e| parquet_err(&seg.open_path, e))?,
        };
        self.dir
            .replace_file(&checkpoint_name(&seg.open_name), &ck.encode(), durable)
    }

    fn needs_flush(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|s| s.buffered > 0 || s.unflushed)
            && self.last_flush.elapsed() >= FLUSH_INTERVAL
    }

    /// Whether the open segment holds any row (encoded or not).
    fn holds_rows(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|s| s.rows + s.buffered as u64 > 0)
    }

    fn needs_rotation(&self, rotation: &Rotation) -> bool {
        self.holds_rows()
            && self.open.as_ref().is_some_and(|s| {
                s.opened.elapsed() >= rotation.max_age
                    || s.writer.bytes_written() as u64 >= rotation.max_bytes
                    || s.writer.flushed_row_groups().len() >= MAX_ROW_GROUPS
            })
    }

    fn open_bytes(&self) -> u64 {
        self.open
            .as_ref()
            .map_or(0, |s| s.writer.bytes_written() as u64)
    }

    /// Closes the open segment (if any) and describes it for the manifest.
    fn seal(&mut self) -> Result<Option<Segment>, CaptureError> {
        // Sealing syncs the whole file itself.
        self.flush(false)?;
        let Some(seg) = self.open.take() else {
            return Ok(None);
        };
        let file = seg
            .writer
            .into_inner()
            .map_err(|e| parquet_err(&seg.open_path, e))?;
        // into_inner writes the footer; make it durable before it is listed.
        file.sync_all().map_err(|source| CaptureError::Io {
            path: seg.open_path.clone(),
            op: "sync",
            source,
        })?;
        drop(file);
        self.dir.rename(&seg.open_name, &seg.final_name)?;
        // The checkpoint stays until the manifest lists the segment: a crash
        // in between leaves `recover` what it needs to adopt the file.
        self.dir.sync()?;
        let (bytes, sha256) = hash_file(&self.dir, &seg.final_name)?;
        Ok(Some(Segment {
            table: T::NAME.to_owned(),
            file: format!("{}/{}", T::NAME, seg.final_name),
            rows: seg.rows,
            bytes,
            sha256,
            first_ktime_ns: seg.first_ktime_ns,
            last_ktime_ns: seg.last_ktime_ns,
            recovered: false,
            evicted: false,
            chain: None,
        }))
    }

    /// After a write error: drops the writer without touching the file and
    /// seals what the last checkpoint covers, as `recover` would.
    fn abandon(&mut self) -> Salvage {
        match self.open.take() {
            None => Salvage::default(),
            Some(seg) => {
                drop(seg.writer);
                crate::recover::salvage_open(&self.dir, &seg.open_name, T::NAME)
            }
        }
    }
}

/// What was made of an open segment after a crash or write error.
#[derive(Debug, Default)]
pub(crate) struct Salvage {
    pub segment: Option<Segment>,
    pub discarded: Option<crate::manifest::DiscardedSegment>,
    pub checkpoint_ktime_ns: u64,
    pub problem: Option<String>,
}

/// The sidecar holding an open segment's latest checkpoint.
pub(crate) fn checkpoint_name(open_name: &str) -> String {
    format!("{open_name}{CHECKPOINT_SUFFIX}")
}

/// The Parquet footer (metadata, its length, magic) that makes the file's
/// first `data_len` bytes, with `row_groups` flushed, a complete file.
fn footer_bytes(
    props: &WriterProperties,
    schema_descr: &SchemaDescPtr,
    kv: &Option<Vec<KeyValue>>,
    row_groups: &[RowGroupMetaData],
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let rows = row_groups.iter().map(|r| r.num_rows()).sum();
    let meta = ParquetMetaData::new(
        FileMetaData::new(
            props.writer_version().as_num(),
            rows,
            Some(props.created_by().to_owned()),
            kv.clone(),
            schema_descr.clone(),
            None,
        ),
        row_groups.to_vec(),
    );
    let mut buf = Vec::new();
    ParquetMetaDataWriter::new(&mut buf, &meta)
        .with_preserve_page_index_locations(false)
        .finish()?;
    Ok(buf)
}

fn schema_err(path: &Path, e: serde_arrow::Error) -> CaptureError {
    CaptureError::Schema {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Size and sha256 of the file `name` in `dir`.
pub fn hash_file(dir: &Dir, name: &str) -> Result<(u64, String), CaptureError> {
    hash_open_file(&dir.child(name), dir.open_file(name)?)
}

/// Size and sha256 of an open file (`path` names it in errors).
pub fn hash_open_file(path: &Path, f: File) -> Result<(u64, String), CaptureError> {
    let io = |op| {
        move |source| CaptureError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    };
    let mut r = BufReader::new(f);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(io("read"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Room kept free from the start so that a full disk still leaves space
/// for the final manifest that says what was lost.
pub(crate) const RESERVE_FILE: &str = ".reserve";
const RESERVE_BYTES: usize = 256 << 10;

/// How the capture may use the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest segments within this many bytes, deleting the oldest
    /// (a ring), instead of growing without bound.
    pub max_capture_bytes: Option<u64>,
    /// Checkpoints are written without fsync. A killed recorder still
    /// loses at most the last half second; a power cut or kernel crash can
    /// lose back to the last sealed segment. For storage where fsync is
    /// slow (measured here: 0.2 ms each, ~8 per checkpoint).
    pub no_fsync: bool,
}

/// Writes a capture directory.
pub struct CaptureWriter {
    /// The capture's folder, opened once: every file is created through it.
    root: Dir,
    manifest: Manifest,
    rotation: Rotation,
    retention: Retention,
    key: Option<SigningKey>,
    /// Segment number shared by every table: `events/part-00003.parquet`
    /// covers the same stretch of time as `lifecycle/part-00003.parquet`.
    epoch: u32,
    processes: TableWriter<ProcessRow>,
    events: TableWriter<Event>,
    lifecycle: TableWriter<ProcEvent>,
    containers: TableWriter<ContainerRow>,
    _lock: fsutil::DirLock,
}

impl CaptureWriter {
    /// Creates the capture directory (refusing anything that is not new or
    /// empty) and writes the initial manifest, state `recording`.
    pub fn create(
        dir: &Path,
        manifest: Manifest,
        rotation: Rotation,
    ) -> Result<Self, CaptureError> {
        Self::create_with(dir, manifest, rotation, Retention::default(), None)
    }

    /// [`CaptureWriter::create`] with a disk budget and a signing key (each
    /// manifest write is followed by `manifest.json.sig`).
    pub fn create_with(
        dir: &Path,
        manifest: Manifest,
        mut rotation: Rotation,
        retention: Retention,
        key: Option<SigningKey>,
    ) -> Result<Self, CaptureError> {
        let root = fsutil::create_capture_dir(dir)?;
        let lock = root.lock()?;
        if let Some(max) = retention.max_capture_bytes {
            // Eviction works in whole segments: keep several in the budget.
            rotation.max_bytes = rotation.max_bytes.min((max / 4).max(4096));
        }
        let mut manifest = manifest;
        manifest.format_version = FORMAT_VERSION;
        manifest.state = CaptureState::Recording;
        manifest.segments.clear();
        manifest.chain_head = None;
        manifest.error = None;
        manifest.recovery = None;
        // The row counts are this writer's own (a replay copy starts from
        // its source's manifest).
        let c = &mut manifest.counters;
        (c.events_written, c.lifecycle_written) = (0, 0);
        (c.events_evicted, c.lifecycle_evicted) = (0, 0);
        (c.events_lost_io, c.lifecycle_lost_io) = (0, 0);
        if let Some(max) = retention.max_capture_bytes {
            manifest
                .settings
                .insert("max_capture_bytes".into(), max.into());
        }
        if retention.no_fsync {
            manifest.settings.insert("no_fsync".into(), true.into());
        }
        {
            let mut f = root.create_new(RESERVE_FILE)?;
            std::io::Write::write_all(&mut f, &vec![0u8; RESERVE_BYTES]).map_err(|source| {
                CaptureError::Io {
                    path: root.child(RESERVE_FILE),
                    op: "write",
                    source,
                }
            })?;
        }
        manifest.write(&root, key.as_ref())?;
        Ok(CaptureWriter {
            processes: TableWriter::new(&root)?,
            events: TableWriter::new(&root)?,
            lifecycle: TableWriter::new(&root)?,
            containers: TableWriter::new(&root)?,
            root,
            manifest,
            rotation,
            retention,
            key,
            epoch: 0,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Writes a process snapshot as one sealed segment: the /proc scan at
    /// start, then the process cache whenever a new segment begins.
    pub fn write_processes(&mut self, rows: &[ProcessRow]) -> Result<(), CaptureError> {
        self.processes.open_segment(self.epoch)?;
        for row in rows {
            self.processes.push(self.epoch, row)?;
        }
        let sealed = self.processes.seal()?;
        self.list(sealed.into_iter().collect())
    }

    /// Lists sealed segments in the manifest, then drops their checkpoints.
    fn list(&mut self, sealed: Vec<Segment>) -> Result<(), CaptureError> {
        let files: Vec<String> = sealed.iter().map(|s| s.file.clone()).collect();
        self.manifest.segments.extend(sealed);
        self.manifest.write(&self.root, self.key.as_ref())?;
        for f in files {
            let (table, name) = f
                .split_once('/')
                .expect("the writer names files table/part");
            self.table_dir(table)
                .remove(&checkpoint_name(&format!("{name}.open")))?;
        }
        Ok(())
    }

    pub fn push(&mut self, event: &Event) -> Result<(), CaptureError> {
        self.events.push(self.epoch, event)?;
        self.manifest.counters.events_written += 1;
        Ok(())
    }

    /// A lifecycle record (always written, whatever else is filtered).
    pub fn push_lifecycle(&mut self, ev: &ProcEvent) -> Result<(), CaptureError> {
        self.lifecycle.push(self.epoch, ev)?;
        self.manifest.counters.lifecycle_written += 1;
        Ok(())
    }

    /// Metadata of a container seen for the first time.
    pub fn push_container(&mut self, row: &ContainerRow) -> Result<(), CaptureError> {
        self.containers.push(self.epoch, row)
    }

    /// Call regularly (e.g. after every poll): checkpoints at least every
    /// [`FLUSH_INTERVAL`] (row groups flushed, footers and manifest
    /// written, so a killed recorder loses at most that much), rotates
    /// segments by age and size (all tables together) and keeps the disk
    /// budget. Returns true when segments were sealed: the caller then
    /// writes the process snapshot that opens the next ones.
    pub fn tick(&mut self) -> Result<bool, CaptureError> {
        if self.events.needs_flush()
            || self.lifecycle.needs_flush()
            || self.containers.needs_flush()
        {
            let durable = !self.retention.no_fsync;
            // Dependencies first: an event's enrichment rests on the
            // container and lifecycle rows before it, so a crash between
            // two of these never keeps an event without them.
            self.containers.flush(durable)?;
            self.lifecycle.flush(durable)?;
            self.events.flush(durable)?;
            if durable {
                self.manifest.write(&self.root, self.key.as_ref())?;
            } else {
                self.manifest.checkpoint(&self.root, self.key.as_ref())?;
            }
        }
        let max = self.retention.max_capture_bytes;
        if let Some(max) = max {
            self.evict_to(max)?;
        }
        // Still over budget with only the newest segments left: seal the
        // open ones so that they can go next time (never empty ones).
        let over_budget = max.is_some_and(|max| self.disk_bytes() > max)
            && (self.events.holds_rows()
                || self.lifecycle.holds_rows()
                || self.containers.holds_rows());
        if over_budget
            || self.events.needs_rotation(&self.rotation)
            || self.lifecycle.needs_rotation(&self.rotation)
        {
            self.seal_all()?;
            if let Some(max) = max {
                self.evict_to(max)?;
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Bytes the capture's segments take now (sealed and open).
    fn disk_bytes(&self) -> u64 {
        self.manifest.kept_bytes()
            + self.events.open_bytes()
            + self.lifecycle.open_bytes()
            + self.containers.open_bytes()
    }

    /// Deletes the oldest whole segments (all tables of the oldest sealed
    /// epoch but container metadata, which later events still need) until
    /// the capture fits in `max` bytes or only the newest epoch is left.
    /// The manifest lists them as evicted before the files go, so a crash in
    /// between leaves files `recover` deletes, never a listed file missing.
    fn evict_to(&mut self, max: u64) -> Result<(), CaptureError> {
        self.evict_before(max, self.epoch)
    }

    /// [`Self::evict_to`], keeping every epoch from `keep` on.
    fn evict_before(&mut self, max: u64, keep: u32) -> Result<(), CaptureError> {
        let mut victims = Vec::new();
        while self.disk_bytes() > max {
            let oldest = self
                .manifest
                .segments
                .iter()
                .filter(|s| !s.evicted && s.table != CONTAINERS)
                .filter_map(|s| epoch_of(&s.file))
                .filter(|e| *e < keep)
                .min();
            let Some(oldest) = oldest else {
                break;
            };
            for seg in &mut self.manifest.segments {
                if seg.evicted || seg.table == CONTAINERS || epoch_of(&seg.file) != Some(oldest) {
                    continue;
                }
                seg.evicted = true;
                match seg.table.as_str() {
                    EVENTS => self.manifest.counters.events_evicted += seg.rows,
                    LIFECYCLE => self.manifest.counters.lifecycle_evicted += seg.rows,
                    _ => {}
                }
                tracing::info!(
                    "--max-capture-bytes: evicted {} ({} rows)",
                    seg.file,
                    seg.rows
                );
                victims.push(seg.file.clone());
            }
        }
        if victims.is_empty() {
            return Ok(());
        }
        self.manifest.write(&self.root, self.key.as_ref())?;
        for file in victims {
            let (table, name) = file
                .split_once('/')
                .expect("the writer names files table/part");
            remove_evicted(self.table_dir(table), name);
        }
        Ok(())
    }

    fn seal_all(&mut self) -> Result<(), CaptureError> {
        let sealed = [
            // In the order of `tick`'s flushes, for the same reason.
            self.containers.seal()?,
            self.lifecycle.seal()?,
            self.events.seal()?,
            // Open only when `finish` makes an empty one.
            self.processes.seal()?,
        ];
        self.epoch += 1;
        if sealed.iter().any(Option::is_some) {
            self.list(sealed.into_iter().flatten().collect())?;
        }
        Ok(())
    }

    /// Updates the kernel-side counters; the row counts are the writer's own.
    pub fn set_counters(&mut self, counters: Counters) {
        let c = &self.manifest.counters;
        self.manifest.counters = Counters {
            events_written: c.events_written,
            lifecycle_written: c.lifecycle_written,
            events_evicted: c.events_evicted,
            lifecycle_evicted: c.lifecycle_evicted,
            events_lost_io: c.events_lost_io,
            lifecycle_lost_io: c.lifecycle_lost_io,
            ..counters
        };
    }

    /// Seals the open segments and the manifest. Every table exists
    /// afterwards, even if nothing happened.
    pub fn finish(mut self, end: crate::manifest::Instant) -> Result<Manifest, CaptureError> {
        for table in missing_tables(&self.manifest) {
            match table {
                EVENTS => self.events.open_segment(self.epoch).map(drop)?,
                LIFECYCLE => self.lifecycle.open_segment(self.epoch).map(drop)?,
                CONTAINERS => self.containers.open_segment(self.epoch).map(drop)?,
                _ => self.processes.open_segment(self.epoch).map(drop)?,
            }
        }
        self.seal_all()?;
        // The last seal can take the capture over its budget (a final drain
        // writes without ticks): the budget holds for the sealed capture
        // too, the newest segments always kept.
        if let Some(max) = self.retention.max_capture_bytes {
            self.evict_before(max, self.epoch.saturating_sub(1))?;
        }
        self.manifest.end = Some(end);
        self.manifest.state = CaptureState::Sealed;
        self.release_reserve();
        self.manifest.write(&self.root, self.key.as_ref())?;
        Ok(self.manifest)
    }

    fn release_reserve(&self) {
        let _ = self.root.remove(RESERVE_FILE);
    }

    /// The folder of one of the writer's tables.
    fn table_dir(&self, table: &str) -> &Dir {
        match table {
            EVENTS => &self.events.dir,
            LIFECYCLE => &self.lifecycle.dir,
            CONTAINERS => &self.containers.dir,
            _ => &self.processes.dir,
        }
    }

    /// Ends a capture after a write error (disk full, I/O error): the open
    /// segments are sealed up to their last checkpoint (or set aside),
    /// every event that reached the writer but not a sealed segment is
    /// counted as lost, and the manifest says why recording stopped. The
    /// space reserved at start makes room for that last manifest.
    /// `delivered` is (events, lifecycle records) handed to the writer.
    pub fn fail(
        mut self,
        error: &str,
        delivered: (u64, u64),
        end: crate::manifest::Instant,
    ) -> Result<Manifest, CaptureError> {
        self.release_reserve();
        let salvaged = [
            self.events.abandon(),
            self.lifecycle.abandon(),
            self.containers.abandon(),
        ];
        for s in &salvaged {
            if let Some(p) = &s.problem {
                tracing::error!("{p}");
            }
        }
        self.manifest
            .segments
            .extend(salvaged.into_iter().filter_map(|s| s.segment));
        // Best effort on a disk that just failed: readers of the manifest
        // take a missing table as empty anyway.
        match seal_missing_tables(&self.root, &self.manifest, self.epoch + 1) {
            Ok(empty) => self.manifest.segments.extend(empty),
            Err(e) => tracing::warn!("cannot write the empty tables of the stopped capture: {e}"),
        }
        let (events, lifecycle) = (
            self.manifest.rows_in(EVENTS),
            self.manifest.rows_in(LIFECYCLE),
        );
        let c = &mut self.manifest.counters;
        c.events_written = events;
        c.lifecycle_written = lifecycle;
        c.events_lost_io = delivered.0.saturating_sub(events);
        c.lifecycle_lost_io = delivered.1.saturating_sub(lifecycle);
        self.manifest.state = CaptureState::Failed;
        self.manifest.error = Some(error.to_owned());
        self.manifest.end = Some(end);
        self.manifest.write(&self.root, self.key.as_ref())?;
        Ok(self.manifest)
    }
}

/// The tables the manifest lists no readable segment of.
fn missing_tables(manifest: &Manifest) -> impl Iterator<Item = &'static str> + '_ {
    TABLES
        .into_iter()
        .filter(|t| manifest.segments_of(t).next().is_none())
}

/// Seals an empty segment `part-{epoch}` of every table the manifest lists
/// no readable segment of (after a crash or a write error; `finish` does
/// the same with its own writers).
pub(crate) fn seal_missing_tables(
    root: &Dir,
    manifest: &Manifest,
    epoch: u32,
) -> Result<Vec<Segment>, CaptureError> {
    fn empty<T: Table>(root: &Dir, epoch: u32) -> Result<Option<Segment>, CaptureError> {
        let mut w = TableWriter::<T>::new(root)?;
        w.open_segment(epoch)?;
        w.seal()
    }
    let mut sealed = Vec::new();
    for table in missing_tables(manifest) {
        let seg = match table {
            EVENTS => empty::<Event>(root, epoch)?,
            LIFECYCLE => empty::<ProcEvent>(root, epoch)?,
            CONTAINERS => empty::<ContainerRow>(root, epoch)?,
            _ => empty::<ProcessRow>(root, epoch)?,
        };
        sealed.extend(seg);
    }
    Ok(sealed)
}

/// The first segment number no file in `tables` uses yet.
pub(crate) fn next_free_epoch<'a>(tables: impl IntoIterator<Item = &'a Dir>) -> u32 {
    tables
        .into_iter()
        .filter_map(|d| d.names().ok())
        .flatten()
        .filter_map(|name| {
            let n = name.strip_prefix("part-")?;
            n.get(..n.find('.')?)?.parse::<u32>().ok()
        })
        .max()
        .map_or(0, |e| e + 1)
}

/// Deletes the file of an evicted segment; one that cannot go is logged
/// and left for `recover` (the manifest already says it is evicted).
pub(crate) fn remove_evicted(dir: &Dir, name: &str) {
    if let Err(e) = dir.remove(name) {
        tracing::error!("cannot evict: {e}");
    }
}

/// The segment number of `table/part-NNNNN.parquet`.
fn epoch_of(file: &str) -> Option<u32> {
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
    let bad = |why: &str| {
        Err(format!(
            "manifest record {:?} (table {:?}): {why}; refusing to touch it",
            seg.file, seg.table
        ))
    };
    let Some((table, name)) = seg.file.split_once('/') else {
        return bad("not TABLE/part-N.parquet");
    };
    let Some(table) = TABLES.into_iter().find(|t| *t == table) else {
        return bad("not in a table folder of the capture");
    };
    if table != seg.table {
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

/// A capture's folders, opened once: the root and each table folder
/// present. A table folder that is a symlink is refused; every segment is
/// reached from these handles by a checked name ([`segment_location`]).
#[derive(Debug)]
pub struct CaptureFiles {
    root: Dir,
    tables: Vec<(&'static str, Dir)>,
}

impl CaptureFiles {
    pub fn open(dir: &Path) -> Result<CaptureFiles, CaptureError> {
        let root = Dir::open(dir)?;
        let mut tables = Vec::new();
        for t in TABLES {
            if root.exists(t) {
                tables.push((t, root.subdir(t)?));
            }
        }
        Ok(CaptureFiles { root, tables })
    }

    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// A table's folder, if present.
    pub fn table(&self, table: &str) -> Option<&Dir> {
        self.tables
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, d)| d)
    }

    /// The folder and name of a manifest record's file, checked.
    pub fn locate<'a>(&'a self, seg: &'a Segment) -> Result<(&'a Dir, &'a str), CaptureError> {
        let manifest_path = || self.root.child(crate::manifest::MANIFEST_FILE);
        let (table, name) = segment_location(seg).map_err(|message| CaptureError::Unsafe {
            path: manifest_path(),
            message,
        })?;
        let dir = self.table(table).ok_or_else(|| CaptureError::Io {
            path: self.root.child(table),
            op: "open the table folder of a listed segment",
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        Ok((dir, name))
    }

    /// Opens a listed segment and checks its size and sha256 against the
    /// record (the size first: nothing is hashed that is not the promised
    /// length). The file is returned at offset 0, the very bytes checked.
    pub fn open_checked(&self, seg: &Segment) -> Result<(PathBuf, File), CaptureError> {
        use std::io::Seek;
        let (dir, name) = self.locate(seg)?;
        let path = dir.child(name);
        let f = dir.open_file(name)?;
        let len = f
            .metadata()
            .map_err(|source| CaptureError::Io {
                path: path.clone(),
                op: "inspect",
                source,
            })?
            .len();
        if len != seg.bytes {
            return Err(CaptureError::Integrity {
                path,
                message: format!(
                    "is {len} bytes, the manifest says {} (truncated or altered)",
                    seg.bytes
                ),
            });
        }
        let (_, sha) = hash_open_file(
            &path,
            f.try_clone().map_err(|source| CaptureError::Io {
                path: path.clone(),
                op: "open",
                source,
            })?,
        )?;
        if sha != seg.sha256 {
            return Err(CaptureError::Integrity {
                path,
                message: format!(
                    "sha256 {sha} differs from the manifest's {} (the file was altered)",
                    seg.sha256
                ),
            });
        }
        let mut f = f;
        f.rewind().map_err(|source| CaptureError::Io {
            path: path.clone(),
            op: "read",
            source,
        })?;
        Ok((path, f))
    }

    /// Checks a listed segment's size and sha256.
    pub fn check_segment(&self, seg: &Segment) -> Result<(), CaptureError> {
        self.open_checked(seg).map(drop)
    }

    /// Refuses a manifest that lists more readable segments of a table than
    /// its folder holds files (a crafted manifest of many thousand records
    /// would otherwise make every reader work, and allocate, per record),
    /// naming the first listed file that is missing.
    pub fn check_listing(&self, m: &Manifest) -> Result<(), CaptureError> {
        for table in TABLES {
            let listed = m.segments_of(table).count();
            if listed == 0 {
                continue;
            }
            let present: std::collections::BTreeSet<String> = match self.table(table) {
                Some(d) => d
                    .names()?
                    .into_iter()
                    .filter(|n| n.ends_with(".parquet"))
                    .collect(),
                None => Default::default(),
            };
            if listed > present.len() {
                let missing = m
                    .segments_of(table)
                    .find(|s| segment_location(s).is_ok_and(|(_, n)| !present.contains(n)))
                    .map_or("", |s| s.file.as_str());
                return Err(CaptureError::Unsafe {
                    path: self.root.child(crate::manifest::MANIFEST_FILE),
                    message: format!(
                        "lists {listed} {table} segments, but {table}/ holds {} ({missing} is missing): files were removed or the manifest was crafted",
                        present.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Reads a capture directory.
#[derive(Debug, Clone)]
pub struct Capture {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub files: Arc<CaptureFiles>,
}

impl Capture {
    pub fn open(dir: &Path) -> Result<Capture, CaptureError> {
        let cap = Capture::open_unchecked(dir)?;
        cap.files.check_listing(&cap.manifest)?;
        Ok(cap)
    }

    /// [`Capture::open`] without [`CaptureFiles::check_listing`], for
    /// `--verify`, which reports it among its problems.
    pub fn open_unchecked(dir: &Path) -> Result<Capture, CaptureError> {
        let files = CaptureFiles::open(dir)?;
        let manifest = Manifest::read_in(files.root())?;
        match manifest.state {
            CaptureState::Recording => tracing::warn!(
                "{} is not sealed: its recorder is running or died; only its sealed segments are read (after a crash, run `credtrail-record recover {}`)",
                dir.display(),
                dir.display()
            ),
            CaptureState::Failed => tracing::warn!(
                "{}: recording stopped early: {}",
                dir.display(),
                manifest.error.as_deref().unwrap_or("unknown error")
            ),
            CaptureState::Recovered => {
                tracing::warn!(
                    "{} was recovered after its recorder died: what happened after its last checkpoint ({}) may be missing; at least {} events lost",
                    dir.display(),
                    manifest.end.as_ref().map_or("unknown", |e| e.time.as_str()),
                    manifest
                        .recovery
                        .as_ref()
                        .map_or(0, |r| r.events_lost_at_least)
                )
            }
            CaptureState::Sealed => {}
        }
        Ok(Capture {
            dir: dir.to_owned(),
            manifest,
            files: Arc::new(files),
        })
    }

    /// Every row of a table, segment after segment in manifest order (a
    /// table the manifest lists no segment of is empty: a capture recovered
    /// or stopped before its first row, or one written by an older build).
    /// Each segment's size and sha256 are checked against the manifest
    /// first, so a truncated or altered file is named as such, never
    /// half-read.
    pub fn read<T: Table>(&self) -> Result<Vec<T>, CaptureError> {
        self.stream().collect()
    }

    /// The rows of a table, streamed (see [`TableStream`]).
    pub fn stream<T: Table>(&self) -> TableStream<T> {
        TableStream::new(self)
    }

    /// Checks a listed segment's size and sha256.
    pub fn check_segment(&self, seg: &Segment) -> Result<(), CaptureError> {
        self.files.check_segment(seg)
    }

    pub fn events(&self) -> Result<Vec<Event>, CaptureError> {
        self.read()
    }

    pub fn processes(&self) -> Result<Vec<ProcessRow>, CaptureError> {
        self.read()
    }

    pub fn lifecycle(&self) -> Result<Vec<ProcEvent>, CaptureError> {
        self.read()
    }

    pub fn containers(&self) -> Result<Vec<ContainerRow>, CaptureError> {
        self.read()
    }
}

/// Streams a table's rows, segment after segment and record batch after
/// record batch, so memory holds one batch, not the table. Each segment's
/// checksum is verified before its rows are read, and its row count after.
pub struct TableStream<T: Table> {
    files: Arc<CaptureFiles>,
    segments: std::vec::IntoIter<Segment>,
    current: Option<(PathBuf, u64, ParquetRecordBatchReader, u64)>,
    buffered: std::vec::IntoIter<T>,
    failed: bool,
}

impl<T: Table> TableStream<T> {
    pub fn new(cap: &Capture) -> Self {
        TableStream {
            files: Arc::clone(&cap.files),
            segments: cap
                .manifest
                .segments_of(T::NAME)
                .cloned()
                .collect::<Vec<_>>()
                .into_iter(),
            current: None,
            buffered: Vec::new().into_iter(),
            failed: false,
        }
    }

    fn open(&mut self, seg: Segment) -> Result<(), CaptureError> {
        let (path, f) = self.files.open_checked(&seg)?;
        let reader = batch_reader(&path, f)?;
        self.current = Some((path, seg.rows, reader, 0));
        Ok(())
    }

    /// Loads the next batch of rows; Ok(false) at the end of the table.
    fn refill(&mut self) -> Result<bool, CaptureError> {
        loop {
            let Some((path, want, reader, seen)) = self.current.as_mut() else {
                match self.segments.next() {
                    Some(seg) => {
                        self.open(seg)?;
                        continue;
                    }
                    None => return Ok(false),
                }
            };
            match next_batch(path, reader)? {
                Some(batch) => {
                    let rows: Vec<T> = batch_rows(path, &batch)?;
                    *seen += rows.len() as u64;
                    self.buffered = rows.into_iter();
                    return Ok(true);
                }
                None => {
                    if *seen != *want {
                        return Err(CaptureError::Integrity {
                            path: path.clone(),
                            message: format!("holds {seen} rows, the manifest says {want}"),
                        });
                    }
                    self.current = None;
                }
            }
        }
    }
}

impl<T: Table> Iterator for TableStream<T> {
    type Item = Result<T, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(row) = self.buffered.next() {
                return Some(Ok(row));
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Decodes a whole Parquet file (any [`ChunkReader`]) into rows. A panic
/// inside the Parquet reader on a malformed file becomes an error.
pub fn decode_segment<T: Table, R: ChunkReader + 'static>(
    path: &Path,
    reader: R,
) -> Result<Vec<T>, CaptureError> {
    let mut reader = batch_reader(path, reader)?;
    let mut rows = Vec::new();
    while let Some(batch) = next_batch(path, &mut reader)? {
        rows.extend(batch_rows::<T>(path, &batch)?);
    }
    Ok(rows)
}

/// A record batch reader over a Parquet file. The file's footer and page
/// headers are checked against credtrail's bounds first (see
/// [`crate::bounds`]), so no decoder allocates what a crafted file asks;
/// like every step of reading, guarded against decoder panics.
pub(crate) fn batch_reader<R: ChunkReader + 'static>(
    path: &Path,
    reader: R,
) -> Result<ParquetRecordBatchReader, CaptureError> {
    crate::bounds::check(&reader).map_err(|message| CaptureError::Bounds {
        path: path.to_owned(),
        message,
    })?;
    guard(path, || {
        let perr = |source| CaptureError::Parquet {
            path: path.to_owned(),
            source,
        };
        ParquetRecordBatchReaderBuilder::try_new(reader)
            .map_err(perr)?
            .build()
            .map_err(perr)
    })
}

/// The reader's next batch; None at the end.
pub(crate) fn next_batch(
    path: &Path,
    reader: &mut ParquetRecordBatchReader,
) -> Result<Option<RecordBatch>, CaptureError> {
    guard(path, || {
        reader
            .next()
            .transpose()
            .map_err(|e| CaptureError::Parquet {
                path: path.to_owned(),
                source: e.into(),
            })
    })
}

/// A batch's rows as `T`, refusing columns that are not `T`'s table.
fn batch_rows<T: Table>(path: &Path, batch: &RecordBatch) -> Result<Vec<T>, CaptureError> {
    guard(path, || {
        if let Some(rows) = T::typed_rows(batch) {
            return Ok(rows);
        }
        serde_arrow::from_record_batch(batch).map_err(|e| CaptureError::Schema {
            path: path.to_owned(),
            message: format!("columns do not match credtrail's {} table: {e}", T::NAME),
        })
    })
}

/// Runs `f`, turning a panic in a dependency's decoder into an error: a
/// crafted file must not take the reader down.
fn guard<R>(path: &Path, f: impl FnOnce() -> Result<R, CaptureError>) -> Result<R, CaptureError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(CaptureError::Schema {
            path: path.to_owned(),
            message: "malformed Parquet: the decoder failed on it (altered or crafted file?)"
                .into(),
        })
    })
}
