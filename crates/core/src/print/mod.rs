//! Printers shared by the live recorder and every reader of captures: the
//! JSON of the columns, a compact line for people, Tetragon's JSON.

mod compact;
mod json;
mod tetragon;

use std::io::{self, Write};

use crate::model::Event;

pub use compact::compact;
pub use json::write_json;
pub use tetragon::tetragon;

/// Output formats for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    /// One flat JSON object per line, keys equal to the capture's column names.
    Json,
    /// One human-readable line per event.
    Compact,
    /// Tetragon `process_kprobe` JSON (as `tetra getevents -o json`), plus
    /// the return value and the credentials before and after.
    Tetragon,
}

/// Writes one event in `format`, newline-terminated.
pub fn print_event(out: &mut impl Write, format: PrintFormat, ev: &Event) -> io::Result<()> {
    match format {
        PrintFormat::Json => {
            write_json(out, ev)?;
            out.write_all(b"\n")
        }
        PrintFormat::Compact => writeln!(out, "{}", compact(ev)),
        PrintFormat::Tetragon => {
            serde_json::to_writer(&mut *out, &tetragon(ev)).map_err(io::Error::other)?;
            out.write_all(b"\n")
        }
    }
}
