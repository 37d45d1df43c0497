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
use std::ops::RangeInclusive;
use std::path::Path;

use crate::checkpoint::remove_checkpoints;
use crate::control::Pin;
use crate::durable::Job;
use crate::error::CaptureError;
use crate::folder::create_capture_dir;
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
use crate::write::{next_free_epoch, seal_missing_tables};

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

/// One attempt at a cut: what its steps share.
struct Attempt<'a> {
    files: &'a CaptureFiles,
    /// The source's manifest as this attempt read it.
    m: &'a Manifest,
    out: &'a Dir,
    window: CutWindow,
}

/// One attempt at the cut of `window` into `out`, of the source as `m`
/// lists it.
fn cut_from(
    files: &CaptureFiles,
    m: &Manifest,
    out: &Dir,
    window: CutWindow,
    key: Option<&SigningKey>,
) -> Result<CutReport, CaptureError> {
    let at = Attempt {
        files,
        m,
        out,
        window,
    };
    at.check_source()?;
    let live: Vec<&Segment> = m.segments.iter().filter(|s| !s.evicted).collect();
    let sets = window_sets(&live, window);
    let clipped = window_clipped(m, window);
    let plan = plan_segments(&live, &sets, window);

    let mut report = CutReport {
        manifest: Manifest::new(&m.node_name, m.realtime_offset_ns, window.start_ktime_ns),
        linked: 0,
        copied: 0,
        rewritten: 0,
        clipped,
    };
    let segments = at.take_segments(plan, &mut report)?;
    at.describe(&mut report.manifest, *sets.start(), clipped, segments)?;
    at.seal_tables(&mut report.manifest)?;
    report.manifest.write(out, key)?;
    Ok(report)
}

/// The segment sets (epochs) holding the window's rows.
fn window_sets(live: &[&Segment], window: CutWindow) -> RangeInclusive<u32> {
    let timed = |s: &&&Segment| (s.table == EVENTS || s.table == LIFECYCLE) && s.rows > 0;
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
    match (first, last) {
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
    }
}

/// Whether the source evicted events at or after the window's start.
fn window_clipped(m: &Manifest, window: CutWindow) -> bool {
    m.segments.iter().any(|s| {
        let events = s
            .folded
            .as_ref()
            .map_or(if s.table == EVENTS { s.rows } else { 0 }, |f| {
                f.rows.get(EVENTS).copied().unwrap_or(0)
            });
        s.evicted && events > 0 && s.last_ktime_ns >= window.start_ktime_ns
    })
}

