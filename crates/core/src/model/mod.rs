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
