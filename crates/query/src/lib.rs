//! credtrail-query: SQL and built-in questions over captures, with polars.
//!
//! Captures are found by their `manifest.json` (a capture directory, or any
//! folder holding captures, hive layouts like `node=a/date=b/` included).
//! Each table is a lazy scan of the sealed segments the manifests list, with
//! a `capture` column, so polars pushes projections and predicates down to
//! the Parquet reader: a query touching two columns reads about two columns.

mod changes;
pub mod cli;
mod columns;
mod counts;
mod expect;
pub mod filters;
pub mod formats;
pub mod kept;
mod names;
pub mod policy_pass;
pub mod questions;
pub mod report;
pub mod tree;
pub mod unexplained;
pub mod view;
pub mod warnings;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use credtrail_capture::CaptureError;
use credtrail_capture::manifest::Counters;
use credtrail_capture::manifest::{MANIFEST_FILE, Manifest, Segment};
use credtrail_capture::{CAPTURES, Capture, CaptureFiles, EVENTS, TABLES};
use credtrail_capture::{bounds, status, storage};
pub use credtrail_ship::fetch::Prune;
use polars::chunked_array::cast::CastOptions;
use polars::prelude::*;

/// How deep a folder of captures is searched (hive layouts nest 2-3 levels).
const MAX_DEPTH: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no credtrail capture found under {} (looked for {MANIFEST_FILE} up to {MAX_DEPTH} folders deep)", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoCapture { searched: Vec<PathBuf> },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("SQL error: {message}")]
    Sql { message: String },
    #[error("unknown column {column:?}; {table} has: {}", .available.join(", "))]
    UnknownColumn {
        column: String,
        table: String,
        available: Vec<String>,
    },
    #[error("{0}")]
    Polars(#[from] PolarsError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Remote(#[from] credtrail_ship::ShipError),
}

/// A replay error (reading or enriching a capture) as a query error.
pub(crate) fn invalid(e: anyhow::Error) -> QueryError {
    QueryError::Invalid(format!("{e:#}"))
}

/// One capture found on disk.
#[derive(Debug, Clone)]
pub struct CaptureInfo {
    /// The path as found, used as the `capture` column.
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The capture's folders, opened once: polars reads each segment
    /// through these handles, by a checked name.
    pub files: Arc<CaptureFiles>,
    /// `--policy`: the events kept (None: all).
    pub policy: Option<Arc<kept::Kept>>,
    /// The `node` column: the `node=<node>` folder the capture is in (the
    /// fleet layout's partition, as Spark and DuckDB see it), else the
    /// manifest's node name.
    pub node: String,
    /// Read only for its columns (no row of it is answered): every capture
    /// was left out by --node/--since/--until, and an answer still needs
    /// its columns.
    pub schema_only: bool,
}

impl CaptureInfo {
    /// The capture as discovery opened and checked it (its manifest, and
    /// the folder handles every read goes through).
    pub fn capture(&self) -> Capture {
        Capture {
            dir: self.dir.clone(),
            manifest: self.manifest.clone(),
            files: Arc::clone(&self.files),
        }
    }

    pub fn lost(&self) -> u64 {
        self.manifest
            .counters
            .lost()
            .saturating_add(self.manifest.counters.lifecycle_lost())
    }
}

fn find_manifests(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join(MANIFEST_FILE).is_file() {
        out.push(dir.to_owned());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        // Hidden: work in progress (a cut being made, renamed when whole).
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        find_manifests(&d, depth - 1, out);
    }
}

/// How much of each segment is checked before polars reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trust {
    /// Size, sha256 against the manifest, and the decoding bounds.
    #[default]
    Verify,
    /// The decoding bounds only (`--no-verify`): faster on captures whose
    /// files are known intact; a file swapped for another capture's is read.
    BoundsOnly,
}

/// Finds every capture under `paths` (captures themselves or folders of
/// them; paths are taken literally, never as globs) and checks every
/// segment their manifests list, as `trust` says.
pub fn discover(paths: &[PathBuf], trust: Trust) -> Result<Vec<CaptureInfo>, QueryError> {
    Ok(discover_pruned(paths, trust, &Prune::default())?.0)
}

