//! Answers in formats other tools read (CSV, JSON, NDJSON, Parquet), and
//! where any answer goes: `--out FILE` or stdout. Tables for people are
//! `view.rs`.

use std::io::Write;
use std::path::Path;

use credtrail_capture::fs::Dir;
use credtrail_cli::term::{JsonEscape, safe};
use polars::prelude::*;

use crate::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people: each question's answer columns, fitted to the
    /// terminal (values shortened, the least important columns left out).
    Table,
    /// The table with every column and whole values (`-o wide`).
    Wide,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A Parquet file (needs --out).
    Parquet,
}

/// Writes `df` to `out` (stdout) or to the file `to`, in a format other
/// tools read (tables: `view::render`, then [`write_text`]).
pub fn write(
    df: &mut DataFrame,
    format: Format,
    to: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    match to {
        Some(path) => {
            let mut f = AnswerFile::create(path)?;
            write_as(df, format, &mut f.file)?;
            f.commit()
        }
        None if format == Format::Parquet => Err(QueryError::Invalid(
            "--format parquet writes a file: add --out FILE".into(),
        )),
        None => write_as(df, format, out),
    }
}

/// Writes a rendered table to `out` (stdout) or to the file `to`.
pub fn write_text(text: &str, to: Option<&Path>, out: &mut dyn Write) -> Result<(), QueryError> {
    match to {
        Some(path) => write_file(path, text.as_bytes()),
        None => out.write_all(text.as_bytes()).map_err(io),
    }
}

/// Writes `bytes` to the file `path`, as `--out` writes every answer.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), QueryError> {
    let mut f = AnswerFile::create(path)?;
    f.file.write_all(bytes).map_err(io)?;
    f.commit()
}

fn write_as(df: &mut DataFrame, format: Format, w: &mut dyn Write) -> Result<(), QueryError> {
    match format {
        // Rendered by view::render and written by write_text.
        Format::Table | Format::Wide => {
            return Err(QueryError::Invalid(
                "a table is rendered by view::render".into(),
            ));
        }
        // Strings from a capture, escaped as the tables escape them: a CSV
        // at a terminal shows a binary name's escape sequences and hidden
        // characters, never acts on them.
        Format::Csv => CsvWriter::new(w)
            .finish(&mut escaped(df)?)
            .map_err(nested(df))?,
        // Exact data, every hidden character as JSON's own \u escape.
        Format::Json => {
            let mut w = JsonEscape::new(&mut *w);
            JsonWriter::new(&mut w)
                .with_json_format(JsonFormat::Json)
                .finish(df)?;
            writeln!(w).map_err(io)?;
            w.flush().map_err(io)?;
        }
        Format::Ndjson => {
            let mut w = JsonEscape::new(&mut *w);
            JsonWriter::new(&mut w)
                .with_json_format(JsonFormat::JsonLines)
                .finish(df)?;
            w.flush().map_err(io)?;
        }
        Format::Parquet => {
            ParquetWriter::new(w)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(df)?;
        }
    }
    Ok(())
}

/// `df` with every string cell and column name passed through `safe`.
fn escaped(df: &DataFrame) -> Result<DataFrame, QueryError> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.columns() {
        let name = safe(c.name().as_str()).into_owned();
        let c = match c.dtype() {
            DataType::String => c.str()?.apply_values(safe).into_column(),
            _ => c.clone(),
        };
        columns.push(c.with_name(name.into()));
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

/// `--out FILE`: written as a new 0600 temp file beside it, then renamed
/// over it, so a symlink planted at FILE is replaced, never followed, and
/// a failed write leaves the old file.
struct AnswerFile {
    dir: Dir,
    tmp: String,
    name: String,
    file: std::fs::File,
}

impl AnswerFile {
    fn create(path: &Path) -> Result<AnswerFile, QueryError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                QueryError::Invalid(format!("--out {}: not a file name", path.display()))
            })?
            .to_owned();
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = Dir::open(parent.unwrap_or(Path::new(".")))?;
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        dir.remove(&tmp)?;
        let file = dir.create_new(&tmp)?;
        Ok(AnswerFile {
            dir,
            tmp,
            name,
            file,
        })
    }

    fn commit(self) -> Result<(), QueryError> {
        self.file.sync_all().map_err(io)?;
        self.dir.rename_over(&self.tmp, &self.name)?;
        Ok(())
    }
}

impl Drop for AnswerFile {
    fn drop(&mut self) {
        // Gone after a successful rename; after a failure, not left behind.
        let _ = self.dir.remove(&self.tmp);
    }
}

fn io(e: std::io::Error) -> QueryError {
    QueryError::Polars(e.into())
}

/// CSV has no lists: say which column and what to use instead.
fn nested(df: &DataFrame) -> impl FnOnce(PolarsError) -> QueryError + '_ {
    move |e| {
        let lists: Vec<String> = df
            .columns()
            .iter()
            .filter(|c| matches!(c.dtype(), DataType::List(_)))
            .map(|c| c.name().to_string())
            .collect();
        if lists.is_empty() {
            QueryError::Polars(e)
        } else {
            QueryError::Invalid(format!(
                "CSV cannot hold the list column(s) {}; use --format json or ndjson, or select other columns",
                lists.join(", ")
            ))
        }
    }
}

/// The terminal's width: `$COLUMNS`, else the window's when stdout is a
/// terminal.
pub fn terminal_width(is_terminal: bool) -> Option<usize> {
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(w);
    }
    if !is_terminal {
        return None;
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid pointer.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}
