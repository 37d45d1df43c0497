//! A cut: a complete, self-contained, verifiable capture of a time window
//! of another capture (usually one a flight recorder is still writing),
//! made of its sealed segments: hard links where the file system allows,
//! copies otherwise. Events outside the window are left out (the one or
//! two segments that straddle its edges are rewritten); the process
//! snapshot, lifecycle rows, containers and user namespaces the window's
//! events rest on come whole, so replay rebuilds their enrichment exactly.
//! The cut has its own manifest, hash chain, `captures` row and signature.
//!
//! The source's segments are pinned (see `control`) before its manifest is
//! read, so its recorder evicts none of them until the cut is complete.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::remove_checkpoints;
use crate::control::Pin;
use crate::durable::Job;
use crate::error::CaptureError;
use crate::fs::Dir;
use crate::manifest::{
    CaptureState, Counters, FORMAT_VERSION, Instant, Manifest, Segment, SigningKey,
};
use crate::model::Event;
use crate::read::CaptureFiles;
use crate::segment::TableWriter;
use crate::status::{capture_id, read_rows, write_status};
use crate::table::{
    CAPTURES, CONTAINERS, EVENTS, LIFECYCLE, PROCESSES, TABLES, USER_NAMESPACES, epoch_of,
    segment_location,
};
use crate::write::{create_capture_dir, next_free_epoch, seal_missing_tables};

/// The boot-clock window a cut keeps the events of, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutWindow {
    pub start_ktime_ns: u64,
    pub end_ktime_ns: u64,
}

/// What a cut did.
#[derive(Debug, Clone)]
pub struct CutReport {
    pub manifest: Manifest,
    /// Segments hard-linked, copied (another file system), and rewritten
    /// (events straddling an edge of the window).
    pub linked: usize,
    pub copied: usize,
    pub rewritten: usize,
    /// Part of the window was evicted from the source before the cut.
    pub clipped: bool,
}

/// How one source segment enters the cut.
enum Take {
    Whole,
    /// Events, keeping those inside the window.
    Filter,
}

