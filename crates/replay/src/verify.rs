//! `credtrail-replay --verify`: every file against the manifest, the hash
//! chain, the expected head and the signature, and every event's enriched
//! columns recomputed through the replay engine.

use std::io::Write;
use std::path::Path;

use credtrail_capture::manifest::{self, CaptureState, VerifyingKey};
use credtrail_capture::model::{ContainerRow, Event, ProcEvent, UsernsRow};
use credtrail_capture::storage::{self, micros};
use credtrail_capture::{self as capture, Capture, sign, status};
use credtrail_cli::progress::Progress;
use credtrail_cli::term::safe;
use credtrail_pipeline::playback::{enricher, open};
use credtrail_pipeline::sink::{Record, Sink};
use credtrail_ship::localize::Localized;

/// Problems `--verify` prints at most, per capture.
const MAX_PROBLEM_LINES: usize = 20;

/// The outcome of `--verify`.
#[derive(Debug, Default)]
pub struct Verification {
    pub segments: usize,
    pub events: u64,
    pub problems: Vec<String>,
    /// Problems found beyond those kept in `problems` (counted, not kept:
    /// a capture whose every event disagrees must not fill memory).
    pub more_problems: u64,
    /// Facts worth saying that are not failures (format 1, evictions).
    pub notes: Vec<String>,
    /// The manifest's chain head, to compare with the one the recorder
    /// printed when it finished.
    pub chain_head: Option<String>,
    /// What the checks that passed prove, for the OK line.
    pub proved: Vec<&'static str>,
}

/// Compares each re-enriched event with the stored one.
struct CompareSink {
    expected: Option<Event>,
    /// The capture predates format 3: it has no namespace columns to compare.
    legacy: bool,
    /// The capture predates format 4: it stored no `exe` to compare.
    no_exe: bool,
    /// The capture predates format 5: its process start times have
    /// nanoseconds, which the enrichment now leaves out.
    nanos: bool,
    checked: u64,
    /// Rows with a `repeat_count`, and the calls they hold.
    folded: (u64, u64),
    /// The first [`MAX_PROBLEM_LINES`] disagreements; `more` counts the rest.
    problems: Vec<String>,
    more: u64,
}

impl Sink for CompareSink {
    fn lifecycle(&mut self, _p: &ProcEvent) -> anyhow::Result<()> {
        Ok(())
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.checked += 1;
        if let Some(n) = e.repeat_count {
            self.folded = (self.folded.0 + 1, self.folded.1.saturating_add(n));
        }
        let expected = self.expected.take().map(|mut s| {
            if self.legacy {
                s.copy_namespace_enrichment(e);
            }
            if self.no_exe {
                s.exe.clone_from(&e.exe);
            }
            if self.nanos {
                s.start_time = s.start_time.map(micros);
                s.parent_start_time = s.parent_start_time.map(micros);
            }
            s
        });
        match expected {
            Some(s) if &s == e => {}
            Some(_) | None if self.problems.len() >= MAX_PROBLEM_LINES => self.more += 1,
            Some(s) => {
                let a = serde_json::to_value(s)?;
                let b = serde_json::to_value(e)?;
                let cols: Vec<&String> = a
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, v)| b.get(k.as_str()) != Some(*v))
                    .map(|(k, _)| k)
                    .collect();
                self.problems.push(format!(
                    "event seq {}: stored enrichment differs in {cols:?}",
                    e.seq
                ));
            }
            None => self
                .problems
                .push(format!("event seq {} is not stored", e.seq)),
        }
        Ok(())
    }

    fn container(&mut self, _c: &ContainerRow) -> anyhow::Result<()> {
        Ok(())
    }

    fn user_namespace(&mut self, _u: &UsernsRow) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What `--verify` checks beyond the capture itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect<'a> {
    /// Check `manifest.json.sig` under this key.
    pub key: Option<&'a VerifyingKey>,
    /// The chain head the recorder printed: the chain is recomputed and
    /// must end there.
    pub head: Option<&'a str>,
}

