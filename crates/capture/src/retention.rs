//! The disk budget and retention (`--max-capture-bytes`, `--keep`): which
//! whole segment sets are evicted, how the manifest keeps their records
//! (runs of them folded into the chain once they pile up), and deleting an
//! evicted file. The writer asks here; `recover` finishes what it left.

use std::collections::BTreeMap;

use crate::control::oldest_pin;
use crate::fs::Dir;
use crate::manifest::Manifest;
use crate::table::{CONTAINERS, EVENTS, LIFECYCLE, USER_NAMESPACES, epoch_of};

/// Evicted records kept one by one before runs of them are folded (see
/// `Manifest::fold_evicted`): the manifest of a flight recorder stays
/// within its live segments, its metadata and this.
const FOLD_AFTER: usize = 64;

/// How the capture may use the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest segments within this many bytes, deleting the oldest
    /// (a ring), instead of growing without bound.
    pub max_capture_bytes: Option<u64>,
    /// Checkpoints are written without fsync. A killed recorder still
    /// loses at most the last half second; a power cut or kernel crash can
    /// lose back to the last sealed segment. For storage where fsync is
    /// slow (measured here: 0.2 ms each, ~8 per checkpoint).
    pub no_fsync: bool,
    /// Flight recorder: delete the segment sets whose newest row is older
    /// than this (the newest set always stays).
    pub keep: Option<std::time::Duration>,
}

impl Retention {
    /// Names in the manifest's `settings` what differs from the default.
    pub(crate) fn note_in(&self, settings: &mut BTreeMap<String, serde_json::Value>) {
        if let Some(max) = self.max_capture_bytes {
            settings.insert("max_capture_bytes".into(), max.into());
        }
        if self.no_fsync {
            settings.insert("no_fsync".into(), true.into());
        }
        if let Some(keep) = self.keep {
            settings.insert("keep_seconds".into(), keep.as_secs().into());
        }
    }
}

/// Marks evicted in `manifest` the oldest whole segment sets before set
/// `keep` (all tables but container and namespace metadata, which later
/// events still need) while the capture is over `max` bytes (its sealed
/// segments and the `open_bytes` of its open ones) or, with `--keep`, while
/// the oldest set's newest row is older than that. Sets a cut has pinned
/// (see `control`) in the capture folder `root` stay, over budget if need
/// be, until the cut is complete. Returns the files (`table/part`) to
/// delete once the manifest that lists them evicted is on disk.
pub(crate) fn mark_evicted(
    manifest: &mut Manifest,
    retention: &Retention,
    root: &Dir,
    open_bytes: u64,
    max: Option<u64>,
    keep: u32,
) -> Vec<String> {
    if max.is_none() && retention.keep.is_none() {
        return Vec::new();
    }
    let expired = retention
        .keep
        .map(|k| crate::host::boottime_ns().saturating_sub(k.as_nanos() as u64));
    // Each set's newest row, oldest set first.
    let mut sets = BTreeMap::<u32, u64>::new();
    for s in manifest.segments.iter() {
        if s.evicted || is_metadata(&s.table) {
            continue;
        }
        if let Some(e) = epoch_of(&s.file).filter(|e| *e < keep) {
            let newest = sets.entry(e).or_default();
            *newest = (*newest).max(s.last_ktime_ns);
        }
    }
    let mut pinned = None;
    let mut victims = Vec::new();
    for (&set, &newest) in &sets {
        let over = max.is_some_and(|max| manifest.kept_bytes() + open_bytes > max);
        if !over && expired.is_none_or(|t| newest >= t) {
            break;
        }
        let pin = *pinned.get_or_insert_with(|| oldest_pin(root));
        if pin.is_some_and(|p| newest >= p) {
            break;
        }
        for seg in &mut manifest.segments {
            if seg.evicted || is_metadata(&seg.table) || epoch_of(&seg.file) != Some(set) {
                continue;
            }
            seg.evicted = true;
            match seg.table.as_str() {
                EVENTS => manifest.counters.events_evicted += seg.rows,
                LIFECYCLE => manifest.counters.lifecycle_evicted += seg.rows,
                _ => {}
            }
            tracing::debug!("evicted {} ({} rows)", seg.file, seg.rows);
            victims.push(seg.file.clone());
        }
    }
    if victims.is_empty() {
        return victims;
    }
    let unfolded = manifest
        .segments
        .iter()
        .filter(|s| s.evicted && s.folded.is_none())
        .count();
    if unfolded >= FOLD_AFTER {
        manifest.fold_evicted(2);
    }
    victims
}

/// Tables of metadata that later rows rest on, whatever their age: never
/// evicted. (A set's `captures` row goes with its set: the newest row
/// carries every counter so far.)
fn is_metadata(table: &str) -> bool {
    table == CONTAINERS || table == USER_NAMESPACES
}

/// Deletes the file of an evicted segment; one that cannot go is logged
/// and left for `recover` (the manifest already says it is evicted).
pub(crate) fn remove_evicted(dir: &Dir, name: &str) {
    if let Err(e) = dir.remove(name) {
        tracing::error!("cannot evict: {e}");
    }
}
