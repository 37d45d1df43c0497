//! The manifest's hash chain: each segment record linked to the one
//! before it from a link of the fixed header ([`Manifest::genesis`]), and
//! a head over the final state. Extended whenever the manifest is written
//! (and then signed), so writing the manifest is here too; runs of evicted
//! records are folded into it; [`Manifest::check_chain`] checks it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::CaptureError;
use crate::fs::Dir;
use crate::manifest::{
    CaptureState, Counters, FOLDED, Folded, Instant, MANIFEST_FILE, Manifest, Recovery,
    SIGNATURE_FILE, Segment, SigningKey,
};

/// The first version whose folded records carry `chain_in`.
const CHAINED_FOLDS: u32 = 8;

/// The parts of a manifest fixed at start, hashed into the first link.
#[derive(Serialize)]
struct ChainHeader<'a> {
    format: &'a str,
    format_version: u32,
    node_name: &'a str,
    kernel_release: &'a str,
    boot_id: &'a str,
    realtime_offset_ns: i64,
    start: &'a Instant,
    hooks: &'a [String],
    settings: &'a BTreeMap<String, serde_json::Value>,
}

/// A segment record as hashed: everything but the link itself and the
/// eviction mark (set later, when the file is deleted).
#[derive(Serialize)]
struct ChainSegment<'a> {
    table: &'a str,
    file: &'a str,
    rows: u64,
    bytes: u64,
    sha256: &'a str,
    first_ktime_ns: u64,
    last_ktime_ns: u64,
    recovered: bool,
}

/// The final state, hashed into the head.
#[derive(Serialize)]
struct ChainTail<'a> {
    state: CaptureState,
    end: &'a Option<Instant>,
    counters: &'a Counters,
    error: &'a Option<String>,
    recovery: &'a Option<Recovery>,
    evicted: Vec<&'a str>,
    /// Format 7's folds, their counts only. Left out while empty: heads of
    /// captures without folds are as before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    folded: Vec<&'a Folded>,
    /// Format 8's: each folded record whole (its file range, times, links
    /// in and out, counts), so that no part of it can change unseen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    folds: Vec<FoldTail<'a>>,
    /// Format 9's losses by process. Left out while empty: heads of
    /// captures without losses are as before.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    lost_by_pid: &'a BTreeMap<u32, u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    folded_by_pid: &'a BTreeMap<u32, u64>,
}

#[derive(Serialize)]
struct FoldTail<'a> {
    file: &'a str,
    first_ktime_ns: u64,
    last_ktime_ns: u64,
    chain: &'a Option<String>,
    #[serde(flatten)]
    folded: &'a Folded,
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("manifest parts serialize")
}

impl Manifest {
    /// The chain's first link: sha256 of the fixed header.
    pub fn genesis(&self) -> String {
        let h = ChainHeader {
            format: &self.format,
            format_version: self.format_version,
            node_name: &self.node_name,
            kernel_release: &self.kernel_release,
            boot_id: &self.boot_id,
            realtime_offset_ns: self.realtime_offset_ns,
            start: &self.start,
            hooks: &self.hooks,
            settings: &self.settings,
        };
        sha256_hex(&[b"credtrail-chain-v1\n", &json(&h)])
    }

    /// The link of `seg` after `prev`: sha256(prev || compact JSON of the
    /// segment record without `chain` and `evicted`).
    pub fn link(prev: &str, seg: &Segment) -> String {
        let s = ChainSegment {
            table: &seg.table,
            file: &seg.file,
            rows: seg.rows,
            bytes: seg.bytes,
            sha256: &seg.sha256,
            first_ktime_ns: seg.first_ktime_ns,
            last_ktime_ns: seg.last_ktime_ns,
            recovered: seg.recovered,
        };
        sha256_hex(&[prev.as_bytes(), b"\n", &json(&s)])
    }

    fn head_after(&self, prev: &str) -> String {
        let mut t = ChainTail {
            state: self.state,
            end: &self.end,
            counters: &self.counters,
            error: &self.error,
            recovery: &self.recovery,
            evicted: self
                .segments
                .iter()
                .filter(|s| s.evicted)
                .map(|s| s.file.as_str())
                .collect(),
            folded: Vec::new(),
            folds: Vec::new(),
            lost_by_pid: &self.lost_by_pid,
            folded_by_pid: &self.folded_by_pid,
        };
        for s in &self.segments {
            let Some(f) = &s.folded else { continue };
            if self.format_version >= CHAINED_FOLDS {
                t.folds.push(FoldTail {
                    file: &s.file,
                    first_ktime_ns: s.first_ktime_ns,
                    last_ktime_ns: s.last_ktime_ns,
                    chain: &s.chain,
                    folded: f,
                });
            } else {
                t.folded.push(f);
            }
        }
        sha256_hex(&[prev.as_bytes(), b"\n", &json(&t)])
    }

