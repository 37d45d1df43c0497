//! Crash recovery. While a segment is open the writer keeps, beside it, a
//! checkpoint: the Parquet footer describing the row groups flushed so far
//! and the file length they end at. After `kill -9`, OOM or a power cut,
//! `credtrail-record recover DIR` cuts each open segment back to that
//! length, appends the footer, checks the result reads back with the
//! promised row count, and lists it in the manifest (marked `recovered`),
//! extending the hash chain. Nothing is ever overwritten or deleted: an open
//! segment without a usable checkpoint is renamed `*.discarded`.

use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::capture::{self, EVENTS, LIFECYCLE, Salvage, hash_file};
use crate::error::CaptureError;
use crate::fsutil::Dir;
use crate::manifest::{
    CaptureState, Discarded, DiscardedSegment, MANIFEST_FILE, Manifest, Recovery, Segment,
    SigningKey,
};

/// Suffix of an open segment's checkpoint file.
pub const CHECKPOINT_SUFFIX: &str = ".ckpt";
const MAGIC: &[u8; 8] = b"CTCKPT01";
/// A footer larger than this is not one credtrail wrote.
const MAX_FOOTER: usize = 64 << 20;
const HEADER: usize = 8 + 5 * 8 + 4;

/// An open segment's latest checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// CLOCK_BOOTTIME when it was written.
    pub ktime_ns: u64,
    /// The row groups flushed so far end at this offset.
    pub data_len: u64,
    pub rows: u64,
    pub first_ktime_ns: u64,
    pub last_ktime_ns: u64,
    /// Parquet footer: metadata, its length, `PAR1`.
    pub footer: Vec<u8>,
}

impl Checkpoint {
    /// `MAGIC, ktime, data_len, rows, first, last (u64 LE), footer length
    /// (u32 LE), footer, sha256 of everything before`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER + self.footer.len() + 32);
        b.extend_from_slice(MAGIC);
        for v in [
            self.ktime_ns,
            self.data_len,
            self.rows,
            self.first_ktime_ns,
            self.last_ktime_ns,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.footer.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.footer);
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum);
        b
    }

    /// Parses a checkpoint, refusing anything torn, altered or oversized.
    pub fn decode(b: &[u8]) -> Result<Checkpoint, String> {
        if b.len() < HEADER + 32 || &b[..8] != MAGIC {
            return Err("not a credtrail checkpoint".into());
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err("checkpoint checksum mismatch (torn or altered)".into());
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[8 + i * 8..16 + i * 8]);
            u64::from_le_bytes(a)
        };
        let mut l = [0u8; 4];
        l.copy_from_slice(&body[HEADER - 4..HEADER]);
        let footer_len = u32::from_le_bytes(l) as usize;
        if footer_len > MAX_FOOTER || HEADER + footer_len != body.len() {
            return Err("checkpoint footer length is inconsistent".into());
        }
        let footer = body[HEADER..].to_vec();
        if footer.len() < 8 || &footer[footer.len() - 4..] != b"PAR1" {
            return Err("checkpoint holds no Parquet footer".into());
        }
        Ok(Checkpoint {
            ktime_ns: u64_at(0),
            data_len: u64_at(1),
            rows: u64_at(2),
            first_ktime_ns: u64_at(3),
            last_ktime_ns: u64_at(4),
            footer,
        })
    }
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> CaptureError + 'a {
    move |source| CaptureError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// The checkpoint of the open segment `open_name` in `dir`; None if it has
/// none.
fn read_checkpoint(dir: &Dir, open_name: &str) -> Result<Option<Checkpoint>, CaptureError> {
    let name = capture::checkpoint_name(open_name);
    if !dir.exists(&name) {
        return Ok(None);
    }
    let bytes = dir.read_bounded(&name, (MAX_FOOTER + HEADER + 32) as u64)?;
    Checkpoint::decode(&bytes)
        .map(Some)
        .map_err(|message| CaptureError::Recovery {
            path: dir.child(&name),
            message,
        })
}

