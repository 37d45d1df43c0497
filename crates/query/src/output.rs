//! Answers as a terminal table, or in formats other tools read.

use std::io::Write;
use std::path::Path;

use polars::prelude::*;

use crate::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table that fits the terminal width (long cells and middle columns are elided).
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A Parquet file (needs --out).
    Parquet,
}

/// Writes `df` to `out` (stdout) or to the file `to`.
pub fn write(
    df: &mut DataFrame,
    format: Format,
    to: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    let mut file;
    let w: &mut dyn Write = match to {
        Some(path) => {
            file = std::fs::File::create(path).map_err(|e| {
                QueryError::Invalid(format!("cannot create {}: {e}", path.display()))
            })?;
            &mut file
        }
        None if format == Format::Parquet => {
            return Err(QueryError::Invalid(
                "--format parquet writes a file: add --out FILE".into(),
            ));
        }
        None => out,
    };
    match format {
        Format::Table => {
            writeln!(w, "{df}").map_err(io)?;
        }
        Format::Csv => CsvWriter::new(w).finish(df).map_err(nested(df))?,
        Format::Json => {
            JsonWriter::new(&mut *w)
                .with_json_format(JsonFormat::Json)
                .finish(df)?;
            writeln!(w).map_err(io)?;
        }
        Format::Ndjson => JsonWriter::new(w)
            .with_json_format(JsonFormat::JsonLines)
            .finish(df)?,
        Format::Parquet => {
            ParquetWriter::new(w)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(df)?;
        }
    }
    Ok(())
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

/// Terminal width, for the table format.
pub fn terminal_width() -> usize {
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return w;
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid pointer.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        120
    }
}