/// [`discover`], leaving out (unread but for their manifests) captures
/// whose node or start..end `prune` excludes; also returns how many.
pub fn discover_pruned(
    paths: &[PathBuf],
    trust: Trust,
    prune: &Prune,
) -> Result<(Vec<CaptureInfo>, usize), QueryError> {
    let mut dirs = Vec::new();
    for p in paths {
        find_manifests(p, MAX_DEPTH, &mut dirs);
    }
    dirs.dedup();
    if dirs.is_empty() {
        return Err(QueryError::NoCapture {
            searched: paths.to_vec(),
        });
    }
    let mut caps = Vec::new();
    let mut pruned = Vec::new();
    // Checking every segment's sha256 is the long part over many captures.
    let progress = match dirs.len() {
        1 => credtrail_cli::progress::Progress::hidden(),
        n => credtrail_cli::progress::Progress::bar("checking captures", n as u64, false),
    };
    for dir in dirs {
        progress.inc(1);
        let folder_node = folder_node(&dir);
        if !prune.keeps_folder(folder_node.as_deref()) {
            pruned.push(dir);
            continue;
        }
        let files = CaptureFiles::open(&dir)?;
        let manifest = Manifest::read_in(files.root())?;
        if !prune.keeps(folder_node.as_deref(), &manifest) {
            pruned.push(dir);
            continue;
        }
        caps.push(open_capture(dir, files, manifest, folder_node, trust)?);
    }
    let left_out = pruned.len();
    // Nothing overlaps: one capture is read all the same, for its columns
    // only, so that the answer is an empty table, as without pruning.
    if caps.is_empty()
        && let Some(dir) = pruned.pop()
    {
        let files = CaptureFiles::open(&dir)?;
        let manifest = Manifest::read_in(files.root())?;
        let node = folder_node(&dir);
        let mut c = open_capture(dir, files, manifest, node, trust)?;
        c.schema_only = true;
        caps.push(c);
    }
    Ok((caps, left_out))
}

/// The `node=<node>` folder a capture is in, if any.
fn folder_node(dir: &Path) -> Option<String> {
    dir.components()
        .rev()
        .find_map(|c| c.as_os_str().to_str()?.strip_prefix("node="))
        .map(str::to_owned)
}

/// A found capture, its segments checked as `trust` says.
fn open_capture(
    dir: PathBuf,
    files: CaptureFiles,
    manifest: Manifest,
    folder_node: Option<String>,
    trust: Trust,
) -> Result<CaptureInfo, QueryError> {
    files.check_listing(&manifest)?;
    for seg in manifest.segments.iter().filter(|s| !s.evicted) {
        check_segment(&files, seg, trust)?;
    }
    Ok(CaptureInfo {
        name: dir.display().to_string(),
        node: folder_node.unwrap_or_else(|| manifest.node_name.clone()),
        dir,
        manifest,
        files: Arc::new(files),
        policy: None,
        schema_only: false,
    })
}

/// Checks one listed segment before polars is given it.
fn check_segment(files: &CaptureFiles, seg: &Segment, trust: Trust) -> Result<(), QueryError> {
    let (path, file) = match trust {
        Trust::Verify => files.open_checked(seg)?,
        Trust::BoundsOnly => {
            let (dir, name) = files.locate(seg)?;
            (dir.child(name), dir.open_file(name)?)
        }
    };
    let limits = bounds::Limits::for_table(&seg.table);
    let rows = bounds::check_with(&file, &limits).map_err(|message| CaptureError::Bounds {
        path: path.clone(),
        message,
    })?;
    if rows != seg.rows {
        return Err(CaptureError::Integrity {
            path,
            message: format!("holds {rows} rows; the manifest lists {}", seg.rows),
        }
        .into());
    }
    Ok(())
}

/// The lazy scan of one table over every capture (None when no capture
/// lists a segment of it).
pub fn table(caps: &[CaptureInfo], name: &str) -> Result<Option<LazyFrame>, QueryError> {
    let segments: Vec<_> = segments(caps, name).collect();
    let lf = scan(&segments)?;
    if name != CAPTURES {
        return Ok(lf);
    }
    // Captures older than format 6 (or still recording) have no status
    // row on disk: theirs is made from the manifest, as the recorder would
    // have written it, so every capture has a row.
    let mut frames: Vec<LazyFrame> = lf.into_iter().collect();
    for c in answered(caps) {
        if c.manifest.segments_of(CAPTURES).next().is_none() {
            let row = status::CaptureRow::of(&c.manifest, 0, c.manifest.end.is_some());
            let bytes = status::parquet_bytes(&[row])
                .map_err(|e| QueryError::Invalid(format!("{}: {e}", c.name)))?;
            let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish()?;
            frames.push(df.lazy().with_columns([
                lit(c.name.as_str()).alias("capture"),
                lit(c.node.as_str()).alias("node"),
            ]));
        }
    }
    if frames.is_empty() {
        return Ok(None);
    }
    Ok(Some(concat(frames, UnionArgs::default())?))
}

