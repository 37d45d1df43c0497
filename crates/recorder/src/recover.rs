//! Crash recovery. While a segment is open the writer keeps, beside it, a
//! checkpoint: the Parquet footer describing the row groups flushed so far
//! and the file length they end at. After `kill -9`, OOM or a power cut,
//! `credtrail-record recover DIR` cuts each open segment back to that
//! length, appends the footer, checks the result reads back with the
//! promised row count, and lists it in the manifest (marked `recovered`),
//! extending the hash chain. Nothing is ever overwritten or deleted: an open
//! segment without a usable checkpoint is renamed `*.discarded`.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::capture::{self, EVENTS, LIFECYCLE, Salvage, hash_file};
use crate::error::CaptureError;
use crate::fsutil;
use crate::manifest::{
    CaptureState, Discarded, DiscardedSegment, Manifest, Recovery, Segment, SigningKey,
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

/// The checkpoint of the open segment at `open_path`; None if it has none.
fn read_checkpoint(open_path: &Path) -> Result<Option<Checkpoint>, CaptureError> {
    let dir = open_path.parent().unwrap_or(Path::new("."));
    let ck_path = dir.join(capture::checkpoint_name(open_path));
    let bytes = match fsutil::read_bounded(&ck_path, (MAX_FOOTER + HEADER + 32) as u64) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&ck_path, "read")(e)),
    };
    Checkpoint::decode(&bytes)
        .map(Some)
        .map_err(|message| CaptureError::Recovery {
            path: ck_path,
            message,
        })
}

