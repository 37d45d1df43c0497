//! `credtrail-record`: the kernel's credential records, live.
//!
//! bpf (`credtrail-recorder-bpf`: programs, ring buffer) → [`drain`] (a
//! thread copying records into a bounded spool) → [`decode`] (raw records
//! to rows) → `credtrail_pipeline::enrich` (who made each change) →
//! `credtrail_pipeline::sink` (capture writer and printer). [`record`] runs
//! that loop in a [`session`]; [`pods`] (with [`cri`]) and [`procfs`] are the live node's sources of pod
//! metadata and of the process table at start; [`privileges`] drops what
//! the recorder no longer needs once its hooks are attached; [`flight`]
//! cuts a running capture's last minutes and reports on its recorder,
//! [`autocut`] makes the recorder's own cuts (SIGUSR1, `--cut-on`),
//! [`watch`] notes what passes to the sink and [`metrics`] serves it;
//! [`command`] starts the one command whose tree `-- COMMAND` records.

pub mod autocut;
pub mod cli;
pub mod command;
pub mod commands;
pub mod cri;
pub mod decode;
pub mod drain;
pub mod flight;
#[doc(hidden)]
pub mod fuzzing;
pub mod manifest;
pub mod metrics;
pub mod options;
pub mod pods;
pub mod policy_map;
pub mod privileges;
pub mod procfs;
pub mod record;
pub mod redact;
pub mod session;
pub mod watch;