/// The same table as several scans, each of whole segments holding about
/// `rows` rows together (a larger segment is a piece of its own).
///
/// For questions that aggregate everything: polars' streaming group-by
/// keeps state that grows with the rows it has seen when there are many
/// groups (measured: 184 MB for 1 M events, 385 MB for 3 M, 1.7 GB for
/// 30 M), so aggregating piece by piece and merging the small results keeps
/// memory bounded by the largest segment (the recorder seals one at 64 row
/// groups), not by how much is queried. Slices of a segment would not help:
/// measured, they cost time and kept the memory of the whole segment.
pub fn table_pieces(
    caps: &[CaptureInfo],
    name: &str,
    rows: u64,
) -> Result<Vec<LazyFrame>, QueryError> {
    let mut pieces = Vec::new();
    let mut piece = Vec::new();
    let mut piece_rows = 0;
    for (c, seg) in segments(caps, name) {
        if !piece.is_empty() && piece_rows + seg.rows > rows {
            pieces.extend(scan(&piece)?);
            piece.clear();
            piece_rows = 0;
        }
        piece.push((c, seg));
        piece_rows += seg.rows;
    }
    pieces.extend(scan(&piece)?);
    Ok(pieces)
}

fn segments<'a>(
    caps: &'a [CaptureInfo],
    name: &'a str,
) -> impl Iterator<Item = (&'a CaptureInfo, &'a Segment)> + 'a {
    caps.iter()
        .flat_map(move |c| c.manifest.segments_of(name).map(move |s| (c, s)))
}

/// The polars type a column of an older capture has in a format 5 one.
fn stored_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            Some(DataType::Int64)
        }
        DataType::Datetime(TimeUnit::Nanoseconds, tz) => {
            Some(DataType::Datetime(TimeUnit::Microseconds, tz.clone()))
        }
        DataType::List(inner) => stored_type(inner).map(|t| DataType::List(Box::new(t))),
        DataType::Struct(fields) if fields.iter().any(|f| stored_type(f.dtype()).is_some()) => {
            Some(DataType::Struct(
                fields
                    .iter()
                    .map(|f| {
                        let t = stored_type(f.dtype()).unwrap_or_else(|| f.dtype().clone());
                        Field::new(f.name().clone(), t)
                    })
                    .collect(),
            ))
        }
        _ => None,
    }
}

/// An older capture's table as a format 5 one stores it, so that a fleet of
/// mixed versions is one table: signed integers, microsecond timestamps,
/// `time`'s nanoseconds in `time_ns`. (A u64 past 2^63 wraps, as format 5
/// stores it.)
fn as_stored(mut lf: LazyFrame) -> Result<LazyFrame, QueryError> {
    let schema = lf.collect_schema()?;
    let mut exprs = Vec::new();
    for (name, t) in schema.iter() {
        if name.as_str() == "time" {
            exprs.push(col("time").cast(DataType::Int64).alias(storage::TIME_NS));
        }
        // Events' container_start_time was an integer (ns) before format 5.
        if name.as_str() == "container_start_time" && *t == DataType::Int64 {
            exprs.push(
                col(name.clone())
                    .cast(DataType::Datetime(
                        TimeUnit::Nanoseconds,
                        Some(TimeZone::UTC),
                    ))
                    .cast(DataType::Datetime(
                        TimeUnit::Microseconds,
                        Some(TimeZone::UTC),
                    )),
            );
            continue;
        }
        if let Some(to) = stored_type(t) {
            let opts = if matches!(t, DataType::UInt64) {
                CastOptions::Overflowing
            } else {
                CastOptions::Strict
            };
            exprs.push(col(name.clone()).cast_with_options(to, opts));
        }
    }
    Ok(if exprs.is_empty() {
        lf
    } else {
        lf.with_columns(exprs)
    })
}

/// How every segment is scanned: hive folders only locate captures (the
/// rows carry node_name and time already), and a `*` or `[` in a capture's
/// path is a character, not a pattern.
fn scan_args() -> ScanArgsParquet {
    ScanArgsParquet {
        hive_options: HiveOptions {
            enabled: Some(false),
            ..HiveOptions::default()
        },
        glob: false,
        ..ScanArgsParquet::default()
    }
}

/// The column a multi-file scan names each row's file in.
const FILE_COLUMN: &str = "__credtrail_file";

