//! One table's segments as they are written: rows buffered in typed
//! builders, encoded into row groups, flushed with a checkpoint every
//! [`FLUSH_INTERVAL`], sealed into a complete Parquet file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as MonoInstant};

use arrow::datatypes::{FieldRef, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::{ColumnPath, SchemaDescPtr};
use serde_arrow::ArrayBuilder;

use crate::checkpoint::{Checkpoint, Salvage, checkpoint_name, live_checkpoint_name, salvage_open};
use crate::columnar::Columns;
use crate::durable::Job;
use crate::error::CaptureError;
use crate::fs::Dir;
use crate::integrity::hash_file;
use crate::manifest::{FORMAT_VERSION, Segment};
use crate::storage;
use crate::table::{Table, schema_err};

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

pub(crate) fn writer_properties(table: &str, delta: &[&str]) -> WriterProperties {
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
    fn encode(&mut self, fields: &[FieldRef], stored: &SchemaRef) -> Result<(), CaptureError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let batch = self.builder.take_batch(fields, &self.open_path)?;
        let batch = storage::to_stored(&batch, stored).map_err(|e| CaptureError::Schema {
            path: self.open_path.clone(),
            message: e.to_string(),
        })?;
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
pub(crate) struct TableWriter<T: Table> {
    pub(crate) dir: Dir,
    fields: Vec<FieldRef>,
    /// The columns as stored (see [`storage`]).
    stored: SchemaRef,
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
    pub(crate) fn new(capture: &Dir) -> Result<Self, CaptureError> {
        let dir = capture.create_subdir(T::NAME)?;
        let fields = T::fields();
        let props = writer_properties(T::NAME, T::DELTA_COLUMNS);
        let stored = storage::stored_schema(&fields);
        let schema = stored.as_ref();
        let schema_descr = Arc::new(
            parquet::arrow::ArrowSchemaConverter::new()
                .with_coerce_types(props.coerce_types())
                .convert(schema)
                .map_err(|source| CaptureError::Parquet {
                    path: dir.path().to_owned(),
                    source,
                })?,
        );
        let mut with_schema = props.clone();
        parquet::arrow::add_encoded_arrow_schema_to_metadata(schema, &mut with_schema);
        Ok(TableWriter {
            dir,
            fields,
            stored: Arc::clone(&stored),
            footer_kv: with_schema.key_value_metadata().cloned(),
            props,
            schema_descr,
            open: None,
            last_flush: MonoInstant::now(),
            _marker: std::marker::PhantomData,
        })
    }

    /// Opens segment `epoch` unless one is open (an empty one, if no row
    /// follows before it is sealed).
    pub(crate) fn start_segment(&mut self, epoch: u32) -> Result<(), CaptureError> {
        self.open_segment(epoch).map(drop)
    }

    fn open_segment(&mut self, epoch: u32) -> Result<&mut OpenSegment<T>, CaptureError> {
        if self.open.is_none() {
            let final_name = format!("part-{epoch:05}.parquet");
            let open_name = format!("{final_name}.open");
            let open_path = self.dir.child(&open_name);
            let file = self.dir.create_new(&open_name)?;
            let writer =
                ArrowWriter::try_new(file, Arc::clone(&self.stored), Some(self.props.clone()))
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

    pub(crate) fn push(&mut self, epoch: u32, row: &T) -> Result<(), CaptureError> {
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
            seg.encode(&self.fields, &self.stored)?;
        }
        Ok(())
    }

    /// Closes the row group in progress, pushes it to the kernel and writes
    /// the checkpoint that lets `recover` seal the file as it is now: its
    /// live copy at once (a killed recorder keeps it), its durable copy
    /// queued in `job` behind the data it covers (see `durable`).
    pub(crate) fn flush(&mut self, job: &mut Job) -> Result<(), CaptureError> {
        self.last_flush = MonoInstant::now();
        let Some(seg) = self.open.as_mut() else {
            return Ok(());
        };
        seg.encode(&self.fields, &self.stored)?;
        if !seg.unflushed {
            return Ok(());
        }
        seg.writer
            .flush()
            .map_err(|e| parquet_err(&seg.open_path, e))?;
        // Past parquet's own buffer into the kernel: a killed recorder keeps it.
        seg.writer
            .sync()
            .map_err(CaptureError::io(&seg.open_path, "write"))?;
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
        }
        .encode();
        self.dir
            .replace_file(&live_checkpoint_name(&seg.open_name), &ck, false)?;
        let data = seg
            .writer
            .inner()
            .try_clone()
            .map_err(CaptureError::io(&seg.open_path, "open"))?;
        job.files.push((seg.open_path.display().to_string(), data));
        job.checkpoints
            .push((self.dir.try_clone()?, checkpoint_name(&seg.open_name), ck));
        Ok(())
    }

    pub(crate) fn needs_flush(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|s| s.buffered > 0 || s.unflushed)
            && self.last_flush.elapsed() >= FLUSH_INTERVAL
    }

    /// Whether the open segment holds any row (encoded or not).
    pub(crate) fn holds_rows(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|s| s.rows + s.buffered as u64 > 0)
    }

    pub(crate) fn needs_rotation(&self, rotation: &Rotation) -> bool {
        self.holds_rows()
            && self.open.as_ref().is_some_and(|s| {
                s.opened.elapsed() >= rotation.max_age
                    || s.writer.bytes_written() as u64 >= rotation.max_bytes
                    || s.writer.flushed_row_groups().len() >= MAX_ROW_GROUPS
            })
    }

    pub(crate) fn open_bytes(&self) -> u64 {
        self.open
            .as_ref()
            .map_or(0, |s| s.writer.bytes_written() as u64)
    }

    /// Closes the open segment (if any) and describes it for the manifest.
    /// Its data and the rename are made durable by `job` before the
    /// manifest that lists it is written.
    pub(crate) fn seal(&mut self, job: &mut Job) -> Result<Option<Segment>, CaptureError> {
        self.flush(job)?;
        let Some(seg) = self.open.take() else {
            return Ok(None);
        };
        // into_inner writes the footer.
        let file = seg
            .writer
            .into_inner()
            .map_err(|e| parquet_err(&seg.open_path, e))?;
        self.dir.rename(&seg.open_name, &seg.final_name)?;
        // The checkpoints stay until the manifest lists the segment: a crash
        // in between leaves `recover` what it needs to adopt the file.
        job.files
            .push((self.dir.child(&seg.final_name).display().to_string(), file));
        job.dirs.push(self.dir.try_clone()?);
        job.always = true;
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
            folded: None,
        }))
    }

    /// After a write error: drops the writer without touching the file and
    /// seals what the last checkpoint covers, as `recover` would.
    pub(crate) fn abandon(&mut self) -> Salvage {
        match self.open.take() {
            None => Salvage::default(),
            Some(seg) => {
                drop(seg.writer);
                salvage_open(&self.dir, &seg.open_name, T::NAME)
            }
        }
    }
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
