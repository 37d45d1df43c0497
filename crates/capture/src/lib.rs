//! What a reader of captures needs, and nothing else: the event model
//! ([`model`]), the capture format (version [`manifest::FORMAT_VERSION`]:
//! a directory of zstd Parquet segments plus a hash-chained manifest), its
//! integrity checks and decoding bounds, the file-system helpers captures
//! are written with ([`fs`]), the host facts rows carry ([`host`]) and the
//! errors ([`CaptureError`]). No BPF, no enrichment, no terminal.
//! See `docs/capture-format.md`. Written by [`CaptureWriter`], read by
//! [`Capture`], sealed after a crash by [`recover::recover`].
//!
//! The writer keeps one open segment per table. The open segment is named
//! `part-NNNNN.parquet.open` and renamed on seal, so `events/*.parquet` only
//! ever matches complete files, whatever happened to the recorder.

pub mod bounds;
mod chain;
pub mod checkpoint;
pub mod columnar;
pub mod control;
mod counters;
pub mod cut;
mod durable;
pub mod error;
pub mod folder;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod integrity;
pub mod layout;
pub mod manifest;
pub mod model;
mod positional;
pub mod projected;
pub mod read;
pub mod recover;
pub mod retention;
pub mod segment;
pub mod sign;
pub mod status;
pub mod storage;
pub mod table;
pub mod write;

pub use error::CaptureError;
pub use integrity::{hash_file, hash_open_file};
pub use read::{Capture, CaptureFiles, Prefetched, TableStream, decode_segment};
pub use retention::Retention;
pub use segment::{FLUSH_INTERVAL, Rotation};
pub use table::{
    CAPTURES, CONTAINERS, EVENTS, LIFECYCLE, PROCESSES, TABLES, Table, USER_NAMESPACES,
    file_location, segment_location,
};
pub use write::CaptureWriter;