/// The live segments the cut takes, in the source's order, and how.
fn plan_segments<'s>(
    live: &[&'s Segment],
    sets: &RangeInclusive<u32>,
    window: CutWindow,
) -> Vec<(&'s Segment, Take)> {
    let mut plan: Vec<(&Segment, Take)> = Vec::new();
    for &seg in live {
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
    plan
}

impl Attempt<'_> {
    /// A `Cut` error about the source's manifest.
    fn refuse(&self, message: String) -> CaptureError {
        CaptureError::Cut {
            path: self.files.root().child(crate::manifest::MANIFEST_FILE),
            message,
        }
    }

    /// Refuses a source this build cannot cut faithfully.
    fn check_source(&self) -> Result<(), CaptureError> {
        let m = self.m;
        if m.format_version != FORMAT_VERSION {
            return Err(self.refuse(format!(
                "format {}: cuts are made of captures this build writes (format {FORMAT_VERSION}); copy older captures whole",
                m.format_version
            )));
        }
        if let Some(p) = m.check_chain().first() {
            return Err(self.refuse(format!("{p}; run credtrail-replay --verify on it")));
        }
        Ok(())
    }

    /// Puts the planned segments into the cut, in plan order, counting
    /// them in `report`; returns the cut's segment records.
    fn take_segments(
        &self,
        plan: Vec<(&Segment, Take)>,
        report: &mut CutReport,
    ) -> Result<Vec<Segment>, CaptureError> {
        let mut segments = Vec::new();
        // Made at the first rewritten segment, reused for the rest.
        let mut events = None::<TableWriter<Event>>;
        for (seg, take) in plan {
            let (table, name) = segment_location(seg).map_err(|m| self.refuse(m))?;
            match take {
                Take::Whole => {
                    if self.take_whole(seg, table, name)? {
                        report.linked += 1;
                    } else {
                        report.copied += 1;
                    }
                    segments.push(Segment {
                        chain: None,
                        evicted: false,
                        ..(*seg).clone()
                    });
                }
                Take::Filter => {
                    if self.take_filtered(seg, &mut events, &mut segments)? {
                        report.rewritten += 1;
                    }
                }
            }
        }
        Ok(segments)
    }

    /// Links (true) or copies (false) `seg` into the cut's `table` folder
    /// and checks the result against its record.
    fn take_whole(&self, seg: &Segment, table: &str, name: &str) -> Result<bool, CaptureError> {
        let (from, _) = self.files.locate(seg)?;
        let to = self.out.create_subdir(table)?;
        let linked = from.link_or_copy(name, &to)?;
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
        Ok(linked)
    }

    /// Rewrites the events segment `seg` keeping the window's events,
    /// adding its record to `segments`; false when none is kept.
    fn take_filtered(
        &self,
        seg: &Segment,
        events: &mut Option<TableWriter<Event>>,
        segments: &mut Vec<Segment>,
    ) -> Result<bool, CaptureError> {
        let window = self.window;
        let (path, file) = self.files.open_checked(seg)?;
        let rows: Vec<Event> = crate::read::decode_segment(&path, file)?;
        let epoch = epoch_of(&seg.file).unwrap_or(0);
        let w = match events.as_mut() {
            Some(w) => w,
            None => events.insert(TableWriter::new(self.out)?),
        };
        let mut kept = 0;
        for ev in rows
            .iter()
            .filter(|e| (window.start_ktime_ns..=window.end_ktime_ns).contains(&e.ktime_ns))
        {
            w.push(epoch, ev)?;
            kept += 1;
        }
        if kept == 0 {
            return Ok(false);
        }
        let mut job = Job::default();
        segments.extend(w.seal(&mut job)?);
        job.run(self.out, true)?;
        // Listed below: its checkpoints have no use.
        let name = format!("part-{epoch:05}.parquet.open");
        remove_checkpoints(&w.dir, &name)?;
        Ok(true)
    }

    /// Fills the cut's manifest from the source's: host facts, settings
    /// (with the cut's own), counters since set `first_set`, `segments`.
    fn describe(
        &self,
        cm: &mut Manifest,
        first_set: u32,
        clipped: bool,
        segments: Vec<Segment>,
    ) -> Result<(), CaptureError> {
        let (m, window) = (self.m, self.window);
        cm.kernel_release.clone_from(&m.kernel_release);
        cm.boot_id.clone_from(&m.boot_id);
        cm.hooks.clone_from(&m.hooks);
        cm.settings.clone_from(&m.settings);
        let (base, since) = counters_before(self.files, m, first_set)?;
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
        cm.counters = cut_counters(m, &base, &segments);
        cm.segments = segments;
        Ok(())
    }

    /// Seals every table the cut has no segment of and writes its final
    /// `captures` row, listing both in `cm`, which it marks sealed.
    fn seal_tables(&self, cm: &mut Manifest) -> Result<(), CaptureError> {
        let (m, out, window) = (self.m, self.out, self.window);
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
        Ok(())
    }
}

/// The cut's counters: the source's since `base`, with the rows written
/// those the cut holds and nothing evicted.
fn cut_counters(m: &Manifest, base: &Counters, segments: &[Segment]) -> Counters {
    let mut counters = m.counters.since(base);
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
    counters
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
