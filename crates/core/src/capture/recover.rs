//! `credtrail-record recover`: seals a capture whose recorder died, from
//! its checkpoints (see [`super::checkpoint`]), and lists it `recovered`
//! with what was sealed, set aside and lost, extending the hash chain.

use std::collections::BTreeSet;
use std::path::Path;

use super::checkpoint::{CHECKPOINT_SUFFIX, adopt_sealed, checkpoint_name, salvage_open};
use super::manifest::{
    CaptureState, Discarded, DiscardedSegment, Instant, MANIFEST_FILE, Manifest, Recovery,
    SigningKey,
};
use super::table::{EVENTS, LIFECYCLE, TABLES, segment_location};
use super::write::{RESERVE_FILE, next_free_epoch, remove_evicted, seal_missing_tables};
use crate::error::CaptureError;
use crate::fs::Dir;

/// What `recover` did.
#[derive(Debug, Clone)]
pub struct RecoverReport {
    /// False when the capture was already complete.
    pub changed: bool,
    pub manifest: Manifest,
    /// Open segments that could not be sealed, with the reason.
    pub problems: Vec<String>,
}

/// What recovery finds in one table folder.
#[derive(Default)]
struct Found {
    /// `.open` segments to seal from their checkpoints.
    open: Vec<String>,
    /// Sealed but unlisted segments to adopt (their `.open` names).
    adopt: Vec<String>,
    /// Checkpoints of segments the manifest lists.
    stale: Vec<String>,
}

fn survey(dir: &Dir, table: &str, listed: &BTreeSet<&str>) -> Result<Found, CaptureError> {
    let names = dir.names()?;
    let mut found = Found::default();
    for n in &names {
        if n.ends_with(".parquet.open") {
            found.open.push(n.clone());
        } else if let Some(open_name) = n.strip_suffix(CHECKPOINT_SUFFIX) {
            // A checkpoint whose segment was sealed: listed (stale) or
            // not yet (the recorder died between rename and manifest).
            let Some(sealed) = open_name.strip_suffix(".open") else {
                continue;
            };
            if names.iter().any(|m| m == open_name) {
                continue;
            }
            if listed.contains(format!("{table}/{sealed}").as_str()) {
                found.stale.push(n.clone());
            } else if names.iter().any(|m| m == sealed) {
                found.adopt.push(open_name.to_owned());
            }
        }
    }
    Ok(found)
}

