//! Reading a capture: its folders opened once, segments checked against
//! the manifest (size, sha256, row count) and the decoding bounds, rows
//! streamed batch by batch.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;

use crate::error::CaptureError;
use crate::fs::Dir;
use crate::integrity::hash_open_file;
use crate::manifest::{CaptureState, Manifest, Segment};
use crate::model::{ContainerRow, Event, ProcEvent, ProcessRow, UsernsRow};
use crate::table::{TABLES, Table, segment_location};

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
            .map_err(CaptureError::io(&path, "inspect"))?
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
            f.try_clone().map_err(CaptureError::io(&path, "open"))?,
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
        f.rewind().map_err(CaptureError::io(&path, "read"))?;
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

    pub fn user_namespaces(&self) -> Result<Vec<UsernsRow>, CaptureError> {
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
    /// `T::fields()`, traced once.
    fields: Vec<FieldRef>,
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
            fields: T::fields(),
        }
    }

    fn open(&mut self, seg: Segment) -> Result<(), CaptureError> {
        let (path, f) = self.files.open_checked(&seg)?;
        let (reader, rows) = batch_reader(&path, f, T::NAME)?;
        // Before any row is decoded: a file that claims other rows than
        // the manifest lists is not the one listed.
        if rows != seg.rows {
            return Err(CaptureError::Integrity {
                path,
                message: format!("holds {rows} rows; the manifest lists {}", seg.rows),
            });
        }
        self.current = Some((path, seg.rows, reader, 0));
        Ok(())
    }

    /// The next batch, decoded and cast to the table's logical types (not
    /// yet rows); None at the end of the table.
    fn next_logical(&mut self) -> Result<Option<(PathBuf, RecordBatch)>, CaptureError> {
        loop {
            let Some((path, want, reader, seen)) = self.current.as_mut() else {
                match self.segments.next() {
                    Some(seg) => {
                        self.open(seg)?;
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            match next_batch(path, reader)? {
                Some(batch) => {
                    let batch = logical::<T>(path, &batch, &self.fields)?;
                    *seen += batch.num_rows() as u64;
                    return Ok(Some((path.clone(), batch)));
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

    /// The next batch of rows; None at the end of the table.
    fn next_rows(&mut self) -> Result<Option<Vec<T>>, CaptureError> {
        match self.next_logical()? {
            Some((path, batch)) => rows_of(&path, &batch).map(Some),
            None => Ok(None),
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
            match self.next_rows() {
                Ok(Some(rows)) => self.buffered = rows.into_iter(),
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Batches a [`Prefetched`] stream decodes ahead of its reader: enough to
/// keep both threads busy, a few MiB of rows.
const PREFETCH_BATCHES: usize = 2;

/// A [`TableStream`] whose Parquet is decoded on a thread of its own,
/// [`PREFETCH_BATCHES`] batches ahead, overlapping enrichment and printing.
/// Only the decoded batches cross: the rows are made by the caller's
/// thread, which frees them (rows made on one thread and freed on another
/// made glibc's malloc slower than the overlap saved: compact replay
/// 4.3 s -> 5.6 s; on mimalloc they saved 3% for more CPU). Same rows,
/// same order, same errors; the thread ends when the stream does or the
/// reader is dropped.
pub struct Prefetched<T> {
    /// Ok(None) marks the end: a thread that stops without saying so is
    /// an error, never a quietly shorter table.
    batches: Receiver<Result<Option<(PathBuf, RecordBatch)>, CaptureError>>,
    buffered: std::vec::IntoIter<T>,
    ended: bool,
}

impl<T: Table + Send + 'static> TableStream<T> {
    /// This stream, its Parquet decoded on its own thread.
    pub fn prefetched(mut self) -> Prefetched<T> {
        let (tx, rx) = sync_channel(PREFETCH_BATCHES);
        let worker = tx.clone();
        let decode = move || {
            loop {
                let next = self.next_logical();
                let more = matches!(next, Ok(Some(_)));
                // A send fails only when the reader is gone.
                if worker.send(next).is_err() || !more {
                    return;
                }
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name(format!("read-{}", T::NAME))
            .spawn(decode)
        {
            let _ = tx.send(Err(thread_error(T::NAME, e)));
        }
        Prefetched {
            batches: rx,
            buffered: Vec::new().into_iter(),
            ended: false,
        }
    }
}

fn thread_error(table: &str, source: std::io::Error) -> CaptureError {
    CaptureError::Io {
        path: PathBuf::from(table),
        op: "read (in a thread of its own)",
        source,
    }
}

impl<T: Table> Iterator for Prefetched<T> {
    type Item = Result<T, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.buffered.next() {
                return Some(Ok(row));
            }
            if self.ended {
                return None;
            }
            let next = self.batches.recv().unwrap_or_else(|_| {
                Err(thread_error(
                    T::NAME,
                    std::io::Error::other("the reading thread stopped early"),
                ))
            });
            match next.and_then(|b| b.map(|(path, batch)| rows_of(&path, &batch)).transpose()) {
                Ok(Some(rows)) => self.buffered = rows.into_iter(),
                Ok(None) => {
                    self.ended = true;
                    return None;
                }
                Err(e) => {
                    self.ended = true;
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
    let (mut reader, _) = batch_reader(path, reader, T::NAME)?;
    let mut rows = Vec::new();
    let fields = T::fields();
    while let Some(batch) = next_batch(path, &mut reader)? {
        rows.extend(batch_rows::<T>(path, &batch, &fields)?);
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
    table: &str,
) -> Result<(ParquetRecordBatchReader, u64), CaptureError> {
    let rows = check_bounds(path, &reader, table)?;
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
    .map(|r| (r, rows))
}

/// Checks a Parquet file against the decoding bounds of `table` (see
/// [`crate::bounds`]) before any decoder reads it; its rows.
pub(crate) fn check_bounds<R: ChunkReader>(
    path: &Path,
    reader: &R,
    table: &str,
) -> Result<u64, CaptureError> {
    let limits = crate::bounds::Limits::for_table(table);
    crate::bounds::check_with(reader, &limits).map_err(|message| CaptureError::Bounds {
        path: path.to_owned(),
        message,
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
fn batch_rows<T: Table>(
    path: &Path,
    batch: &RecordBatch,
    fields: &[FieldRef],
) -> Result<Vec<T>, CaptureError> {
    rows_of(path, &logical::<T>(path, batch, fields)?)
}

/// A stored batch cast to the table's logical types.
fn logical<T: Table>(
    path: &Path,
    batch: &RecordBatch,
    fields: &[FieldRef],
) -> Result<RecordBatch, CaptureError> {
    guard(path, || {
        crate::storage::to_logical(batch, fields).map_err(|e| CaptureError::Schema {
            path: path.to_owned(),
            message: format!("columns do not match credtrail's {} table: {e}", T::NAME),
        })
    })
}

/// A logical batch's rows.
fn rows_of<T: Table>(path: &Path, batch: &RecordBatch) -> Result<Vec<T>, CaptureError> {
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
pub(crate) fn guard<R>(
    path: &Path,
    f: impl FnOnce() -> Result<R, CaptureError>,
) -> Result<R, CaptureError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(CaptureError::Schema {
            path: path.to_owned(),
            message: "malformed Parquet: the decoder failed on it (altered or crafted file?)"
                .into(),
        })
    })
}
