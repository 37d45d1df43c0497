//! `DIR/manifest.json`: what a capture holds and how complete it is, and
//! reading it. Its hash chain, and writing it (which extends the chain),
//! are `chain`'s.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

pub use crate::counters::Counters;

use crate::error::CaptureError;
use crate::fs::Dir;

/// The capture format this build writes. Readers accept every version up to it.
/// Version 2 added the hash chain, recovery and retention records; version 3
/// the `user_namespaces` table, the ia32 entry (`abi`), the prctl, user
/// namespace and io_uring rows and the namespace columns of every row;
/// version 4 the executed file (`exe`) on events and lifecycle rows;
/// version 5 stores every column in types any engine reads by default
/// (signed integers, microsecond timestamps and `time_ns`: see `storage`);
/// version 6 the `captures` table (see `status`); version 7 folded
/// records of evicted segments (see [`Manifest::fold_evicted`]),
/// `processes.ns_pid` and `cache-parent` rows, and the containers table's
/// pod annotations and workload; version 8 chains folded records to what
/// precedes them (`folded.chain_in`) and puts each whole in the head, so
/// the head covers every record, folded or not; version 9 rows of calls
/// the kernel folded (`events.repeat_count`, `last_time`), the fold
/// counters and `lost_by_pid`.
pub const FORMAT_VERSION: u32 = 9;
/// Every format version this build reads.
const READABLE_VERSIONS: std::ops::RangeInclusive<u32> = 1..=FORMAT_VERSION;
/// Marks a directory as a credtrail capture.
pub const FORMAT_NAME: &str = "credtrail-capture";
pub const MANIFEST_FILE: &str = "manifest.json";
/// The largest manifest read: ~160,000 segment records, 139 days of
/// 5-minute segments.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Detached ed25519 signature of `manifest.json` (raw 64 bytes), with `--sign-key`.
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureState {
    /// The recorder is (or was, if it crashed) still writing.
    Recording,
    /// The recorder finished cleanly: every segment is listed and complete.
    Sealed,
    /// The recorder died; `credtrail-record recover` sealed what it had
    /// checkpointed (see `recovery`).
    Recovered,
    /// The recorder stopped on a write error (see `error`); every listed
    /// segment is complete.
    Failed,
}

/// An instant, as wall-clock text and as the kernel's boot clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instant {
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    /// CLOCK_BOOTTIME, ns.
    pub ktime_ns: u64,
}

impl Instant {
    /// The boot-clock instant `ktime_ns`, on the wall clock by `realtime_offset_ns`.
    pub fn at(ktime_ns: u64, realtime_offset_ns: i64) -> Instant {
        Instant {
            time: crate::host::rfc3339_ns(ktime_ns as i64 + realtime_offset_ns),
            ktime_ns,
        }
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
    /// Sealed by `credtrail-record recover` from the last checkpoint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recovered: bool,
    /// Deleted by `--max-capture-bytes`; kept here so the chain and the
    /// loss accounting stay whole. Readers skip it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub evicted: bool,
    /// Hash chain link: sha256 of the previous link and this record (see
    /// [`Manifest::link`]). Absent in format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// A run of evicted records folded into this one (table [`FOLDED`]):
    /// its link is the last folded record's, taken as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded: Option<Folded>,
}

/// The table of a record that stands for a run of evicted ones.
pub const FOLDED: &str = "folded";

/// What a run of folded records held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folded {
    /// Records folded.
    pub records: u64,
    /// Their rows by table (evicted, counted in the counters).
    pub rows: BTreeMap<String, u64>,
    /// The chain link before the first folded record (format 8): what the
    /// records before the fold must still hash to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_in: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What `credtrail-record recover` did to a capture whose recorder died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// When recovery ran (RFC 3339, UTC).
    pub recovered_at: String,
    /// Segments sealed from their last checkpoint.
    pub segments: Vec<String>,
    /// Rows in them.
    pub rows: u64,
    /// Open segments that could not be sealed (no usable checkpoint),
    /// renamed `*.discarded` and not read, with what they held.
    pub discarded: Vec<Discarded>,
    /// Events that reached the recorder after its last checkpoint are lost
    /// and cannot be counted; this bounds them in time.
    pub last_checkpoint_ktime_ns: u64,
    /// Lost in the crash, at least: events the kernel had produced by the
    /// last checkpoint that are neither in a segment nor counted as dropped.
    #[serde(default)]
    pub events_lost_at_least: u64,
}