    /// Links new segments onto the chain and recomputes the head. Links
    /// already made are history and never recomputed.
    fn extend_chain(&mut self) {
        let mut prev = self.genesis();
        for seg in &mut self.segments {
            if seg.chain.is_none() && seg.folded.is_none() {
                seg.chain = Some(Manifest::link(&prev, seg));
            }
            prev = seg.chain.clone().unwrap_or_default();
        }
        self.chain_head = Some(self.head_after(&prev));
    }

    /// Recomputes the chain from the header: any edit, removal or reorder of
    /// a segment record, or of the final state, breaks it. Returns the
    /// problems found (none for a format-1 manifest, which has no chain).
    pub fn check_chain(&self) -> Vec<String> {
        if self.format_version < 2 {
            if self.chain_head.is_some() || self.segments.iter().any(|s| s.chain.is_some()) {
                // Format 1 has no chain: one claiming it carries links was
                // lowered to skip this check.
                return vec![format!(
                    "format_version {} yet it carries hash chain links: the version was lowered to skip the chain check",
                    self.format_version
                )];
            }
            return Vec::new();
        }
        let mut problems = Vec::new();
        let mut prev = self.genesis();
        for seg in &self.segments {
            if let Some(f) = &seg.folded {
                // The records before a fold still hash to the link it
                // follows: an edit before it breaks the chain here.
                if self.format_version >= CHAINED_FOLDS && f.chain_in.as_ref() != Some(&prev) {
                    problems.push(format!(
                        "folded records {}: hash chain broken before them (an earlier record or the header was edited, removed or reordered)",
                        seg.file
                    ));
                }
                match &seg.chain {
                    Some(c) => prev = c.clone(),
                    None => {
                        problems.push(format!("folded records {}: no hash chain link", seg.file))
                    }
                }
                continue;
            }
            let want = Manifest::link(&prev, seg);
            match &seg.chain {
                Some(c) if *c == want => {}
                Some(_) => problems.push(format!(
                    "segment {}: hash chain broken (this record, an earlier one or the header was edited, removed or reordered)",
                    seg.file
                )),
                None => problems.push(format!("segment {}: no hash chain link", seg.file)),
            }
            prev = seg.chain.clone().unwrap_or(want);
        }
        let head = self.head_after(&prev);
        if self.chain_head.as_deref() != Some(head.as_str()) && problems.is_empty() {
            problems.push(
                "chain head differs: state, end, counters, losses by process, error, recovery or evictions were edited"
                    .to_owned(),
            );
        }
        problems
    }

    /// The chain head recomputed from the header and every record, as
    /// `--expect-head` needs it; None when the manifest has no chain
    /// (format 1) or its chain is broken.
    pub fn recomputed_head(&self) -> Option<String> {
        if self.format_version < 2 || !self.check_chain().is_empty() {
            return None;
        }
        // Format 7 took a fold's link as given: its head does not cover the
        // records before the last fold, so it proves nothing about them.
        if self.format_version < CHAINED_FOLDS && self.segments.iter().any(|s| s.folded.is_some()) {
            return None;
        }
        let mut prev = self.genesis();
        for seg in &self.segments {
            prev = match (&seg.folded, &seg.chain) {
                (Some(_), Some(c)) => c.clone(),
                _ => Manifest::link(&prev, seg),
            };
        }
        Some(self.head_after(&prev))
    }