/// One lazy scan over `segments`, with the `capture` and `node` columns.
///
/// Segments stored as format 5 and later, without a policy to apply, are
/// one multi-file scan whose rows get their capture and node by a join on
/// the file: measured over 1,000 captures, a union of one scan per segment
/// made `caps` take 109 s and 23 GB. Older segments (converted to the
/// stored types) and policy-filtered ones are scans of their own.
fn scan(segments: &[(&CaptureInfo, &Segment)]) -> Result<Option<LazyFrame>, QueryError> {
    let mut frames = Vec::new();
    let mut shared = SharedScan::default();
    for (c, seg) in segments {
        let policy = c.policy.as_ref().filter(|_| seg.table == EVENTS);
        // Through the table folder's handle, by the name checked when the
        // capture was found: no path in a manifest reaches outside.
        let (dir, name) = c.files.locate(seg)?;
        let path = dir.fd_path(name).to_string_lossy().into_owned();
        if policy.is_none() && !c.schema_only && c.manifest.format_version >= storage::SINCE_FORMAT
        {
            shared.push(c, path);
            continue;
        }
        frames.push(own_scan(c, &path, policy)?);
    }
    if let Some(joined) = shared.scan()? {
        frames.insert(0, joined);
    }
    if frames.is_empty() {
        return Ok(None);
    }
    let events = segments.first().is_some_and(|(_, s)| s.table == EVENTS);
    let lf = if frames.len() == 1 {
        frames.pop().expect("one frame")
    } else {
        // Diagonal: captures of older formats lack the newer columns, which
        // read as null, so a fleet of mixed versions is one table.
        let union = UnionArgs {
            diagonal: true,
            ..UnionArgs::default()
        };
        concat(frames, union)?
    };
    Ok(Some(if events { with_folded(lf)? } else { lf }))
}

/// A segment scanned on its own (older format, capture read for its
/// schema only, or a policy to apply), with its `capture` and `node`.
fn own_scan(
    c: &CaptureInfo,
    path: &str,
    policy: Option<&Arc<kept::Kept>>,
) -> Result<LazyFrame, QueryError> {
    let mut lf = LazyFrame::scan_parquet(PlRefPath::new(path), scan_args())?;
    if c.manifest.format_version < storage::SINCE_FORMAT {
        lf = as_stored(lf)?;
    }
    if c.schema_only {
        lf = lf.limit(0);
    }
    let lf = lf.with_columns([
        lit(c.name.as_str()).alias("capture"),
        lit(c.node.as_str()).alias("node"),
    ]);
    Ok(match policy {
        Some(kept) => kept.apply(lf),
        None => lf,
    })
}

/// The segments read as one multi-file scan, and each file's capture and
/// node.
#[derive(Default)]
struct SharedScan {
    paths: Vec<PlRefPath>,
    files: Vec<String>,
    captures: Vec<String>,
    nodes: Vec<String>,
}

impl SharedScan {
    fn push(&mut self, c: &CaptureInfo, path: String) {
        self.paths.push(PlRefPath::new(path.as_str()));
        self.files.push(path);
        self.captures.push(c.name.clone());
        self.nodes.push(c.node.clone());
    }

    /// The scan, its rows given their capture and node by a join on the
    /// file; None when no segment is in it.
    fn scan(self) -> Result<Option<LazyFrame>, QueryError> {
        if self.paths.is_empty() {
            return Ok(None);
        }
        let args = ScanArgsParquet {
            include_file_paths: Some(FILE_COLUMN.into()),
            allow_missing_columns: true,
            ..scan_args()
        };
        let lf = LazyFrame::scan_parquet_files(self.paths.into_iter().collect(), args)?;
        let which = DataFrame::new_infer_height(vec![
            Column::new(FILE_COLUMN.into(), self.files),
            Column::new("capture".into(), self.captures),
            Column::new("node".into(), self.nodes),
        ])?;
        let joined = lf
            .join(
                which.lazy(),
                [col(FILE_COLUMN)],
                [col(FILE_COLUMN)],
                JoinArgs {
                    maintain_order: MaintainOrderJoin::Left,
                    ..JoinArgs::new(JoinType::Left)
                },
            )
            .drop(cols([FILE_COLUMN]));
        Ok(Some(joined))
    }
}

/// `events` with the folded calls' columns, null where no capture has them.
fn with_folded(mut lf: LazyFrame) -> Result<LazyFrame, QueryError> {
    // Rows of folded calls came with format 9: before, every row was one call.
    if !lf.collect_schema()?.contains(REPEAT_COUNT) {
        lf = lf.with_columns([
            lit(NULL).cast(DataType::UInt64).alias(REPEAT_COUNT),
            lit(NULL)
                .cast(DataType::Datetime(
                    TimeUnit::Microseconds,
                    Some(TimeZone::UTC),
                ))
                .alias("last_time"),
        ]);
    }
    Ok(lf)
}