/// An open segment `recover` set aside (renamed `*.discarded`) because it
/// could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Discarded {
    Segment(DiscardedSegment),
    /// The file name alone, as recoveries before these details wrote it;
    /// kept as it was so that such a capture's hash chain still holds.
    Legacy(String),
}

/// What a set-aside segment held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscardedSegment {
    /// Path of the `*.discarded` file, relative to the capture directory.
    pub file: String,
    pub table: String,
    pub bytes: u64,
    /// Rows it held, at least: those its checkpoint promised, or those the
    /// manifest had counted for the table that no segment holds, or 1 when
    /// it holds data written after its last checkpoint (not countable).
    /// Events among them are in `events_lost_at_least`.
    pub rows_at_least: u64,
    /// False when no row ever reached the file: nothing was lost with it.
    pub held_data: bool,
    /// Why it could not be sealed.
    pub reason: String,
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
    /// Events lost (ring buffer full, or not folded), by the pid of the
    /// process that made them: who a flood cost what.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lost_by_pid: BTreeMap<u32, u64>,
    /// Calls folded (rows with a `repeat_count`), by the pid of the process
    /// that made them: the first 8,192 processes (`counters.folded_calls`
    /// has them all).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub folded_by_pid: BTreeMap<u32, u64>,
    pub segments: Vec<Segment>,
    /// Why recording stopped early (state `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// sha256 chaining the header, every segment record and this manifest's
    /// final state (state, end, counters, error, recovery). Format 2+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_head: Option<String>,
}

impl Manifest {
    /// The manifest a new capture starts with: state `recording`, no
    /// segment, counters at zero. The recorder fills in the kernel, boot
    /// id, hooks and settings.
    pub fn new(node_name: &str, realtime_offset_ns: i64, start_ktime_ns: u64) -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            credtrail_version: env!("CARGO_PKG_VERSION").into(),
            state: CaptureState::Recording,
            node_name: node_name.to_owned(),
            kernel_release: String::new(),
            boot_id: String::new(),
            realtime_offset_ns,
            start: Instant::at(start_ktime_ns, realtime_offset_ns),
            end: None,
            hooks: Vec::new(),
            settings: BTreeMap::new(),
            counters: Counters::default(),
            lost_by_pid: Default::default(),
            folded_by_pid: Default::default(),
            segments: Vec::new(),
            error: None,
            recovery: None,
            chain_head: None,
        }
    }

    /// The `n` processes with the most in `by_pid` (`lost_by_pid`,
    /// `folded_by_pid`), most first, as `pid P: N` texts, and `, ...` when
    /// there are more.
    pub fn most_by_pid(by_pid: &BTreeMap<u32, u64>, n: usize) -> String {
        let mut worst: Vec<_> = by_pid.iter().collect();
        worst.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let named: Vec<String> = worst
            .iter()
            .take(n)
            .map(|(pid, count)| format!("pid {pid}: {count}"))
            .collect();
        let more = if worst.len() > n { ", ..." } else { "" };
        format!("{}{more}", named.join(", "))
    }

    /// The readable segments of a table (evicted ones are skipped).
    pub fn segments_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments
            .iter()
            .filter(move |s| s.table == table && !s.evicted)
    }

    /// Bytes of the segments still on disk (evicted ones are gone).
    pub fn kept_bytes(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| !s.evicted)
            .map(|s| s.bytes)
            .sum()
    }

    /// Rows ever written to a table's segments, evicted ones included.
    pub fn rows_in(&self, table: &str) -> u64 {
        self.segments
            .iter()
            .map(|s| match &s.folded {
                Some(f) => f.rows.get(table).copied().unwrap_or(0),
                None if s.table == table => s.rows,
                None => 0,
            })
            .sum()
    }

    /// Segment records, folded ones counted one by one: (all, evicted).
    pub fn record_counts(&self) -> (u64, u64) {
        let n = |s: &Segment| s.folded.as_ref().map_or(1, |f| f.records);
        (
            self.segments.iter().map(n).sum(),
            self.segments.iter().filter(|s| s.evicted).map(n).sum(),
        )
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

    /// Reads `DIR/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest, CaptureError> {
        Manifest::read_in(&Dir::open(dir)?)
    }

    /// Reads the manifest of the capture folder `dir` (a regular file, not
    /// a symlink, of bounded size).
    pub fn read_in(dir: &Dir) -> Result<Manifest, CaptureError> {
        let text = dir.read_bounded(MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
        Manifest::parse(&dir.child(MANIFEST_FILE), &text)
    }
}
