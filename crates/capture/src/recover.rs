//! `credtrail-record recover`: seals a capture whose recorder died, from
//! its checkpoints (see [`crate::checkpoint`]), and lists it `recovered`
//! with what was sealed, set aside and lost, extending the hash chain.

use std::collections::BTreeSet;
use std::path::Path;

use crate::checkpoint::{
    adopt_sealed, checkpoint_name, checkpoint_of, live_checkpoint_name, salvage_open,
};
use crate::error::CaptureError;
use crate::folder::RECORDER_FILE;
use crate::fs::Dir;
use crate::manifest::{
    CaptureState, Discarded, DiscardedSegment, Instant, MANIFEST_FILE, Manifest, Recovery, Segment,
    SigningKey,
};
use crate::read::{batch_reader, next_batch};
use crate::retention::remove_evicted;
use crate::status::write_status;
use crate::table::{CAPTURES, EVENTS, LIFECYCLE, TABLES, segment_location};
use crate::write::{RESERVE_FILE, next_free_epoch, seal_missing_tables};

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

/// What recovery would touch in one table folder. Everything it would
/// open, cut, rename or remove must be a plain file of the capture (not a
/// symlink, not a hard link to a file elsewhere), or nothing is done at all.
fn survey(dir: &Dir, table: &str, listed: &BTreeSet<&str>) -> Result<Found, CaptureError> {
    let names = dir.names()?;
    let mut found = Found::default();
    for n in &names {
        if n.ends_with(".parquet.open") {
            found.open.push(n.clone());
        } else if let Some(open_name) = checkpoint_of(n) {
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
            } else if names.iter().any(|m| m == sealed)
                && !found.adopt.iter().any(|a| a == open_name)
            {
                found.adopt.push(open_name.to_owned());
            }
        } else if n
            .strip_prefix('.')
            .and_then(|r| r.strip_suffix(".tmp"))
            .is_some_and(|inner| checkpoint_of(inner).is_some())
        {
            // A checkpoint half written when the recorder died (the
            // atomic write's temporary): never read, removed.
            found.stale.push(n.clone());
        }
    }
    for open_name in &found.open {
        dir.file_len(open_name, true)?;
    }
    for open_name in &found.adopt {
        dir.file_len(open_name.trim_end_matches(".open"), true)?;
    }
    let checkpoints = found
        .open
        .iter()
        .chain(&found.adopt)
        .flat_map(|n| [checkpoint_name(n), live_checkpoint_name(n)]);
    for name in checkpoints.chain(found.stale.iter().cloned()) {
        if dir.exists(&name) {
            dir.file_len(&name, true)?;
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
    let tables = table_dirs(&root, &manifest)?;
    let found = survey_all(&tables, &manifest)?;
    let nothing_open = found
        .iter()
        .all(|f| f.open.is_empty() && f.adopt.is_empty());
    if nothing_open && manifest.state != CaptureState::Recording {
        remove_stale(&tables, &found);
        return Ok(RecoverReport {
            changed: false,
            manifest,
            problems: Vec::new(),
        });
    }
    let mut work = Salvaged::default();
    for ((table, tdir), f) in tables.iter().zip(&found) {
        work.adopt(&mut manifest, tdir, table, f);
    }
    for ((table, tdir), f) in tables.iter().zip(&found) {
        work.seal(&mut manifest, tdir, table, f);
    }
    // Folded rows and their calls from the segments too (the truth, as
    // for the row counts): what was lost is counted against them.
    let (rows, calls) = folded_in(&tables, &manifest);
    manifest.counters.folded_rows = rows;
    manifest.counters.folded_calls = calls;
    let recovery = work.account(&mut manifest);
    remove_unlisted_status(&tables, &manifest)?;
    // A table that had no row before the crash reads as empty, as after a
    // clean stop.
    let epoch = next_free_epoch(tables.iter().map(|(_, d)| d));
    let empty = seal_missing_tables(&root, &manifest, epoch)?;
    manifest.segments.extend(empty);
    close_manifest(&mut manifest, recovery);
    let _ = root.remove(RESERVE_FILE);
    let _ = root.remove(RECORDER_FILE);
    let status = write_status(&root.create_subdir(CAPTURES)?, &manifest, epoch, true, None)?;
    manifest.segments.push(status);
    manifest.write(&root, key)?;
    remove_pending_evictions(&tables, &manifest);
    Ok(RecoverReport {
        changed: true,
        manifest,
        problems: work.problems,
    })
}

/// Surveys every table folder, before anything is changed in any of them.
fn survey_all(
    tables: &[(&'static str, Dir)],
    manifest: &Manifest,
) -> Result<Vec<Found>, CaptureError> {
    let listed: BTreeSet<&str> = manifest.segments.iter().map(|s| s.file.as_str()).collect();
    tables
        .iter()
        .map(|(table, tdir)| survey(tdir, table, &listed))
        .collect()
}

/// Drops the checkpoints of segments already listed (best effort).
fn remove_stale(tables: &[(&'static str, Dir)], found: &[Found]) {
    for ((_, tdir), f) in tables.iter().zip(found) {
        for n in &f.stale {
            let _ = tdir.remove(n);
        }
    }
}

/// A status row written (or half written) but not listed when the
/// recorder died: the final row written by `recover` says more.
fn remove_unlisted_status(
    tables: &[(&'static str, Dir)],
    manifest: &Manifest,
) -> Result<(), CaptureError> {
    let Some((_, tdir)) = tables.iter().find(|(t, _)| *t == CAPTURES) else {
        return Ok(());
    };
    for n in tdir.names()? {
        let file = format!("{CAPTURES}/{n}");
        let unlisted = n.ends_with(".parquet") && !manifest.segments.iter().any(|s| s.file == file);
        let temporary = n.starts_with('.') && n.ends_with(".parquet.tmp");
        if unlisted || temporary {
            tdir.remove(&n)?;
        }
    }
    Ok(())
}

/// Ends the capture at its last known instant, marks it recovered and
/// records what recovery did.
fn close_manifest(manifest: &mut Manifest, recovery: Recovery) {
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
}

/// Evictions the recorder had listed but not carried out when it died
/// (names checked by `table_dirs`: only files in the table folders).
fn remove_pending_evictions(tables: &[(&'static str, Dir)], manifest: &Manifest) {
    for seg in manifest.segments.iter().filter(|s| s.evicted) {
        if let Ok((table, name)) = segment_location(seg)
            && let Some((_, tdir)) = tables.iter().find(|(t, _)| *t == table)
        {
            remove_evicted(tdir, name);
        }
    }
}

/// Rows with a `repeat_count` in the readable events segments, and the
/// calls they hold, read through the same bounded reader as every other
/// read. A segment that cannot be read counts none (`--verify` names it).
fn folded_in(tables: &[(&'static str, Dir)], manifest: &Manifest) -> (u64, u64) {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    let Some((_, tdir)) = tables.iter().find(|(t, _)| *t == EVENTS) else {
        return (0, 0);
    };
    let mut total = (0u64, 0u64);
    for seg in manifest.segments_of(EVENTS) {
        let Ok((_, name)) = segment_location(seg) else {
            continue;
        };
        let path = tdir.child(name);
        let Ok(file) = tdir.open_file(name) else {
            continue;
        };
        let Ok((mut reader, _)) = batch_reader(&path, file, EVENTS) else {
            continue;
        };
        while let Ok(Some(batch)) = next_batch(&path, &mut reader) {
            let Some(col) = batch
                .column_by_name("repeat_count")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
            else {
                break;
            };
            for n in col.iter().flatten() {
                total = (total.0 + 1, total.1.saturating_add(n.max(0) as u64));
            }
        }
    }
    total
}

/// The capture's table folders, once every manifest record names a file in
/// one of them.
fn table_dirs(root: &Dir, manifest: &Manifest) -> Result<Vec<(&'static str, Dir)>, CaptureError> {
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
    Ok(tables)
}

/// What sealing the open segments made, as it goes.
#[derive(Default)]
struct Salvaged {
    segments: Vec<String>,
    rows: u64,
    discarded: Vec<DiscardedSegment>,
    last_checkpoint_ktime_ns: u64,
    problems: Vec<String>,
}

impl Salvaged {
    fn sealed(&mut self, manifest: &mut Manifest, seg: Segment, checkpoint_ktime_ns: u64) {
        self.segments.push(seg.file.clone());
        self.rows += seg.rows;
        self.last_checkpoint_ktime_ns = self.last_checkpoint_ktime_ns.max(checkpoint_ktime_ns);
        manifest.segments.push(seg);
    }

    /// Lists the segments sealed but not listed when the recorder died, and
    /// drops the checkpoints of listed ones.
    fn adopt(&mut self, manifest: &mut Manifest, tdir: &Dir, table: &str, f: &Found) {
        for open_name in &f.adopt {
            match adopt_sealed(tdir, open_name, table) {
                Ok((seg, ktime)) => self.sealed(manifest, seg, ktime),
                Err(e) => self.problems.push(e.to_string()),
            }
        }
        for n in &f.stale {
            let _ = tdir.remove(n);
        }
    }

    /// Seals each open segment from its checkpoint, or sets it aside.
    fn seal(&mut self, manifest: &mut Manifest, tdir: &Dir, table: &str, f: &Found) {
        for open_name in &f.open {
            let s = salvage_open(tdir, open_name, table);
            if let Some(seg) = s.segment {
                self.sealed(manifest, seg, s.checkpoint_ktime_ns);
            }
            self.discarded.extend(s.discarded);
            self.problems.extend(s.problem);
        }
    }

    /// The row counters from the segments (the truth: the manifest's are
    /// from its last checkpoint and may lag them), what the set-aside
    /// segments held, and the events lost in the crash at least.
    fn account(&mut self, manifest: &mut Manifest) -> Recovery {
        // Rows the manifest had counted that no segment holds were in the
        // segment set aside.
        let counted = [
            (EVENTS, manifest.counters.events_written),
            (LIFECYCLE, manifest.counters.lifecycle_written),
        ];
        for d in self.discarded.iter_mut().filter(|d| d.held_data) {
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
        let discarded_events: u64 = self
            .discarded
            .iter()
            .filter(|d| d.table == EVENTS)
            .map(|d| d.rows_at_least)
            .sum();
        Recovery {
            recovered_at: crate::host::rfc3339_ns(crate::host::clock_ns(libc::CLOCK_REALTIME)),
            segments: std::mem::take(&mut self.segments),
            rows: self.rows,
            discarded: std::mem::take(&mut self.discarded)
                .into_iter()
                .map(Discarded::Segment)
                .collect(),
            last_checkpoint_ktime_ns: self.last_checkpoint_ktime_ns,
            events_lost_at_least: c
                .kernel_events
                .saturating_sub(
                    c.calls_written()
                        .saturating_add(c.ringbuf_full)
                        .saturating_add(c.fold_full)
                        .saturating_add(c.decode_errors),
                )
                .max(discarded_events),
        }
    }
}
