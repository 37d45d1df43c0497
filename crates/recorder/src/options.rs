//! What `credtrail-record` is asked to do: the options a [`crate::session::Session`]
//! runs with, the command line turned into values.

use std::path::PathBuf;
use std::time::Duration;

use credtrail_capture::manifest::SigningKey;
use credtrail_capture::{Retention, Rotation};
use credtrail_pipeline::policy::Rules;
use credtrail_pipeline::print::PrintFormat;

use crate::autocut::CutOptions;
use crate::command::Scope;
use crate::metrics::Metrics;
use crate::redact::Redactor;

/// What to record and where.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub out: Option<PathBuf>,
    /// `-- COMMAND`: only its tree is recorded ([`record_command`]).
    pub command: Option<Scope>,
    pub duration: Option<Duration>,
    pub print: Option<PrintFormat>,
    pub rotation: Rotation,
    /// Nice value of every recorder thread (0: unchanged).
    pub nice: i32,
    pub ring_buffer_bytes: u32,
    /// The spool between the ring and the encoder: memory, then disk.
    pub spool_memory_bytes: usize,
    pub spool_disk_bytes: u64,
    /// Attach the ia32 entry hook (`--compat-syscalls`).
    pub compat_syscalls: bool,
    /// Time between sweeps for unexplained changes; zero: no sweeps.
    pub sweep_interval: Duration,
    /// Check tasks at every switch-out (`--no-switch-check` clears it).
    pub switch_check: bool,
    /// Compare subjective and objective credentials at every return to
    /// user space (`--subjective-check`).
    pub subjective_check: bool,
    pub node_name: Option<String>,
    /// `kubectl get pods -A -o json` output, for pod labels and image ids.
    pub pods_file: Option<PathBuf>,
    /// The CRI socket to ask for pod metadata (None: the first well-known
    /// one present), unless `no_cri`.
    pub cri_socket: Option<PathBuf>,
    pub no_cri: bool,
    /// Disk budget (`--max-capture-bytes`).
    pub retention: Retention,
    /// Signs every manifest written (`--sign-key`).
    pub sign_key: Option<SigningKey>,
    /// Blanks secrets in command lines before they are stored (`--redact`).
    pub redactor: Redactor,
    /// `--policy` files, compiled (no selector: every event is kept).
    pub policy: Rules,
    /// The recorder's own cuts (SIGUSR1, `--cut-on`); none without a capture.
    pub cuts: Option<CutOptions>,
    /// `--metrics-addr`: where each checkpoint's counters are published.
    pub metrics: Option<Metrics>,
}