/// Seals the open segment `open_name` of `table` from its checkpoint, or
/// sets it aside.
pub(crate) fn salvage_open(dir: &Dir, open_name: &str, table: &str) -> Salvage {
    let aside = |promised: u64, reason: String| set_aside(dir, open_name, table, promised, reason);
    let ck = match read_checkpoint(dir, open_name) {
        Ok(Some(ck)) if ck.rows > 0 => ck,
        Ok(_) => return aside(0, "no checkpoint: no rows had been flushed to it".into()),
        Err(e) => return aside(0, e.to_string()),
    };
    match seal_from_checkpoint(dir, open_name, table, &ck) {
        Ok(seg) => Salvage {
            segment: Some(seg),
            checkpoint_ktime_ns: ck.ktime_ns,
            ..Salvage::default()
        },
        Err(e) => aside(ck.rows, e.to_string()),
    }
}

/// Renames an open segment `*.discarded`, recording what it held. A file
/// with more than Parquet's 4-byte magic held rows (or part of them).
fn set_aside(dir: &Dir, open_name: &str, table: &str, promised: u64, reason: String) -> Salvage {
    let base = open_name.strip_suffix(".open").unwrap_or(open_name);
    let discarded = format!("{base}.discarded");
    let problem = |problem: String| Salvage {
        problem: Some(problem),
        ..Salvage::default()
    };
    let bytes = match dir.file_len(open_name, true) {
        Ok(len) => len,
        Err(e) => return problem(format!("{reason}; left as is: {e}")),
    };
    if let Err(e) = dir.rename(open_name, &discarded) {
        return problem(format!("{reason}; cannot set it aside: {e}"));
    }
    let _ = dir.remove(&capture::checkpoint_name(open_name));
    let held_data = bytes > 4 || promised > 0;
    Salvage {
        // An empty file is no problem: nothing was lost with it.
        problem: held_data
            .then(|| format!("{}: {reason}; set aside", dir.child(open_name).display())),
        discarded: Some(DiscardedSegment {
            file: format!("{table}/{discarded}"),
            table: table.to_owned(),
            bytes,
            rows_at_least: promised.max(u64::from(held_data)),
            held_data,
            reason,
        }),
        ..Salvage::default()
    }
}

/// Cuts the open segment back to its checkpoint, appends the footer,
/// checks the rows read back and renames it to its sealed name. The file
/// must be a regular file with one link: nothing outside the capture is
/// ever truncated or written through it.
fn seal_from_checkpoint(
    dir: &Dir,
    open_name: &str,
    table: &str,
    ck: &Checkpoint,
) -> Result<Segment, CaptureError> {
    let open_path = dir.child(open_name);
    let name = open_name
        .strip_suffix(".open")
        .ok_or_else(|| CaptureError::Recovery {
            path: open_path.clone(),
            message: "not an open segment name".into(),
        })?;
    if dir.exists(name) {
        return Err(CaptureError::Recovery {
            path: dir.child(name),
            message: "already exists; refusing to overwrite it".into(),
        });
    }
    let mut f = dir.open_for_repair(open_name)?;
    let len = f.metadata().map_err(io(&open_path, "inspect"))?.len();
    if len < ck.data_len {
        return Err(CaptureError::Recovery {
            path: open_path,
            message: format!(
                "is {len} bytes, shorter than its checkpoint's {} (truncated by someone else?)",
                ck.data_len
            ),
        });
    }
    // Bytes past the checkpoint are a row group nobody described: cut them.
    f.set_len(ck.data_len).map_err(io(&open_path, "truncate"))?;
    f.seek(SeekFrom::End(0)).map_err(io(&open_path, "seek"))?;
    f.write_all(&ck.footer).map_err(io(&open_path, "write"))?;
    f.sync_all().map_err(io(&open_path, "sync"))?;
    f.seek(SeekFrom::Start(0)).map_err(io(&open_path, "seek"))?;
    let rows = count_rows(f, &open_path)?;
    if rows != ck.rows {
        return Err(CaptureError::Recovery {
            path: open_path,
            message: format!(
                "reads back {rows} rows, its checkpoint promised {}",
                ck.rows
            ),
        });
    }
    dir.rename(open_name, name)?;
    dir.remove(&capture::checkpoint_name(open_name))?;
    dir.sync()?;
    recovered_segment(dir, name, table, ck)
}