/// Seals one open segment from its checkpoint, or sets it aside.
pub(crate) fn salvage_open(capture_dir: &Path, open_path: &Path, table: &str) -> Salvage {
    let aside =
        |promised: u64, reason: String| set_aside(capture_dir, open_path, table, promised, reason);
    let ck = match read_checkpoint(open_path) {
        Ok(Some(ck)) if ck.rows > 0 => ck,
        Ok(_) => return aside(0, "no checkpoint: no rows had been flushed to it".into()),
        Err(e) => return aside(0, e.to_string()),
    };
    match seal_from_checkpoint(capture_dir, open_path, table, &ck) {
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
fn set_aside(
    capture_dir: &Path,
    open_path: &Path,
    table: &str,
    promised: u64,
    reason: String,
) -> Salvage {
    let discarded = open_path.with_extension("discarded");
    let held_problem = |problem: String| Salvage {
        problem: Some(problem),
        ..Salvage::default()
    };
    if discarded.exists() {
        return held_problem(format!(
            "{}: {reason}; cannot set it aside: {} already exists",
            open_path.display(),
            discarded.display()
        ));
    }
    let bytes = fs::symlink_metadata(open_path).map_or(0, |m| m.len());
    if let Err(e) = fs::rename(open_path, &discarded) {
        return held_problem(format!("cannot set aside {}: {e}", open_path.display()));
    }
    let _ = capture::remove_checkpoint(open_path);
    let held_data = bytes > 4 || promised > 0;
    Salvage {
        // An empty file is no problem: nothing was lost with it.
        problem: held_data.then(|| format!("{}: {reason}; set aside", open_path.display())),
        discarded: Some(DiscardedSegment {
            file: relative(capture_dir, &discarded),
            table: table.to_owned(),
            bytes,
            rows_at_least: promised.max(u64::from(held_data)),
            held_data,
            reason,
        }),
        ..Salvage::default()
    }
}

/// `path` relative to the capture directory, as the manifest names files.
fn relative(capture_dir: &Path, path: &Path) -> String {
    path.strip_prefix(capture_dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// Cuts the open segment back to its checkpoint, appends the footer,
/// checks the rows read back and renames it to its sealed name.
fn seal_from_checkpoint(
    capture_dir: &Path,
    open_path: &Path,
    table: &str,
    ck: &Checkpoint,
) -> Result<Segment, CaptureError> {
    let dir = open_path.parent().unwrap_or(Path::new("."));
    let name = open_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".open"))
        .ok_or_else(|| CaptureError::Recovery {
            path: open_path.to_owned(),
            message: "not an open segment name".into(),
        })?
        .to_owned();
    let final_path = dir.join(&name);
    if final_path.exists() {
        return Err(CaptureError::Recovery {
            path: final_path,
            message: "already exists; refusing to overwrite it".into(),
        });
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(open_path)
        .map_err(io(open_path, "open"))?;
    let len = f.metadata().map_err(io(open_path, "inspect"))?.len();
    if len < ck.data_len {
        return Err(CaptureError::Recovery {
            path: open_path.to_owned(),
            message: format!(
                "is {len} bytes, shorter than its checkpoint's {} (truncated by someone else?)",
                ck.data_len
            ),
        });
    }
    // Bytes past the checkpoint are a row group nobody described: cut them.
    f.set_len(ck.data_len).map_err(io(open_path, "truncate"))?;
    f.seek(SeekFrom::End(0)).map_err(io(open_path, "seek"))?;
    f.write_all(&ck.footer).map_err(io(open_path, "write"))?;
    f.sync_all().map_err(io(open_path, "sync"))?;
    f.seek(SeekFrom::Start(0)).map_err(io(open_path, "seek"))?;
    let rows = count_rows(f, open_path)?;
    if rows != ck.rows {
        return Err(CaptureError::Recovery {
            path: open_path.to_owned(),
            message: format!(
                "reads back {rows} rows, its checkpoint promised {}",
                ck.rows
            ),
        });
    }
    fs::rename(open_path, &final_path).map_err(io(&final_path, "rename recovered segment to"))?;
    capture::remove_checkpoint(open_path)?;
    fsutil::sync_dir(dir)?;
    recovered_segment(capture_dir, &final_path, table, ck)
}

/// The manifest record of a segment sealed by recovery.
fn recovered_segment(
    capture_dir: &Path,
    path: &Path,
    table: &str,
    ck: &Checkpoint,
) -> Result<Segment, CaptureError> {
    let (bytes, sha256) = hash_file(path)?;
    Ok(Segment {
        table: table.to_owned(),
        file: relative(capture_dir, path),
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
fn adopt_sealed(
    capture_dir: &Path,
    open_path: &Path,
    table: &str,
) -> Result<(Segment, u64), CaptureError> {
    let dir = open_path.parent().unwrap_or(Path::new("."));
    let ck_path = dir.join(capture::checkpoint_name(open_path));
    let ck = read_checkpoint(open_path)?.ok_or_else(|| CaptureError::Recovery {
        path: ck_path.clone(),
        message: "checkpoint vanished during recovery".into(),
    })?;
    let sealed = open_path.with_extension("");
    let f = fs::File::open(&sealed).map_err(io(&sealed, "open"))?;
    let rows = count_rows(f, &sealed)?;
    if rows != ck.rows {
        return Err(CaptureError::Recovery {
            path: sealed,
            message: format!(
                "is not listed in the manifest and holds {rows} rows, its checkpoint {}; left as is",
                ck.rows
            ),
        });
    }
    let seg = recovered_segment(capture_dir, &sealed, table, &ck)?;
    fs::remove_file(&ck_path).map_err(io(&ck_path, "remove"))?;
    Ok((seg, ck.ktime_ns))
}

/// Reads every row of a Parquet file: proves the recovered file decodes.
fn count_rows(f: fs::File, path: &Path) -> Result<u64, CaptureError> {
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

/// Seals a capture whose recorder died. Refuses a capture a recorder still
/// holds; leaves a complete capture untouched.
pub fn recover(dir: &Path, key: Option<&SigningKey>) -> Result<RecoverReport, CaptureError> {
    let _lock = fsutil::lock_dir(dir)?;
    let mut manifest = Manifest::read(dir)?;
    let listed: std::collections::BTreeSet<String> =
        manifest.segments.iter().map(|s| s.file.clone()).collect();
    let mut open = Vec::new();
    let mut adopt = Vec::new();
    let mut stale = Vec::new();
    for table in capture::TABLES {
        let tdir = dir.join(table);
        let Ok(entries) = fs::read_dir(&tdir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in &names {
            if n.ends_with(".parquet.open") {
                open.push((table, tdir.join(n)));
            } else if let Some(open_name) = n.strip_suffix(CHECKPOINT_SUFFIX) {
                // A checkpoint whose segment was sealed: listed (stale) or
                // not yet (the recorder died between rename and manifest).
                let Some(sealed) = open_name.strip_suffix(".open") else {
                    continue;
                };
                if names.iter().any(|m| m == open_name) {
                    continue;
                }
                if listed.contains(&format!("{table}/{sealed}")) {
                    stale.push(tdir.join(n));
                } else if names.iter().any(|m| m == sealed) {
                    adopt.push((table, tdir.join(open_name)));
                }
            }
        }
    }
    if open.is_empty() && adopt.is_empty() && manifest.state != CaptureState::Recording {
        for p in stale {
            let _ = fs::remove_file(p);
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
    for (table, open_path) in adopt {
        match adopt_sealed(dir, &open_path, table) {
            Ok((seg, ktime)) => {
                recovery.segments.push(seg.file.clone());
                recovery.rows += seg.rows;
                recovery.last_checkpoint_ktime_ns = recovery.last_checkpoint_ktime_ns.max(ktime);
                manifest.segments.push(seg);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    for p in stale {
        let _ = fs::remove_file(p);
    }
    for (table, path) in open {
        let s = salvage_open(dir, &path, table);
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
    let empty = capture::seal_missing_tables(dir, &manifest, capture::next_free_epoch(dir))?;
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
    let _ = fs::remove_file(dir.join(".reserve"));
    manifest.write(dir, key)?;
    // Evictions the recorder had listed but not carried out when it died.
    let leftover: Vec<_> = manifest
        .segments
        .iter()
        .filter(|s| s.evicted)
        .map(|s| dir.join(&s.file))
        .filter(|p| p.exists())
        .collect();
    capture::remove_evicted(&leftover);
    Ok(RecoverReport {
        changed: true,
        manifest,
        problems,
    })
}
