//! Replay: a capture back through the recorder's own enrichment and printers.
//!
//! The process cache is rebuilt from the capture's /proc snapshot and its
//! lifecycle rows, and every record is applied in the recorder's arrival
//! order (`seq`) through [`Enricher::apply`], the function the live recorder
//! calls. Nothing here reads the clock, /proc or the host name, and no
//! output depends on hash order, so the same capture always gives the same
//! bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use clap::Parser;
use credtrail_recorder::capture::{self, Capture, CaptureWriter, Rotation, TableStream};
use credtrail_recorder::containers::ContainerRow;
use credtrail_recorder::enrich::{Enricher, Record, Sink, StoredPods};
use credtrail_recorder::event::Event;
use credtrail_recorder::lifecycle::ProcEvent;
use credtrail_recorder::manifest::{self, CaptureState, VerifyingKey};
use credtrail_recorder::output::{PrintFormat, print_event};
use credtrail_recorder::process::ProcessRow;
use credtrail_recorder::sign;
use credtrail_recorder::term::safe;

/// Re-render captures through the same enrichment and printers as the live
/// recorder, deterministically; or verify them.
#[derive(Parser, Debug)]
#[command(name = "credtrail-replay", version)]
pub struct Cli {
    /// Capture directories, replayed one after the other.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<std::path::PathBuf>,
    /// How to print events (default json, unless --out is given).
    #[arg(long, value_enum)]
    pub print: Option<PrintFormat>,
    /// Write a re-enriched copy of the (single) capture into this new directory.
    #[arg(long, value_name = "NEW_CAPTURE", conflicts_with = "verify")]
    pub out: Option<std::path::PathBuf>,
    /// Check every segment's checksum and recompute the enriched columns;
    /// exit non-zero on any mismatch.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: also check `manifest.json.sig` against this ed25519
    /// public key (PEM).
    #[arg(long, value_name = "PUBLIC_KEY_PEM", requires = "verify")]
    pub pubkey: Option<std::path::PathBuf>,
    /// With --verify: the chain head the recorder printed when it finished;
    /// a manifest rewritten with a recomputed chain then no longer matches.
    #[arg(long, value_name = "SHA256", requires = "verify")]
    pub expect_head: Option<String>,
}

/// What a replay produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub lifecycle: u64,
    pub containers: u64,
}

/// A capture opened for replay: the small tables in memory, events and
/// lifecycle streamed and merged in the recorder's arrival order (`seq`).
pub struct Inputs {
    pub procs: Vec<ProcessRow>,
    pub containers: BTreeMap<String, ContainerRow>,
    pub records: Records,
}

/// Events and lifecycle rows merged by `seq`: each table is already in seq
/// order, so memory holds one record batch per table, never the capture.
pub struct Records {
    events: std::iter::Peekable<TableStream<Event>>,
    lifecycle: std::iter::Peekable<TableStream<ProcEvent>>,
}

impl Iterator for Records {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_event = match (self.events.peek(), self.lifecycle.peek()) {
            (None, None) => return None,
            // Errors surface as soon as they are seen.
            (Some(Err(_)), _) => true,
            (_, Some(Err(_))) => false,
            (Some(Ok(e)), Some(Ok(p))) => e.seq < p.seq,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        Some(if take_event {
            self.events.next()?.map(Record::Cred).map_err(Into::into)
        } else {
            self.lifecycle.next()?.map(Record::Proc).map_err(Into::into)
        })
    }
}

/// Opens a capture's tables (checksums are checked as each segment is read).
pub fn open(cap: &Capture) -> anyhow::Result<Inputs> {
    // The first snapshot seeds the cache: /proc at start, or, when
    // --max-capture-bytes evicted the oldest segments, the cache snapshot
    // that opens the oldest one left. Later ones only let a segment be read
    // alone.
    let mut procs = Vec::new();
    for p in cap.stream::<ProcessRow>() {
        let p = p?;
        if procs
            .first()
            .is_some_and(|f: &ProcessRow| f.snapshot_ktime_ns != p.snapshot_ktime_ns)
        {
            break;
        }
        procs.push(p);
    }
    let mut containers = BTreeMap::new();
    for c in cap.stream::<ContainerRow>() {
        let c = c?;
        containers.insert(c.container_id.clone(), c);
    }
    Ok(Inputs {
        procs,
        containers,
        records: Records {
            events: cap.stream::<Event>().peekable(),
            lifecycle: cap.stream::<ProcEvent>().peekable(),
        },
    })
}

