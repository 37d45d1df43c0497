//! credtrail's recorder library.
//!
//! Without the `bpf` feature this is the event model, the capture format
//! (writer and reader) and the printers: everything `query` and `replay`
//! need, with no clang, libbpf or kernel. The `bpf` feature adds the decoder
//! of raw kernel records and the live recording loop.

pub mod bounds;
pub mod capture;
pub mod cli;
pub mod columnar;
pub mod containers;
pub mod enrich;
pub mod error;
pub mod event;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod lifecycle;
pub mod manifest;
pub mod output;
pub mod process;
pub mod recover;
pub mod redact;
pub mod sign;
pub mod term;
pub mod workload;

#[cfg(feature = "bpf")]
pub mod decode;
#[cfg(feature = "bpf")]
pub mod record;

pub use capture::{Capture, CaptureWriter, Rotation};
pub use error::CaptureError;
pub use event::{Creds, Event, Syscall};
pub use manifest::{Counters, Manifest};
