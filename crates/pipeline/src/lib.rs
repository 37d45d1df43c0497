//! credtrail's pipeline: everything between a record (from the kernel or a
//! capture) and a row written, printed or kept, with no BPF, clang or
//! kernel needed.
//!
//! The data path, module by module: [`sink`] (the spine: a [`sink::Record`]
//! in, [`sink::Sink`]s out, and the stages in front of them), [`enrich`]
//! (who made each change, from a process cache of [`process`] images),
//! [`policy`] (TracingPolicy compiled for the kernel and decided again in
//! userspace), [`print`] (JSON, compact, Tetragon), [`playback`] (a
//! capture's records back through the same enrichment, policy and
//! printers) and [`unexplained`] (credential changes no record explains,
//! found offline). The live recorder (`credtrail-record`) feeds the same
//! enricher and sinks from the kernel; `credtrail-replay` and
//! `credtrail-query` read captures through [`playback`].

pub mod continuity;
pub mod enrich;
pub mod playback;
pub mod policy;
pub mod print;
pub mod process;
pub mod sink;