/// Seals a capture whose recorder died. Refuses a capture a recorder still
/// holds; leaves a complete capture untouched. Every file is reached through
/// the capture's folder handles by a checked name: a manifest naming a file
/// outside its table folders, a table folder that is a symlink, or an open
/// segment that is a link to another file stops recovery (or that segment)
/// with one error, before anything is changed.
pub fn recover(dir: &Path, key: Option<&SigningKey>) -> Result<RecoverReport, CaptureError> {
    let root = Dir::open(dir)?;
    let _lock = root.lock()?;
    let mut manifest = Manifest::read_in(&root)?;
    for seg in &manifest.segments {
        segment_location(seg).map_err(|message| CaptureError::Unsafe {
            path: root.child(MANIFEST_FILE),
            message,
        })?;
    }
    let mut tables = Vec::new();
    for table in TABLES {
        if root.exists(table) {
            tables.push((table, root.subdir(table)?));
        }
    }
    let listed: BTreeSet<&str> = manifest.segments.iter().map(|s| s.file.as_str()).collect();
    let mut found = Vec::new();
    for (table, tdir) in &tables {
        let f = survey(tdir, table, &listed)?;
        // Everything recovery would open, cut, rename or remove is a plain
        // file of the capture (not a symlink, not a hard link to a file
        // elsewhere), or nothing is done at all.
        for open_name in &f.open {
            tdir.file_len(open_name, true)?;
        }
        for open_name in &f.adopt {
            tdir.file_len(open_name.trim_end_matches(".open"), true)?;
        }
        let checkpoints = f.open.iter().chain(&f.adopt).map(|n| checkpoint_name(n));
        for name in checkpoints.chain(f.stale.iter().cloned()) {
            if tdir.exists(&name) {
                tdir.file_len(&name, true)?;
            }
        }
        found.push(f);
    }
    let nothing_open = found
        .iter()
        .all(|f| f.open.is_empty() && f.adopt.is_empty());
    if nothing_open && manifest.state != CaptureState::Recording {
        for ((_, tdir), f) in tables.iter().zip(&found) {
            for n in &f.stale {
                let _ = tdir.remove(n);
            }
        }
        return Ok(RecoverReport {
            changed: false,
            manifest,
            problems: Vec::new(),
        });
    }
    let mut recovery = Recovery {
        recovered_at: crate::host::rfc3339_ns(crate::host::clock_ns(libc::CLOCK_REALTIME)),
        segments: Vec::new(),
        rows: 0,
        discarded: Vec::new(),
        last_checkpoint_ktime_ns: 0,
        events_lost_at_least: 0,
    };
    let mut problems = Vec::new();
    let mut discarded: Vec<DiscardedSegment> = Vec::new();
    for ((table, tdir), f) in tables.iter().zip(&found) {
        for open_name in &f.adopt {
            match adopt_sealed(tdir, open_name, table) {
                Ok((seg, ktime)) => {
                    recovery.segments.push(seg.file.clone());
                    recovery.rows += seg.rows;
                    recovery.last_checkpoint_ktime_ns =
                        recovery.last_checkpoint_ktime_ns.max(ktime);
                    manifest.segments.push(seg);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        for n in &f.stale {
            let _ = tdir.remove(n);
        }
    }
    for ((table, tdir), f) in tables.iter().zip(&found) {
        for open_name in &f.open {
            let s = salvage_open(tdir, open_name, table);
            if let Some(seg) = s.segment {
                recovery.segments.push(seg.file.clone());
                recovery.rows += seg.rows;
                manifest.segments.push(seg);
            }
            if let Some(d) = s.discarded {
                discarded.push(d);
            }
            if let Some(p) = s.problem {
                problems.push(p);
            }
            recovery.last_checkpoint_ktime_ns =
                recovery.last_checkpoint_ktime_ns.max(s.checkpoint_ktime_ns);
        }
    }
    // The rows the segments hold are the truth; the manifest's counters are
    // from its last checkpoint and may lag them. Rows it had counted that
    // no segment holds were in the segment set aside.
    let counted = [
        (EVENTS, manifest.counters.events_written),
        (LIFECYCLE, manifest.counters.lifecycle_written),
    ];
    for d in discarded.iter_mut().filter(|d| d.held_data) {
        for (table, n) in counted {
            if d.table == table {
                d.rows_at_least = d
                    .rows_at_least
                    .max(n.saturating_sub(manifest.rows_in(table)));
            }
        }
    }
    manifest.counters.events_written = manifest.rows_in(EVENTS);
    manifest.counters.lifecycle_written = manifest.rows_in(LIFECYCLE);
    let c = &manifest.counters;
    let discarded_events: u64 = discarded
        .iter()
        .filter(|d| d.table == EVENTS)
        .map(|d| d.rows_at_least)
        .sum();
    recovery.events_lost_at_least = c
        .kernel_events
        .saturating_sub(c.events_written + c.ringbuf_full + c.decode_errors)
        .max(discarded_events);
    recovery.discarded = discarded.into_iter().map(Discarded::Segment).collect();
    // A table that had no row before the crash reads as empty, as after a
    // clean stop.
    let epoch = next_free_epoch(tables.iter().map(|(_, d)| d));
    let empty = seal_missing_tables(&root, &manifest, epoch)?;
    manifest.segments.extend(empty);
    let last = manifest
        .segments
        .iter()
        .map(|s| s.last_ktime_ns)
        .chain([recovery.last_checkpoint_ktime_ns, manifest.start.ktime_ns])
        .max()
        .unwrap_or(0);
    if manifest.end.is_none() {
        manifest.end = Some(Instant::at(last, manifest.realtime_offset_ns));
    }
    if manifest.state == CaptureState::Recording {
        manifest.state = CaptureState::Recovered;
    }
    manifest.recovery = Some(recovery);
    let _ = root.remove(RESERVE_FILE);
    manifest.write(&root, key)?;
    // Evictions the recorder had listed but not carried out when it died
    // (names checked above: only files in the table folders).
    for seg in manifest.segments.iter().filter(|s| s.evicted) {
        if let Ok((table, name)) = segment_location(seg)
            && let Some((_, tdir)) = tables.iter().find(|(t, _)| *t == table)
        {
            remove_evicted(tdir, name);
        }
    }
    Ok(RecoverReport {
        changed: true,
        manifest,
        problems,
    })
}
