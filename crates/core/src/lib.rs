//! credtrail's core: everything between the kernel's records and a person
//! or a query, with no BPF, clang or kernel needed.
//!
//! The data path, folder by folder: [`model`] (what a row is), [`enrich`]
//! (who made each change, from a process cache), [`capture`] (the Parquet
//! capture: write, read, check, recover), [`print`] (JSON, compact,
//! Tetragon), [`replay`] (a capture back through the same enrichment
//! and printers), and [`unexplained`] (credential changes no record
//! explains, found offline). The live recorder (`credtrail-record`) feeds the same
//! enricher and sink from the kernel; `credtrail-replay` and
//! `credtrail-query` read captures through [`replay`] and [`capture`].

pub mod budget;
pub mod capture;
pub mod enrich;
pub mod error;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod model;
pub mod policy;
pub mod print;
pub mod progress;
pub mod replay;
pub mod sink;
pub mod term;
pub mod unexplained;

pub use error::CaptureError;