/// The enricher replay starts from: seeded with the capture's /proc snapshot,
/// container metadata from the capture.
pub fn enricher(cap: &Capture, inputs: &mut Inputs) -> Enricher<StoredPods> {
    let m = &cap.manifest;
    let mut e = Enricher::new(
        &m.node_name,
        m.realtime_offset_ns,
        StoredPods(std::mem::take(&mut inputs.containers)),
    );
    e.seed(&inputs.procs);
    e
}

/// Where replayed records go.
pub struct ReplaySink<'a> {
    pub print: Option<(PrintFormat, &'a mut dyn Write)>,
    pub writer: Option<CaptureWriter>,
    pub stats: Stats,
}

impl Sink for ReplaySink<'_> {
    fn lifecycle(&mut self, p: &ProcEvent) -> anyhow::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.push_lifecycle(p)?;
        }
        self.stats.lifecycle += 1;
        Ok(())
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.push(e)?;
        }
        if let Some((format, out)) = self.print.as_mut() {
            print_event(out, *format, e)?;
        }
        self.stats.events += 1;
        Ok(())
    }

    fn container(&mut self, c: &ContainerRow) -> anyhow::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.push_container(c)?;
        }
        self.stats.containers += 1;
        Ok(())
    }
}

/// Runs a capture's records through the enrichment into `sink`.
pub fn run_records(cap: &Capture, mut inputs: Inputs, sink: &mut dyn Sink) -> anyhow::Result<()> {
    let mut enricher = enricher(cap, &mut inputs);
    for rec in inputs.records {
        enricher.apply(rec?, sink)?;
    }
    Ok(())
}

/// Replays one capture: prints events in `format` to `out`, and/or writes a
/// re-enriched copy to `new_capture`.
pub fn replay(
    cap: &Capture,
    print: Option<(PrintFormat, &mut dyn Write)>,
    new_capture: Option<&Path>,
) -> anyhow::Result<Stats> {
    let inputs = open(cap)?;
    let writer = match new_capture {
        Some(dir) => {
            let mut w = CaptureWriter::create(dir, cap.manifest.clone(), Rotation::default())?;
            w.write_processes(&inputs.procs)?;
            Some(w)
        }
        None => None,
    };
    let mut sink = ReplaySink {
        print,
        writer,
        stats: Stats::default(),
    };
    run_records(cap, inputs, &mut sink)?;
    if let Some(mut w) = sink.writer.take() {
        w.set_counters(cap.manifest.counters.clone());
        let end = cap
            .manifest
            .end
            .clone()
            .unwrap_or_else(|| cap.manifest.start.clone());
        w.finish(end)?;
    }
    Ok(sink.stats)
}

/// Problems `--verify` prints at most, per capture.
const MAX_PROBLEM_LINES: usize = 20;

/// The outcome of `--verify`.
#[derive(Debug, Default)]
pub struct Verification {
    pub segments: usize,
    pub events: u64,
    pub problems: Vec<String>,
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
    checked: u64,
    problems: Vec<String>,
}