/// Cuts `window` of the capture `source` into the new capture `dest`.
/// The caller has had the source's recorder seal its open segments (see
/// `control::request_seal`); rows still open are not in the cut.
/// `pin`: one the caller made earlier (the recorder, before its next
/// eviction); else the cut makes its own.
pub fn cut(
    source: &Path,
    dest: &Path,
    window: CutWindow,
    key: Option<&SigningKey>,
    pin: Option<Pin>,
) -> Result<CutReport, CaptureError> {
    let files = CaptureFiles::open(source)?;
    let started = Manifest::read_in(files.root())?.start.ktime_ns;
    let window = CutWindow {
        start_ktime_ns: window.start_ktime_ns.max(started),
        ..window
    };
    let _pin = match pin {
        Some(p) => p,
        None => Pin::new(files.root(), window.start_ktime_ns)?,
    };
    if let Some(ms) = std::env::var("CREDTRAIL_TEST_CUT_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // Tests: hold the pin while the recorder runs over its budget.
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let out = create_capture_dir(dest)?;
    let made = (|| {
        // A segment evicted between our read of the manifest and the pin
        // reaching the recorder is gone when linked: read again.
        for attempt in 0.. {
            let m = Manifest::read_in(files.root())?;
            match cut_from(&files, &m, &out, window, key) {
                Err(CaptureError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 3 =>
                {
                    clear(&out)?;
                }
                r => return r,
            }
        }
        unreachable!("the last attempt returns")
    })();
    if made.is_err() {
        // A cut that failed leaves nothing that looks like a capture.
        let _ = clear(&out);
        let _ = std::fs::remove_dir(dest);
    }
    made
}

/// Removes what a failed attempt wrote into the new capture folder.
fn clear(out: &Dir) -> Result<(), CaptureError> {
    for name in out.names()? {
        if let Ok(sub) = out.subdir(&name) {
            for f in sub.names()? {
                sub.remove(&f)?;
            }
            std::fs::remove_dir(out.child(&name))
                .map_err(CaptureError::io(&out.child(&name), "remove"))?;
        } else {
            out.remove(&name)?;
        }
    }
    Ok(())
}

fn cut_from(
    files: &CaptureFiles,
    m: &Manifest,
    out: &Dir,
    window: CutWindow,
    key: Option<&SigningKey>,
) -> Result<CutReport, CaptureError> {
    let manifest_path = files.root().child(crate::manifest::MANIFEST_FILE);
    let refuse = |message: String| CaptureError::Cut {
        path: manifest_path.clone(),
        message,
    };
    if m.format_version != FORMAT_VERSION {
        return Err(refuse(format!(
            "format {}: cuts are made of captures this build writes (format {FORMAT_VERSION}); copy older captures whole",
            m.format_version
        )));
    }
    if let Some(p) = m.check_chain().first() {
        return Err(refuse(format!("{p}; run credtrail-replay --verify on it")));
    }
    let timed = |s: &&&Segment| (s.table == EVENTS || s.table == LIFECYCLE) && s.rows > 0;
    let live: Vec<&Segment> = m.segments.iter().filter(|s| !s.evicted).collect();
    let first = live
        .iter()
        .filter(timed)
        .filter(|s| s.last_ktime_ns >= window.start_ktime_ns)
        .filter_map(|s| epoch_of(&s.file))
        .min();
    let last = live
        .iter()
        .filter(timed)
        .filter(|s| s.first_ktime_ns <= window.end_ktime_ns)
        .filter_map(|s| epoch_of(&s.file))
        .max();
    let sets = match (first, last) {
        (Some(f), Some(l)) if f <= l => f..=l,
        // No row in the window: the newest snapshot before its end alone.
        _ => {
            let e = live
                .iter()
                .filter(|s| s.table == PROCESSES && s.first_ktime_ns <= window.end_ktime_ns)
                .filter_map(|s| epoch_of(&s.file))
                .max()
                .unwrap_or(0);
            e..=e
        }
    };
    let clipped = m.segments.iter().any(|s| {
        let events = s
            .folded
            .as_ref()
            .map_or(if s.table == EVENTS { s.rows } else { 0 }, |f| {
                f.rows.get(EVENTS).copied().unwrap_or(0)
            });
        s.evicted && events > 0 && s.last_ktime_ns >= window.start_ktime_ns
    });

    let mut plan: Vec<(&Segment, Take)> = Vec::new();
    for seg in &live {
        let Some(e) = epoch_of(&seg.file) else {
            continue;
        };
        match seg.table.as_str() {
            CAPTURES => {}
            // Metadata later rows rest on, whatever its age.
            CONTAINERS | USER_NAMESPACES if e <= *sets.end() => plan.push((seg, Take::Whole)),
            EVENTS if sets.contains(&e) => {
                if seg.rows > 0
                    && seg.first_ktime_ns >= window.start_ktime_ns
                    && seg.last_ktime_ns <= window.end_ktime_ns
                {
                    plan.push((seg, Take::Whole));
                } else if seg.rows > 0 {
                    plan.push((seg, Take::Filter));
                }
            }
            LIFECYCLE | PROCESSES if sets.contains(&e) => plan.push((seg, Take::Whole)),
            _ => {}
        }
    }

    let mut report = CutReport {
        manifest: Manifest::new(&m.node_name, m.realtime_offset_ns, window.start_ktime_ns),
        linked: 0,
        copied: 0,
        rewritten: 0,
        clipped,
    };
    let mut segments = Vec::new();
    let mut events = None::<TableWriter<Event>>;
    for (seg, take) in plan {
        let (table, name) = segment_location(seg).map_err(refuse)?;
        match take {
            Take::Whole => {
                let (from, _) = files.locate(seg)?;
                let to = out.create_subdir(table)?;
                if from.link_or_copy(name, &to)? {
                    report.linked += 1;
                } else {
                    report.copied += 1;
                }
                // The bytes the cut holds are the bytes the source listed.
                let (bytes, sha256) = crate::integrity::hash_file(&to, name)?;
                if bytes != seg.bytes || sha256 != seg.sha256 {
                    return Err(CaptureError::Integrity {
                        path: from.child(name),
                        message: format!(
                            "is {bytes} bytes with sha256 {sha256}; the manifest lists {} bytes, {}",
                            seg.bytes, seg.sha256
                        ),
                    });
                }
                segments.push(Segment {
                    chain: None,
                    evicted: false,
                    ..(*seg).clone()
                });
            }
            Take::Filter => {
                let (path, file) = files.open_checked(seg)?;
                let rows: Vec<Event> = crate::read::decode_segment(&path, file)?;
                let epoch = epoch_of(&seg.file).unwrap_or(0);
                let w = match events.as_mut() {
                    Some(w) => w,
                    None => events.insert(TableWriter::new(out)?),
                };
                let mut kept = 0;
                for ev in rows
                    .iter()
                    .filter(|e| (window.start_ktime_ns..=window.end_ktime_ns).contains(&e.ktime_ns))
                {
                    w.push(epoch, ev)?;
                    kept += 1;
                }
                if kept > 0 {
                    let mut job = Job::default();
                    segments.extend(w.seal(&mut job)?);
                    job.run(out, true)?;
                    // Listed below: its checkpoints have no use.
                    let name = format!("part-{epoch:05}.parquet.open");
                    remove_checkpoints(&w.dir, &name)?;
                    report.rewritten += 1;
                }
            }
        }
    }

    let cm = &mut report.manifest;
    cm.kernel_release.clone_from(&m.kernel_release);
    cm.boot_id.clone_from(&m.boot_id);
    cm.hooks.clone_from(&m.hooks);
    cm.settings.clone_from(&m.settings);
    let (base, since) = counters_before(files, m, *sets.start())?;
    cm.settings.insert(
        "cut".into(),
        serde_json::json!({
            "source_capture_id": capture_id(m),
            "source_chain_head": m.chain_head,
            "window_start": Instant::at(window.start_ktime_ns, m.realtime_offset_ns).time,
            "window_end": Instant::at(window.end_ktime_ns, m.realtime_offset_ns).time,
            "counters_since": since,
            "clipped": clipped,
        }),
    );
    let mut counters = m.counters.since(&base);
    counters.events_written = segments
        .iter()
        .filter(|s| s.table == EVENTS)
        .map(|s| s.rows)
        .sum();
    counters.lifecycle_written = segments
        .iter()
        .filter(|s| s.table == LIFECYCLE)
        .map(|s| s.rows)
        .sum();
    (counters.events_evicted, counters.lifecycle_evicted) = (0, 0);
    cm.counters = counters;
    cm.segments = segments;
    let tables: Vec<Dir> = TABLES
        .iter()
        .map(|t| out.create_subdir(t))
        .collect::<Result<_, _>>()?;
    let epoch = next_free_epoch(&tables);
    let empty = seal_missing_tables(out, cm, epoch)?;
    cm.segments.extend(empty);
    cm.end = Some(Instant::at(window.end_ktime_ns, m.realtime_offset_ns));
    cm.state = CaptureState::Sealed;
    let status = write_status(&out.create_subdir(CAPTURES)?, cm, epoch + 1, true, None)?;
    cm.segments.push(status);
    cm.write(out, key)?;
    Ok(report)
}

/// The source's counters as the set before `set` was sealed (its
/// `captures` row), and what they are counted since.
fn counters_before(
    files: &CaptureFiles,
    m: &Manifest,
    set: u32,
) -> Result<(Counters, String), CaptureError> {
    let start = || (Counters::default(), "the source capture's start".to_owned());
    let Some(prev) = set.checked_sub(1) else {
        return Ok(start());
    };
    let row = m
        .segments_of(CAPTURES)
        .filter(|s| epoch_of(&s.file) == Some(prev))
        .last();
    let Some(seg) = row else {
        return Ok(start());
    };
    let (path, file) = files.open_checked(seg)?;
    let rows = read_rows(&path, file)?;
    Ok(match rows.into_iter().next() {
        Some(r) => (r.counters, format!("the source's set {prev} sealed")),
        None => start(),
    })
}

impl Counters {
    /// Each counter less its value in `base` (what was counted since).
    pub fn since(&self, base: &Counters) -> Counters {
        let (now, then) = (
            serde_json::to_value(self).expect("counters serialize"),
            serde_json::to_value(base).expect("counters serialize"),
        );
        let diff: BTreeMap<String, u64> = now
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let was = then.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                (k.clone(), v.as_u64().unwrap_or(0).saturating_sub(was))
            })
            .collect();
        serde_json::from_value(serde_json::to_value(diff).expect("a map serializes"))
            .expect("the same fields deserialize")
    }
}
