//! Checkpoints: while a segment is open the writer keeps, beside it, the
//! Parquet footer describing the row groups flushed so far and the file
//! length they end at. After `kill -9`, OOM or a power cut (or a write
//! error), an open segment is cut back to that length, the footer appended,
//! the rows read back and counted, and the file sealed; one without a
//! usable checkpoint is renamed `*.discarded`, never deleted.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::CaptureError;
use crate::fs::Dir;
use crate::integrity::hash_file;
use crate::manifest::{DiscardedSegment, Segment};
use crate::read::{batch_reader, next_batch};

/// What was made of an open segment after a crash or write error.
#[derive(Debug, Default)]
pub(crate) struct Salvage {
    pub segment: Option<Segment>,
    pub discarded: Option<crate::manifest::DiscardedSegment>,
    pub checkpoint_ktime_ns: u64,
    pub problem: Option<String>,
}

/// The sidecar holding an open segment's latest durable checkpoint (its
/// data was synced before it was written).
pub(crate) fn checkpoint_name(open_name: &str) -> String {
    format!("{open_name}{CHECKPOINT_SUFFIX}")
}

/// The sidecar holding an open segment's latest checkpoint as written, not
/// synced: what a killed recorder leaves (see `durable`).
pub(crate) fn live_checkpoint_name(open_name: &str) -> String {
    format!("{open_name}{LIVE_CHECKPOINT_SUFFIX}")
}

/// Suffix of an open segment's durable checkpoint file.
pub const CHECKPOINT_SUFFIX: &str = ".ckpt";
/// Suffix of its live copy.
pub const LIVE_CHECKPOINT_SUFFIX: &str = ".ckpt.live";

/// The open segment a checkpoint file (durable or live) belongs to.
pub(crate) fn checkpoint_of(name: &str) -> Option<&str> {
    name.strip_suffix(LIVE_CHECKPOINT_SUFFIX)
        .or_else(|| name.strip_suffix(CHECKPOINT_SUFFIX))
}

/// Removes both checkpoints of `open_name` (absent is fine).
pub(crate) fn remove_checkpoints(dir: &Dir, open_name: &str) -> Result<(), CaptureError> {
    dir.remove(&live_checkpoint_name(open_name))?;
    dir.remove(&checkpoint_name(open_name))
}
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

/// The checkpoints of the open segment `open_name` in `dir`, the one that
/// covers most first: the live copy (what a killed recorder wrote last),
/// then the durable one (what survives a power cut). Empty if it has none;
/// an error only when one exists and none decodes.
fn read_checkpoints(dir: &Dir, open_name: &str) -> Result<Vec<Checkpoint>, CaptureError> {
    let mut found = Vec::new();
    let mut last_error = None;
    for name in [live_checkpoint_name(open_name), checkpoint_name(open_name)] {
        if !dir.exists(&name) {
            continue;
        }
        let decoded = dir
            .read_bounded(&name, (MAX_FOOTER + HEADER + 32) as u64)
            .and_then(|bytes| {
                Checkpoint::decode(&bytes).map_err(|message| CaptureError::Recovery {
                    path: dir.child(&name),
                    message,
                })
            });
        match decoded {
            Ok(ck) => found.push(ck),
            Err(e) => last_error = Some(e),
        }
    }
    if let (true, Some(e)) = (found.is_empty(), last_error) {
        return Err(e);
    }
    found.sort_by_key(|c| std::cmp::Reverse((c.data_len, c.rows)));
    found.dedup_by_key(|c| (c.data_len, c.rows));
    Ok(found)
}

/// Seals the open segment `open_name` of `table` from its checkpoint (the
/// live one, or if its data did not reach the disk, the durable one), or
/// sets it aside.
pub(crate) fn salvage_open(dir: &Dir, open_name: &str, table: &str) -> Salvage {
    let aside = |promised: u64, reason: String| set_aside(dir, open_name, table, promised, reason);
    let checkpoints = match read_checkpoints(dir, open_name) {
        Ok(c) => c,
        Err(e) => return aside(0, e.to_string()),
    };
    let promised = checkpoints.first().map_or(0, |c| c.rows);
    let mut why = "no checkpoint: no rows had been flushed to it".to_owned();
    for ck in checkpoints.iter().filter(|c| c.rows > 0) {
        // Each try cuts the file back to its checkpoint: a later (shorter)
        // one is still whole.
        match seal_from_checkpoint(dir, open_name, table, ck) {
            Ok(seg) => {
                return Salvage {
                    segment: Some(seg),
                    checkpoint_ktime_ns: ck.ktime_ns,
                    ..Salvage::default()
                };
            }
            Err(e) => why = e.to_string(),
        }
    }
    aside(promised, why)
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
    let _ = remove_checkpoints(dir, open_name);
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
    let len = f
        .metadata()
        .map_err(CaptureError::io(&open_path, "inspect"))?
        .len();
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
    f.set_len(ck.data_len)
        .map_err(CaptureError::io(&open_path, "truncate"))?;
    f.seek(SeekFrom::End(0))
        .map_err(CaptureError::io(&open_path, "seek"))?;
    f.write_all(&ck.footer)
        .map_err(CaptureError::io(&open_path, "write"))?;
    f.sync_all().map_err(CaptureError::io(&open_path, "sync"))?;
    f.seek(SeekFrom::Start(0))
        .map_err(CaptureError::io(&open_path, "seek"))?;
    let rows = count_rows(f, &open_path, table)?;
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
    remove_checkpoints(dir, open_name)?;
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
        folded: None,
    })
}

/// Lists a segment that was sealed (complete file, renamed) but not yet in
/// the manifest when the recorder died; its checkpoint describes it.
pub(crate) fn adopt_sealed(
    dir: &Dir,
    open_name: &str,
    table: &str,
) -> Result<(Segment, u64), CaptureError> {
    let checkpoints = read_checkpoints(dir, open_name)?;
    let sealed = open_name.strip_suffix(".open").unwrap_or(open_name);
    let Some(newest) = checkpoints.first() else {
        return Err(CaptureError::Recovery {
            path: dir.child(&checkpoint_name(open_name)),
            message: "checkpoint vanished during recovery".into(),
        });
    };
    // The file as sealed is whole when it reads back the rows of its last
    // checkpoint (a power cut may have kept the rename, not the data).
    let rows = count_rows(dir.open_file(sealed)?, &dir.child(sealed), table);
    match rows {
        Ok(rows) if rows == newest.rows => {
            let seg = recovered_segment(dir, sealed, table, newest)?;
            remove_checkpoints(dir, open_name)?;
            Ok((seg, newest.ktime_ns))
        }
        _ => {
            // Back to an open segment, sealed again from a checkpoint whose
            // data reached the disk.
            dir.rename(sealed, open_name)?;
            let s = salvage_open(dir, open_name, table);
            match s.segment {
                Some(seg) => Ok((seg, s.checkpoint_ktime_ns)),
                None => Err(CaptureError::Recovery {
                    path: dir.child(sealed),
                    message: format!(
                        "is not listed in the manifest and does not read back its checkpoint's {} rows: {}",
                        newest.rows,
                        s.problem.unwrap_or_else(|| "set aside".into())
                    ),
                }),
            }
        }
    }
}

/// Reads every row of a Parquet file: proves the recovered file decodes.
fn count_rows(f: std::fs::File, path: &Path, table: &str) -> Result<u64, CaptureError> {
    let (mut reader, _) = batch_reader(path, f, table)?;
    let mut rows = 0u64;
    while let Some(batch) = next_batch(path, &mut reader)? {
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}
