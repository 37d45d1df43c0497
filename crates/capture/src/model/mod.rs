//! What credtrail records, one type per table row: credential events,
//! process lifecycle, /proc snapshots, containers and user namespaces.
//! Field names are the capture's column names and the JSON keys.

pub mod container;
pub mod creds;
pub mod event;
pub mod lifecycle;
pub mod options;
pub mod process;
pub mod userns;

pub use container::{ContainerRow, PodInfo};
pub use creds::Creds;
pub use event::{Event, Syscall};
pub use lifecycle::ProcEvent;
pub use process::ProcessRow;
pub use userns::UsernsRow;

/// A wall-clock time in nanoseconds, cut to whole microseconds: what the
/// stored timestamp columns other than `time` hold, so that a row read back
/// equals the row written (rows are made with it, live and replayed).
pub fn micros(ns: i64) -> i64 {
    ns - ns.rem_euclid(1_000)
}