impl Sink for CompareSink {
    fn lifecycle(&mut self, _p: &ProcEvent) -> anyhow::Result<()> {
        Ok(())
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.checked += 1;
        match self.expected.take() {
            Some(s) if &s == e => {}
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
    let m = &cap.manifest;
    let mut v = Verification {
        chain_head: m.chain_head.clone(),
        ..Verification::default()
    };
    let mpath = dir.join(manifest::MANIFEST_FILE);
    let root = cap.files.root();
    if m.format_version < 2 {
        v.notes.push(format!(
            "{}: format 1 has no hash chain; only segment checksums are checked",
            mpath.display()
        ));
    }
    for p in m.check_chain() {
        v.problems.push(format!("{}: {p}", mpath.display()));
    }
    if let Some(want) = expect.head {
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
    let signed = root.exists(manifest::SIGNATURE_FILE) || m.settings.contains_key("signed");
    match expect.key {
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
    if m.state == CaptureState::Recording {
        v.problems.push(format!(
            "{}: the capture is not sealed (recorder running or killed); run `credtrail-record recover {}`",
            mpath.display(),
            dir.display()
        ));
    }
    if let Err(e) = cap.files.check_listing(m) {
        // Not worth a check per record.
        v.problems.push(e.to_string());
        return Ok(v);
    }
    let evicted = m.segments.iter().filter(|s| s.evicted).count();
    for seg in &m.segments {
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
    if !v.problems.is_empty() {
        return Ok(v);
    }
    if evicted == 0 {
        v.proved.push("enrichment recomputed");
    }
    if evicted > 0 {
        // The stored enrichment came from a cache built since the start;
        // replay can only rebuild it from the oldest snapshot left.
        v.notes.push(format!(
            "{evicted} oldest segment(s) were evicted by --max-capture-bytes; enrichment was not recomputed"
        ));
        for seg in cap.manifest.segments_of(capture::EVENTS) {
            v.events += seg.rows;
        }
        return Ok(v);
    }
    let mut inputs = open(&cap)?;
    let mut enricher = enricher(&cap, &mut inputs);
    let mut sink = CompareSink {
        expected: None,
        checked: 0,
        problems: Vec::new(),
    };
    for rec in inputs.records {
        let rec = rec?;
        if let Record::Cred(stored) = &rec {
            sink.expected = Some(stored.clone());
        }
        enricher.apply(rec, &mut sink)?;
    }
    v.events = sink.checked;
    v.problems.extend(sink.problems);
    let c = &cap.manifest.counters;
    if c.events_written - c.events_evicted.min(c.events_written) != v.events {
        v.problems.push(format!(
            "{}: counters say {} events written, the segments hold {}",
            dir.join("manifest.json").display(),
            c.events_written,
            v.events
        ));
    }
    Ok(v)
}

/// The `credtrail-replay` command: returns whether everything verified.
pub fn run(cli: Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> anyhow::Result<bool> {
    if cli.verify {
        let key = cli
            .pubkey
            .as_deref()
            .map(sign::load_verifying_key)
            .transpose()?;
        let mut ok = true;
        let expect = Expect {
            key: key.as_ref(),
            head: cli.expect_head.as_deref(),
        };
        for dir in &cli.captures {
            let v = verify(dir, expect)?;
            for n in &v.notes {
                writeln!(stderr, "credtrail-replay: note: {}", safe(n))?;
            }
            // A crafted manifest can list thousands of bad records: the
            // first ones say what is wrong.
            for p in v.problems.iter().take(MAX_PROBLEM_LINES) {
                writeln!(stderr, "credtrail-replay: {}", safe(p))?;
            }
            if v.problems.len() > MAX_PROBLEM_LINES {
                writeln!(
                    stderr,
                    "credtrail-replay: … and {} more problems",
                    v.problems.len() - MAX_PROBLEM_LINES
                )?;
            }
            let line = format!(
                "{}: {} segments, {} events re-enriched, chain head {}: {}",
                dir.display(),
                v.segments,
                v.events,
                v.chain_head.as_deref().unwrap_or("(none, format 1)"),
                if v.problems.is_empty() {
                    format!("OK ({})", v.proved.join(", "))
                } else {
                    format!("{} problem(s)", v.problems.len())
                }
            );
            writeln!(stdout, "{}", safe(&line))?;
            ok &= v.problems.is_empty();
        }
        return Ok(ok);
    }
    if cli.out.is_some() && cli.captures.len() != 1 {
        anyhow::bail!("--out takes exactly one capture to re-enrich");
    }
    let format = match (cli.print, &cli.out) {
        (Some(f), _) => Some(f),
        (None, None) => Some(PrintFormat::Json),
        (None, Some(_)) => None,
    };
    for dir in &cli.captures {
        let cap = Capture::open(dir)?;
        let print = format.map(|f| (f, &mut *stdout as &mut dyn Write));
        replay(&cap, print, cli.out.as_deref())
            .with_context(|| format!("replaying {}", dir.display()))?;
    }
    stdout.flush()?;
    Ok(true)
}