/// The manifest record of a segment sealed by recovery.
fn recovered_segment(
    dir: &Dir,
    name: &str,
    table: &str,
    ck: &Checkpoint,
) -> Result<Segment, CaptureError> {
    let (bytes, sha256) = hash_file(dir, name)?;
    Ok(Segment {
        table: table.to_owned(),
        file: format!("{table}/{name}"),
        rows: ck.rows,
        bytes,
        sha256,
        first_ktime_ns: ck.first_ktime_ns,
        last_ktime_ns: ck.last_ktime_ns,
        recovered: true,
        evicted: false,
        chain: None,
    })
}

/// Lists a segment that was sealed (complete file, renamed) but not yet in
/// the manifest when the recorder died; its checkpoint describes it.
fn adopt_sealed(dir: &Dir, open_name: &str, table: &str) -> Result<(Segment, u64), CaptureError> {
    let ck_name = capture::checkpoint_name(open_name);
    let ck = read_checkpoint(dir, open_name)?.ok_or_else(|| CaptureError::Recovery {
        path: dir.child(&ck_name),
        message: "checkpoint vanished during recovery".into(),
    })?;
    let sealed = open_name.strip_suffix(".open").unwrap_or(open_name);
    let rows = count_rows(dir.open_file(sealed)?, &dir.child(sealed))?;
    if rows != ck.rows {
        return Err(CaptureError::Recovery {
            path: dir.child(sealed),
            message: format!(
                "is not listed in the manifest and holds {rows} rows, its checkpoint {}; left as is",
                ck.rows
            ),
        });
    }
    let seg = recovered_segment(dir, sealed, table, &ck)?;
    dir.remove(&ck_name)?;
    Ok((seg, ck.ktime_ns))
}

/// Reads every row of a Parquet file: proves the recovered file decodes.
fn count_rows(f: std::fs::File, path: &Path) -> Result<u64, CaptureError> {
    let mut reader = capture::batch_reader(path, f)?;
    let mut rows = 0u64;
    while let Some(batch) = capture::next_batch(path, &mut reader)? {
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}

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
        capture::segment_location(seg).map_err(|message| CaptureError::Unsafe {
            path: root.child(MANIFEST_FILE),
            message,
        })?;
    }
    let mut tables = Vec::new();
    for table in capture::TABLES {
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
        let checkpoints = f
            .open
            .iter()
            .chain(&f.adopt)
            .map(|n| capture::checkpoint_name(n));
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
    let epoch = capture::next_free_epoch(tables.iter().map(|(_, d)| d));
    let empty = capture::seal_missing_tables(&root, &manifest, epoch)?;
    manifest.segments.extend(empty);
    let last = manifest
        .segments
        .iter()
        .map(|s| s.last_ktime_ns)
        .chain([recovery.last_checkpoint_ktime_ns, manifest.start.ktime_ns])
        .max()
        .unwrap_or(0);
    if manifest.end.is_none() {
        manifest.end = Some(crate::manifest::Instant {
            time: crate::host::rfc3339_ns(last as i64 + manifest.realtime_offset_ns),
            ktime_ns: last,
        });
    }
    if manifest.state == CaptureState::Recording {
        manifest.state = CaptureState::Recovered;
    }
    manifest.recovery = Some(recovery);
    let _ = root.remove(capture::RESERVE_FILE);
    manifest.write(&root, key)?;
    // Evictions the recorder had listed but not carried out when it died
    // (names checked above: only files in the table folders).
    for seg in manifest.segments.iter().filter(|s| s.evicted) {
        if let Ok((table, name)) = capture::segment_location(seg)
            && let Some((_, tdir)) = tables.iter().find(|(t, _)| *t == table)
        {
            capture::remove_evicted(tdir, name);
        }
    }
    Ok(RecoverReport {
        changed: true,
        manifest,
        problems,
    })
}