/// The column of a folded row's call count (null: one call).
pub const REPEAT_COUNT: &str = "repeat_count";

/// The calls an `events` row stands for: a folded row's `repeat_count`,
/// else 1. Questions count calls with this, never rows.
pub fn calls_expr() -> Expr {
    col(REPEAT_COUNT).fill_null(lit(1u64))
}

/// Column names of a table (from the first segment's schema).
pub fn columns(caps: &[CaptureInfo], name: &str) -> Result<Vec<String>, QueryError> {
    match table(caps, name)? {
        Some(mut lf) => Ok(lf
            .collect_schema()?
            .iter_names()
            .map(|n| n.to_string())
            .collect()),
        None => Ok(Vec::new()),
    }
}

/// polars SQL's table functions, which read any file (or URL) named.
const FILE_FUNCTIONS: [&str; 4] = ["read_csv", "read_parquet", "read_json", "read_ipc"];

/// Refuses SQL that calls a table function reading files: queries over a
/// capture read the capture. Tokenized, so the names inside strings and
/// comments do not count.
pub fn refuse_file_functions(query: &str) -> Result<(), QueryError> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = sqlparser::dialect::GenericDialect {};
    let tokens = Tokenizer::new(&dialect, query)
        .tokenize()
        .map_err(|e| QueryError::Sql {
            message: e.to_string(),
        })?;
    let mut significant = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .peekable();
    while let Some(t) = significant.next() {
        if let Token::Word(w) = t
            && FILE_FUNCTIONS.contains(&w.value.to_lowercase().as_str())
            && significant.peek() == Some(&&Token::LParen)
        {
            return Err(QueryError::Invalid(format!(
                "--sql calls {}(), which reads files outside the captures; add --sql-file-access to allow it",
                w.value
            )));
        }
    }
    Ok(())
}

/// Runs SQL over the capture's tables (`TABLES`).
pub fn sql(caps: &[CaptureInfo], query: &str) -> Result<DataFrame, QueryError> {
    let mut ctx = polars::sql::SQLContext::new();
    for t in TABLES {
        if let Some(lf) = table(caps, t)? {
            ctx.register(t, lf);
        }
    }
    let lf = ctx.execute(query).map_err(|e| sql_error(caps, query, e))?;
    lf.collect_streaming()
        .map_err(|e| sql_error(caps, query, e))
}

/// Turns polars' errors into the ones users can act on: the parser's
/// message (with its position), or the columns of the table they queried.
fn sql_error(caps: &[CaptureInfo], query: &str, e: PolarsError) -> QueryError {
    if let PolarsError::ColumnNotFound(msg) = &e {
        let column = msg.split('"').nth(1).unwrap_or(msg.as_ref()).to_owned();
        let lower = query.to_lowercase();
        let table = TABLES
            .iter()
            .find(|t| {
                lower
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == **t)
            })
            .copied()
            .unwrap_or(EVENTS);
        let available = columns(caps, table).unwrap_or_default();
        return QueryError::UnknownColumn {
            column,
            table: table.to_owned(),
            available,
        };
    }
    let text = e.to_string();
    match e {
        PolarsError::SQLSyntax(_) | PolarsError::SQLInterface(_) => {
            QueryError::Sql { message: text }
        }
        other => QueryError::Polars(other),
    }
}

/// Runs queries on polars' streaming engine: measured here 1.5× faster than
/// the in-memory engine on 10 M events, with a third of the memory.
pub trait Streaming {
    fn collect_streaming(self) -> PolarsResult<DataFrame>;
}

impl Streaming for LazyFrame {
    fn collect_streaming(self) -> PolarsResult<DataFrame> {
        // Only sink plans yield several results; these queries never sink.
        Ok(self.collect_with_engine(Engine::Streaming)?.unwrap_single())
    }
}

/// The captures whose rows are answered (not those read only for their
/// columns).
pub fn answered(caps: &[CaptureInfo]) -> impl Iterator<Item = &CaptureInfo> {
    caps.iter().filter(|c| !c.schema_only)
}

/// Captures that lost events, for the warning every answer carries.
pub fn lossy(caps: &[CaptureInfo]) -> Vec<(&CaptureInfo, &Counters)> {
    answered(caps)
        .filter(|c| c.lost() > 0)
        .map(|c| (c, &c.manifest.counters))
        .collect()
}
