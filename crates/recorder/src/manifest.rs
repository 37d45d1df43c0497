//! `DIR/manifest.json`: what a capture holds and how complete it is.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::CaptureError;
use crate::fsutil;

/// The capture format this build writes. Readers accept every version up to it.
pub const FORMAT_VERSION: u32 = 1;
/// Every format version this build reads.
pub const READABLE_VERSIONS: std::ops::RangeInclusive<u32> = 1..=FORMAT_VERSION;
/// Marks a directory as a credtrail capture.
pub const FORMAT_NAME: &str = "credtrail-capture";
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureState {
    /// The recorder is (or was, if it crashed) still writing.
    Recording,
    /// The recorder finished cleanly: every segment is listed and complete.
    Sealed,
}

/// An instant, as wall-clock text and as the kernel's boot clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instant {
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    /// CLOCK_BOOTTIME, ns.
    pub ktime_ns: u64,
}

/// Loss and bookkeeping counters. Every path that can lose an event has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Event rows written to `events/` segments.
    pub events_written: u64,
    /// Calls the kernel programs completed (enter and exit both seen).
    pub kernel_events: u64,
    /// Lost: the ring buffer was full (kernel side, summed over CPUs).
    pub ringbuf_full: u64,
    /// Lost: the enter hook could not remember the call (in-flight map full).
    pub enter_store_failures: u64,
    /// Exits without a remembered enter: calls already under way when the
    /// hooks attached, or whose enter store failed (counted above too).
    pub exit_without_enter: u64,
    /// Lost: ring buffer records userspace could not decode.
    pub decode_errors: u64,
    /// Lifecycle rows written to `lifecycle/` segments.
    pub lifecycle_written: u64,
    /// Lifecycle records the kernel produced.
    pub kernel_lifecycle: u64,
    /// Lost: lifecycle records dropped because the ring buffer was full.
    pub lifecycle_ringbuf_full: u64,
    /// Execs whose pre-exec credentials were not stashed (exec already under
    /// way at start): such an exec cannot yield an `execve` credential event.
    pub exec_without_stash: u64,
}

impl Counters {
    /// Events known to be lost.
    pub fn lost(&self) -> u64 {
        self.ringbuf_full + self.enter_store_failures + self.decode_errors
    }

    /// Lifecycle records known to be lost.
    pub fn lifecycle_lost(&self) -> u64 {
        self.lifecycle_ringbuf_full
    }
}

/// One sealed Parquet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// `events` or `processes`.
    pub table: String,
    /// Path relative to the capture directory.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// Boot-clock range of the rows (events only; 0 when empty).
    pub first_ktime_ns: u64,
    pub last_ktime_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    pub format_version: u32,
    pub credtrail_version: String,
    pub state: CaptureState,
    pub node_name: String,
    pub kernel_release: String,
    pub boot_id: String,
    /// CLOCK_REALTIME − CLOCK_BOOTTIME at start, ns: `time = ktime_ns + this`.
    pub realtime_offset_ns: i64,
    pub start: Instant,
    pub end: Option<Instant>,
    /// Tracepoints attached, e.g. `syscalls/sys_enter_setuid`.
    pub hooks: Vec<String>,
    /// The recorder's settings that shape the capture (rotation, buffer size).
    pub settings: BTreeMap<String, serde_json::Value>,
    pub counters: Counters,
    pub segments: Vec<Segment>,
}

impl Manifest {
    pub fn segments_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.table == table)
    }

    /// Parses and checks a manifest. Versions newer than this build are refused
    /// with both versions named.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Manifest, CaptureError> {
        // Look at the header first so a newer format is reported as such,
        // not as a confusing missing-field error.
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            format_version: Option<u32>,
        }
        let header: Header =
            serde_json::from_slice(text).map_err(|source| CaptureError::Manifest {
                path: path.to_owned(),
                source,
            })?;
        if header.format.as_deref() != Some(FORMAT_NAME) {
            return Err(CaptureError::NotACapture {
                path: path.to_owned(),
            });
        }
        let version = header.format_version.unwrap_or(0);
        if !READABLE_VERSIONS.contains(&version) {
            return Err(CaptureError::UnsupportedVersion {
                path: path.to_owned(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_slice(text).map_err(|source| CaptureError::Manifest {
            path: path.to_owned(),
            source,
        })
    }

    pub fn read(dir: &Path) -> Result<Manifest, CaptureError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(|source| CaptureError::Io {
            path: path.clone(),
            op: "read the manifest",
            source,
        })?;
        Manifest::parse(&path, &text)
    }

    /// Replaces `DIR/manifest.json` atomically (temp file, fsync, rename,
    /// fsync of the directory): a crash leaves the old or the new manifest.
    pub fn write(&self, dir: &Path) -> Result<(), CaptureError> {
        let mut text = serde_json::to_vec_pretty(self).expect("manifest serializes");
        text.push(b'\n');
        fsutil::write_atomic(dir, MANIFEST_FILE, &text)
    }
}