    /// Folds every run of at least `min_run` consecutive evicted records
    /// into one: a flight recorder evicts a set every few seconds for
    /// weeks, and each record would otherwise stay (for the chain) and be
    /// rewritten with every manifest. Returns the records removed.
    pub fn fold_evicted(&mut self, min_run: usize) -> usize {
        let before = self.segments.len();
        let genesis = self.genesis();
        let mut out: Vec<Segment> = Vec::with_capacity(before);
        let mut run: Vec<Segment> = Vec::new();
        let flush = |run: &mut Vec<Segment>, out: &mut Vec<Segment>| {
            // The link the run follows: the record before it, or the header.
            let chain_in = match run.first().and_then(|s| s.folded.as_ref()) {
                Some(f) => f.chain_in.clone(),
                None => match out.last() {
                    Some(prev) => prev.chain.clone(),
                    None => Some(genesis.clone()),
                },
            };
            if run.len() < min_run.max(2) || chain_in.is_none() {
                out.append(run);
                return;
            }
            let mut f = Folded {
                chain_in,
                ..Folded::default()
            };
            for s in run.iter() {
                match &s.folded {
                    Some(g) => {
                        f.records += g.records;
                        for (table, rows) in &g.rows {
                            *f.rows.entry(table.clone()).or_default() += rows;
                        }
                    }
                    None => {
                        f.records += 1;
                        *f.rows.entry(s.table.clone()).or_default() += s.rows;
                    }
                }
            }
            let first = run[0].file.split("..").next().unwrap_or_default();
            let last = run[run.len() - 1]
                .file
                .rsplit("..")
                .next()
                .unwrap_or_default();
            out.push(Segment {
                table: FOLDED.to_owned(),
                file: format!("{first}..{last}"),
                rows: 0,
                bytes: 0,
                sha256: String::new(),
                first_ktime_ns: run.iter().map(|s| s.first_ktime_ns).min().unwrap_or(0),
                last_ktime_ns: run.iter().map(|s| s.last_ktime_ns).max().unwrap_or(0),
                recovered: false,
                evicted: true,
                chain: run[run.len() - 1].chain.clone(),
                folded: Some(f),
            });
            run.clear();
        };
        for seg in std::mem::take(&mut self.segments) {
            // Only linked records fold: the stub carries the last link.
            if seg.evicted && seg.chain.is_some() {
                run.push(seg);
            } else {
                flush(&mut run, &mut out);
                out.push(seg);
            }
        }
        flush(&mut run, &mut out);
        self.segments = out;
        before - self.segments.len()
    }

    /// Extends the chain, then replaces `DIR/manifest.json` atomically
    /// (temp file, fsync, rename, fsync of the directory): a crash leaves the
    /// old or the new manifest. With a key, `manifest.json.sig` follows.
    pub fn write(&mut self, dir: &Dir, key: Option<&SigningKey>) -> Result<(), CaptureError> {
        self.write_with(dir, key, true)
    }

    /// Like [`Manifest::write`], without fsync: for the frequent checkpoints,
    /// where the rename alone makes a killed recorder leave a whole file.
    pub fn checkpoint(&mut self, dir: &Dir, key: Option<&SigningKey>) -> Result<(), CaptureError> {
        self.write_with(dir, key, false)
    }

    fn write_with(
        &mut self,
        dir: &Dir,
        key: Option<&SigningKey>,
        durable: bool,
    ) -> Result<(), CaptureError> {
        let (text, sig) = self.encode(key);
        dir.replace_file(MANIFEST_FILE, &text, durable)?;
        if let Some(sig) = sig {
            dir.replace_file(SIGNATURE_FILE, &sig, durable)?;
        }
        Ok(())
    }

    /// Extends the chain and returns the file's bytes and, with a key, the
    /// signature's: what [`Manifest::write`] writes.
    pub(crate) fn encode(&mut self, key: Option<&SigningKey>) -> (Vec<u8>, Option<Vec<u8>>) {
        if self.format_version >= 2 {
            self.extend_chain();
        }
        let mut text = serde_json::to_vec_pretty(self).expect("manifest serializes");
        text.push(b'\n');
        let sig = key.map(|key| {
            use ed25519_dalek::Signer;
            key.sign(&text).to_bytes().to_vec()
        });
        (text, sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counters of format 2 hash exactly as they did: a capture whose
    /// chain head was computed before format 3's counters existed still
    /// verifies.
    #[test]
    fn format_2_counters_hash_as_before() {
        let json = serde_json::to_value(Counters::default()).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "decode_errors",
                "enter_store_failures",
                "events_evicted",
                "events_lost_io",
                "events_written",
                "exec_without_stash",
                "exit_without_enter",
                "kernel_events",
                "kernel_lifecycle",
                "lifecycle_evicted",
                "lifecycle_lost_io",
                "lifecycle_ringbuf_full",
                "lifecycle_written",
                "ringbuf_full",
            ]
        );
    }
}