/// Checks every segment against the manifest (size, sha256, rows), the hash
/// chain, what `expect` asks, and recomputes the enriched columns of every
/// event.
pub fn verify(dir: &Path, expect: Expect) -> anyhow::Result<Verification> {
    let cap = Capture::open_unchecked(dir)?;
    let mut v = Verification {
        chain_head: cap.manifest.chain_head.clone(),
        ..Verification::default()
    };
    check_manifest(&cap, expect, &mut v);
    if let Err(e) = cap.files.check_listing(&cap.manifest) {
        // Not worth a check per record.
        v.problems.push(e.to_string());
        return Ok(v);
    }
    check_files(&cap, &mut v)?;
    if !v.problems.is_empty() {
        return Ok(v);
    }
    check_status(&cap, &mut v)?;
    let (_, evicted) = cap.manifest.record_counts();
    if evicted > 0 {
        // The stored enrichment came from a cache built since the start;
        // replay can only rebuild it from the oldest snapshot left.
        let settings = &cap.manifest.settings;
        let by = match (
            settings.contains_key("max_capture_bytes"),
            settings.contains_key("keep_seconds"),
        ) {
            (true, true) => "--max-capture-bytes or --keep",
            (false, true) => "--keep",
            (true, false) => "--max-capture-bytes",
            (false, false) => "the recorder's retention",
        };
        v.notes.push(format!(
            "{evicted} oldest segment(s) were evicted by {by}; enrichment was not recomputed"
        ));
        v.events = cap
            .manifest
            .segments_of(capture::EVENTS)
            .map(|s| s.rows)
            .sum();
        return Ok(v);
    }
    v.proved.push("enrichment recomputed");
    recompute(&cap, &mut v)?;
    Ok(v)
}

/// The manifest itself: its chain, the expected head, its signature, its
/// state.
fn check_manifest(cap: &Capture, expect: Expect, v: &mut Verification) {
    let m = &cap.manifest;
    let mpath = cap.dir.join(manifest::MANIFEST_FILE);
    check_chain_and_counters(m, &mpath, v);
    if let Some(want) = expect.head {
        check_head(m, &mpath, want, v);
    }
    let signed = check_signature(cap, &mpath, expect.key, v);
    if m.state == CaptureState::Recording {
        v.problems.push(format!(
            "{}: the capture is not sealed (recorder running or killed); run `credtrail-record recover {}`",
            mpath.display(),
            cap.dir.display()
        ));
    }
    list_proved(m, expect, signed, v);
}

/// The manifest's hash chain and the plausibility of its counters, with
/// notes on what they say about folded and lost events.
fn check_chain_and_counters(m: &manifest::Manifest, mpath: &Path, v: &mut Verification) {
    if m.format_version < 2 {
        v.notes.push(format!(
            "{}: format 1 has no hash chain; only segment checksums are checked",
            mpath.display()
        ));
    }
    for p in m.check_chain() {
        v.problems.push(format!("{}: {p}", mpath.display()));
    }
    if let Some(why) = m.counters.implausible() {
        v.problems.push(format!("{}: {why}", mpath.display()));
    }
    if m.counters.folded_calls > 0 {
        v.notes.push(format!(
            "{}: {} calls folded into {} rows (repeat_count; {})",
            mpath.display(),
            m.counters.folded_calls,
            m.counters.folded_rows,
            manifest::Manifest::most_by_pid(&m.folded_by_pid, 5)
        ));
    }
    if !m.lost_by_pid.is_empty() {
        v.notes.push(format!(
            "{}: events lost by process: {}",
            mpath.display(),
            manifest::Manifest::most_by_pid(&m.lost_by_pid, 5)
        ));
    }
}

/// The chain ends at the head the recorder printed (`--expect-head`).
fn check_head(m: &manifest::Manifest, mpath: &Path, want: &str, v: &mut Verification) {
    // Recomputed, never the stored string: a manifest rewritten with
    // its old head, or lowered to format 1, does not pass.
    match m.recomputed_head() {
        Some(head) if head == want => {}
        Some(head) => v.problems.push(format!(
            "{}: chain head {head} is not the expected {want}",
            mpath.display()
        )),
        None => v.problems.push(format!(
            "{}: --expect-head cannot be checked: the manifest has no intact hash chain (format {}); this capture is not the one that head was printed for",
            mpath.display(),
            m.format_version
        )),
    }
}

