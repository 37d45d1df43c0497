//! Printers shared by the live recorder and every reader of captures: the
//! JSON of the columns, a compact line for people, Tetragon's JSON.

mod compact;
pub mod inspect;
mod json;
mod json_writer;
mod stable;
mod tetragon;

use std::io::{self, Write};

use credtrail_capture::model::Event;

pub use compact::{call, compact};
pub use json::write_json;
pub use stable::{MAX_STABLE_EVENTS, Stable, StableError};
pub use tetragon::{DEFAULT_POLICY, tetragon, tetragon_compact, write_tetragon};

/// Output formats for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    /// One flat JSON object per line, keys equal to the capture's column names.
    Json,
    /// One human-readable line per event.
    Compact,
    /// Tetragon's JSON (as `tetra getevents -o json`): `process_kprobe`,
    /// `process_exec` for exec, `process_tracepoint` for an io_uring
    /// request, plus the credentials after the change.
    Tetragon,
    /// Tetragon's compact line (as `tetra getevents -o compact`).
    TetragonCompact,
}

/// Writes one event in `format`, newline-terminated.
pub fn print_event(out: &mut impl Write, format: PrintFormat, ev: &Event) -> io::Result<()> {
    match format {
        PrintFormat::Json => {
            write_json(out, ev)?;
            out.write_all(b"\n")
        }
        PrintFormat::Compact => {
            thread_local! {
                /// One line's buffer, kept between events.
                static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
            }
            LINE.with(|line| {
                let mut line = line.borrow_mut();
                line.clear();
                compact::write_compact(&mut line, ev);
                // Names and arguments are the caller's choice: escapes stay text.
                out.write_all(credtrail_cli::term::safe(&line).as_bytes())?;
                out.write_all(b"\n")
            })
        }
        PrintFormat::Tetragon => {
            write_tetragon(out, ev)?;
            out.write_all(b"\n")
        }
        PrintFormat::TetragonCompact => writeln!(out, "{}", tetragon_compact(ev)),
    }
}