/// The manifest's signature under `key`, or a note that a signed capture's
/// was not checked. Returns whether the capture is signed.
fn check_signature(
    cap: &Capture,
    mpath: &Path,
    key: Option<&VerifyingKey>,
    v: &mut Verification,
) -> bool {
    let m = &cap.manifest;
    let root = cap.files.root();
    let signed = root.exists(manifest::SIGNATURE_FILE) || m.settings.contains_key("signed");
    match key {
        Some(key) => {
            if let Err(e) = sign::verify_manifest_signature(root, key) {
                v.problems.push(e);
            }
        }
        None if signed => v.notes.push(format!(
            "{}: the capture is signed, but the signature was NOT checked (pass --pubkey PUB.pem)",
            mpath.display()
        )),
        None => {}
    }
    signed
}

/// What the manifest checks proved, for the report.
fn list_proved(m: &manifest::Manifest, expect: Expect, signed: bool, v: &mut Verification) {
    v.proved.push("every listed file, by size and sha256");
    if m.format_version >= 2 {
        v.proved.push("hash chain");
    }
    if expect.head.is_some() {
        v.proved.push("the expected chain head");
    }
    match (expect.key, signed) {
        (Some(_), _) => v.proved.push("signature"),
        (None, true) => v.proved.push("signature NOT checked"),
        (None, false) => {}
    }
}

/// Every listed file against its record, evicted files gone, and no
/// segment file the manifest does not list.
fn check_files(cap: &Capture, v: &mut Verification) -> anyhow::Result<()> {
    let m = &cap.manifest;
    let progress = Progress::bar(
        &format!("checking {}", cap.dir.display()),
        m.segments
            .iter()
            .filter(|s| !s.evicted && s.folded.is_none())
            .map(|s| s.bytes)
            .sum(),
        true,
    );
    for seg in &m.segments {
        if seg.folded.is_some() {
            // Records of files evicted long ago, folded: nothing to look at.
            continue;
        }
        if seg.evicted {
            match cap.files.locate(seg) {
                Ok((tdir, name)) if tdir.exists(name) => v.problems.push(format!(
                    "{}: listed as evicted but still present",
                    tdir.child(name).display()
                )),
                Ok(_) => {}
                Err(e) => v.problems.push(e.to_string()),
            }
            continue;
        }
        v.segments += 1;
        if let Err(e) = cap.files.check_segment(seg) {
            v.problems.push(e.to_string());
        }
        progress.inc(seg.bytes);
    }
    let listed: std::collections::BTreeSet<&str> = m
        .segments
        .iter()
        .filter(|s| !s.evicted)
        .map(|s| s.file.as_str())
        .collect();
    for table in capture::TABLES {
        let Some(tdir) = cap.files.table(table) else {
            continue;
        };
        for n in tdir
            .names()?
            .into_iter()
            .filter(|n| n.ends_with(".parquet"))
        {
            if !listed.contains(format!("{table}/{n}").as_str()) {
                v.problems.push(format!(
                    "{}: not listed in the manifest",
                    tdir.child(&n).display()
                ));
            }
        }
    }
    Ok(())
}

/// The `captures` table (format 6 on) against the manifest: its last row
/// is the manifest's final state, so an engine reading only Parquet sees
/// what the manifest says.
fn check_status(cap: &Capture, v: &mut Verification) -> anyhow::Result<()> {
    let m = &cap.manifest;
    if m.format_version < 6 || m.state == CaptureState::Recording {
        return Ok(());
    }
    // One segment at a time (each is one row, bounded before decoding),
    // keeping only the newest row.
    let mut newest: Option<status::CaptureRow> = None;
    for seg in m.segments_of(capture::CAPTURES) {
        let (path, file) = cap.files.open_checked(seg)?;
        for row in status::read_rows(&path, file)? {
            if newest
                .as_ref()
                .is_none_or(|n| row.segment_set > n.segment_set)
            {
                newest = Some(row);
            }
        }
    }
    let Some(last) = newest.as_ref() else {
        v.problems.push(format!(
            "{}: no {} row: the capture's status is not in its Parquet files",
            cap.dir.display(),
            capture::CAPTURES
        ));
        return Ok(());
    };
    let mut want = status::CaptureRow::of(m, last.segment_set, true);
    // The row was written before its own segment was listed.
    want.segments = last.segments;
    want.bytes_kept = last.bytes_kept;
    want.chain_head.clone_from(&last.chain_head);
    want.start_time = micros(want.start_time);
    want.end_time = want.end_time.map(micros);
    want.as_of_time = micros(want.as_of_time);
    if !last.final_row {
        v.problems.push(format!(
            "{}: no final {} row: the capture ended without writing its status (write error?)",
            cap.dir.display(),
            capture::CAPTURES
        ));
    } else if *last != want {
        v.problems.push(format!(
            "{}: the last {} row (set {}) differs from the manifest's final state (state {:?}, counters or ids edited?)",
            cap.dir.display(),
            capture::CAPTURES,
            last.segment_set,
            last.state
        ));
    } else {
        v.proved.push("captures table agrees with the manifest");
    }
    Ok(())
}

/// Replays the capture and compares every event's enrichment with the
/// stored one, and the event count with the counters.
fn recompute(cap: &Capture, v: &mut Verification) -> anyhow::Result<()> {
    let mut inputs = open(cap)?;
    let mut enricher = enricher(cap, &mut inputs);
    let mut sink = CompareSink {
        expected: None,
        legacy: cap.manifest.format_version < 3,
        no_exe: cap.manifest.format_version < 4,
        nanos: cap.manifest.format_version < storage::SINCE_FORMAT,
        checked: 0,
        folded: (0, 0),
        problems: Vec::new(),
        more: 0,
    };
    let m = &cap.manifest;
    let progress = Progress::bar(
        &format!("re-enriching {}", cap.dir.display()),
        m.rows_in(capture::EVENTS) + m.rows_in(capture::LIFECYCLE),
        false,
    );
    for rec in inputs.records {
        let rec = rec?;
        progress.inc(1);
        if let Record::Cred(stored) = &rec {
            sink.expected = Some(stored.clone());
        }
        enricher.apply(rec, &mut sink)?;
    }
    v.events = sink.checked;
    v.problems.extend(sink.problems);
    v.more_problems += sink.more;
    let c = &cap.manifest.counters;
    if c.events_written - c.events_evicted.min(c.events_written) != v.events {
        v.problems.push(format!(
            "{}: counters say {} events written, the segments hold {}",
            cap.dir.join(manifest::MANIFEST_FILE).display(),
            c.events_written,
            v.events
        ));
    }
    if sink.folded != (c.folded_rows, c.folded_calls) {
        v.problems.push(format!(
            "{}: counters say {} calls folded into {} rows, the segments hold {} in {}",
            cap.dir.join(manifest::MANIFEST_FILE).display(),
            c.folded_calls,
            c.folded_rows,
            sink.folded.1,
            sink.folded.0
        ));
    }
    Ok(())
}

/// `--verify` of each capture: notes and problems on `stderr`, one line per
/// capture on `stdout`; returns whether every capture verified.
pub fn verify_all(
    captures: &Localized,
    expect: Expect,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut ok = true;
    for dir in &captures.paths {
        let mut v =
            verify(dir, expect).map_err(|e| anyhow::anyhow!(captures.rename(&format!("{e:#}"))))?;
        // What the bucket held that was not fetched (another size than
        // listed) comes first: it is why a file is missing.
        let fetched: Vec<String> = captures
            .problems
            .iter()
            .filter(|(d, _)| d == dir)
            .map(|(_, p)| p.clone())
            .collect();
        v.problems.splice(0..0, fetched);
        for n in &v.notes {
            writeln!(
                stderr,
                "credtrail-replay: note: {}",
                safe(&captures.rename(n))
            )?;
        }
        // A crafted manifest can list thousands of bad records: the first
        // ones say what is wrong.
        for p in v.problems.iter().take(MAX_PROBLEM_LINES) {
            writeln!(stderr, "credtrail-replay: {}", safe(&captures.rename(p)))?;
        }
        let total = v.problems.len() as u64 + v.more_problems;
        if total > MAX_PROBLEM_LINES as u64 {
            writeln!(
                stderr,
                "credtrail-replay: … and {} more problems",
                total - MAX_PROBLEM_LINES as u64
            )?;
        }
        let line = format!(
            "{}: {} segments, {} events re-enriched, chain head {}: {}",
            captures
                .url_of(dir)
                .map_or_else(|| dir.display().to_string(), str::to_owned),
            v.segments,
            v.events,
            v.chain_head.as_deref().unwrap_or("(none, format 1)"),
            if v.problems.is_empty() {
                format!("OK ({})", v.proved.join(", "))
            } else {
                format!("{total} problem(s)")
            }
        );
        writeln!(stdout, "{}", safe(&line))?;
        ok &= total == 0;
    }
    Ok(ok)
}
