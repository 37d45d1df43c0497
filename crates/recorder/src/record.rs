//! The live recording loop: BPF records → decode → capture and printer.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as MonoInstant};

use anyhow::Context as _;
use credtrail_recorder_bpf::{self as bpf, KernelCounters, Tracer};

use crate::capture::{CaptureWriter, Retention, Rotation};
use crate::containers::ContainerRow;
use crate::decode::{DecodeContext, Record, decode_record};
use crate::enrich::{Enricher, NodePods, Sink};
use crate::error::CaptureError;
use crate::host;
use crate::lifecycle::ProcEvent;
use crate::manifest::SigningKey;
use crate::manifest::{self, CaptureState, Counters, FORMAT_NAME, FORMAT_VERSION, Manifest};
use crate::output::{PrintFormat, print_event};
use crate::redact::Redactor;

/// Records taken from the ring buffer per loop at most.
const POLL_BATCH: usize = 8192;
/// The longest the consumer sleeps while the ring is empty. Records never
/// wake it (see CT_SUBMIT_FLAGS in credtrail.bpf.c), so this is how late a
/// quiet system's event is read; flat out, a 16 MiB ring takes ~40 ms to
/// fill (a burst after a quiet spell fills ~5 MiB of it in 20 ms), and the
/// consumer does not sleep while records wait.
const POLL_PERIOD: Duration = Duration::from_millis(20);
/// The same while records are flowing (the last poll found some), so a
/// consumer that caught up does not leave a burst 20 ms to fill the ring.
const BUSY_POLL_PERIOD: Duration = Duration::from_millis(1);

/// What to record and where.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub out: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub print: Option<PrintFormat>,
    pub rotation: Rotation,
    pub ring_buffer_bytes: u32,
    pub node_name: Option<String>,
    /// `kubectl get pods -A -o json` output, for pod labels and image ids.
    pub pods_file: Option<PathBuf>,
    /// Disk budget (`--max-capture-bytes`).
    pub retention: Retention,
    /// Signs every manifest written (`--sign-key`).
    pub sign_key: Option<SigningKey>,
    /// Blanks secrets in command lines before they are stored (`--redact`).
    pub redactor: Redactor,
}

/// How a session ended.
#[derive(Debug, Clone)]
pub struct Summary {
    pub counters: Counters,
    pub manifest: Option<Manifest>,
}

fn counters_from(k: KernelCounters, decode_errors: u64, written: u64, lifecycle: u64) -> Counters {
    Counters {
        events_written: written,
        kernel_events: k.exits,
        ringbuf_full: k.ringbuf_full,
        enter_store_failures: k.enter_store_failures,
        exit_without_enter: k.exit_without_enter,
        decode_errors,
        lifecycle_written: lifecycle,
        kernel_lifecycle: k.proc_events,
        lifecycle_ringbuf_full: k.proc_ringbuf_full,
        exec_without_stash: k.exec_no_stash,
        ..Counters::default()
    }
}

/// Stdout printing that stops quietly when the reader goes away (`| head`),
/// while recording carries on.
struct Printer<'a> {
    format: PrintFormat,
    out: io::BufWriter<&'a mut dyn Write>,
    closed: bool,
}

impl Printer<'_> {
    fn print(&mut self, ev: &crate::event::Event) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = print_event(&mut self.out, self.format, ev);
        self.check(r)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.flush();
        self.check(r)
    }

    fn check(&mut self, r: io::Result<()>) -> anyhow::Result<()> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::info!("stdout closed; still recording");
                self.closed = true;
                Ok(())
            }
            r => r.context("cannot write events to stdout"),
        }
    }
}

/// The live destination of enriched records.
struct LiveSink<'a> {
    writer: Option<CaptureWriter>,
    /// The first write error: writing stops, recording winds down, and
    /// everything delivered but not durable is counted as lost.
    write_error: Option<CaptureError>,
    printer: Option<Printer<'a>>,
    /// Events and lifecycle records delivered to this sink.
    written: u64,
    lifecycle_written: u64,
}

impl LiveSink<'_> {
    fn write(&mut self, f: impl FnOnce(&mut CaptureWriter) -> Result<(), CaptureError>) {
        if self.write_error.is_some() {
            return;
        }
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = f(w)
        {
            tracing::error!("{e}; stopping the recording");
            self.write_error = Some(e);
        }
    }
}

impl Sink for LiveSink<'_> {
    fn lifecycle(&mut self, p: &ProcEvent) -> anyhow::Result<()> {
        self.write(|w| w.push_lifecycle(p));
        self.lifecycle_written += 1;
        Ok(())
    }

    fn event(&mut self, e: &crate::event::Event) -> anyhow::Result<()> {
        self.write(|w| w.push(e));
        if let Some(p) = self.printer.as_mut() {
            p.print(e)?;
        }
        self.written += 1;
        Ok(())
    }

    fn container(&mut self, c: &ContainerRow) -> anyhow::Result<()> {
        self.write(|w| w.push_container(c));
        Ok(())
    }
}

/// After the programs are attached the recorder needs no privilege but
/// reading other users' files (container bundles, /proc); everything else
/// goes, from every set, and no exec can regain it.
fn drop_capabilities() -> anyhow::Result<()> {
    use caps::{CapSet, Capability};
    let keep = Capability::CAP_DAC_READ_SEARCH;
    let all = caps::all();
    // The bounding set first, while CAP_SETPCAP is still effective.
    for cap in all.iter().filter(|c| **c != keep) {
        if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, *cap)
                .with_context(|| format!("cannot drop {cap} from the bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).context("cannot clear ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("cannot clear inheritable capabilities")?;
    let kept: caps::CapsHashSet = [keep].into_iter().collect();
    let have = caps::read(None, CapSet::Permitted).context("cannot read capabilities")?;
    let kept: caps::CapsHashSet = kept.intersection(&have).copied().collect();
    caps::set(None, CapSet::Effective, &kept).context("cannot lower effective capabilities")?;
    caps::set(None, CapSet::Permitted, &kept).context("cannot lower permitted capabilities")?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error()).context("cannot set no_new_privs");
    }
    Ok(())
}

/// Records until `stop` is set or the duration ends, printing events to
/// `out` when `opts.print` asks for it.
pub fn record(
    opts: &RecordOptions,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> anyhow::Result<Summary> {
    bpf::check_privileges()?;
    if let Some(dir) = &opts.out {
        // Refuse a bad --out before touching the kernel.
        crate::fsutil::check_capture_dir(dir)?;
    }
    let mut obj = MaybeUninit::uninit();
    let tracer = Tracer::load(
        &mut obj,
        &bpf::Options {
            ring_buffer_bytes: opts.ring_buffer_bytes,
        },
    )?;
    let start_ktime = host::boottime_ns();
    let offset = host::realtime_offset_ns();
    let (uname_node, kernel_release) = host::uname();
    let node_name = opts.node_name.clone().unwrap_or(uname_node);
    let ctx = DecodeContext {
        node_name: node_name.clone(),
        realtime_offset_ns: offset,
    };
    let pods_file = match &opts.pods_file {
        Some(path) => match crate::containers::read_pods_file(path) {
            Ok(map) => map,
            Err(e) => {
                // Pod labels are a nicety; never lose the recording over them.
                tracing::warn!("{e}; continuing without pod labels from it");
                Default::default()
            }
        },
        None => Default::default(),
    };
    let mut enricher = Enricher::new(
        &node_name,
        offset,
        NodePods {
            root: "/".into(),
            pods_file,
        },
    );
    tracing::info!(
        hooks = tracer.hooks().len(),
        "recording credential changes on {node_name}{}",
        opts.out
            .as_ref()
            .map(|d| format!(" into {}", d.display()))
            .unwrap_or_default()
    );

    let mut writer = match &opts.out {
        Some(dir) => {
            let mut settings = BTreeMap::new();
            settings.insert(
                "rotate_seconds".into(),
                opts.rotation.max_age.as_secs().into(),
            );
            settings.insert("rotate_bytes".into(), opts.rotation.max_bytes.into());
            settings.insert("ring_buffer_bytes".into(), opts.ring_buffer_bytes.into());
            if !opts.redactor.is_empty() {
                settings.insert("redact".into(), true.into());
            }
            if opts.sign_key.is_some() {
                settings.insert("signed".into(), true.into());
            }
            let manifest = Manifest {
                format: FORMAT_NAME.into(),
                format_version: FORMAT_VERSION,
                credtrail_version: env!("CARGO_PKG_VERSION").into(),
                state: CaptureState::Recording,
                node_name: node_name.clone(),
                kernel_release,
                boot_id: host::boot_id(),
                realtime_offset_ns: offset,
                start: manifest::Instant {
                    time: host::rfc3339_ns(start_ktime as i64 + offset),
                    ktime_ns: start_ktime,
                },
                end: None,
                hooks: tracer.hooks(),
                settings,
                counters: Counters::default(),
                segments: Vec::new(),
                error: None,
                recovery: None,
                chain_head: None,
            };
            Some(CaptureWriter::create_with(
                dir,
                manifest,
                opts.rotation,
                opts.retention,
                opts.sign_key.clone(),
            )?)
        }
        None => None,
    };
    // After attaching, so a process starting now is either in the snapshot
    // or seen by the lifecycle hooks.
    let mut procs = crate::process::snapshot(host::boottime_ns())
        .context("cannot read the process table from /proc")?;
    for p in &mut procs {
        if opts.redactor.args(&mut p.cmdline) {
            p.arguments = None;
        }
    }
    enricher.seed(&procs);
    enricher.annotate(&mut procs);
    if let Some(w) = writer.as_mut() {
        w.write_processes(&procs)?;
    }
    drop_capabilities()?;
    let printer = opts.print.map(|format| Printer {
        format,
        out: io::BufWriter::new(out),
        closed: false,
    });

    let pending: RefCell<Vec<Record>> = RefCell::new(Vec::with_capacity(4096));
    let decode_errors = Cell::new(0u64);
    let rb = tracer.ring_buffer(|bytes| {
        match decode_record(bytes, &ctx) {
            Ok(rec) => pending.borrow_mut().push(rec),
            Err(e) => {
                if decode_errors.get() == 0 {
                    tracing::error!("undecodable BPF record: {e}");
                }
                decode_errors.set(decode_errors.get() + 1);
            }
        }
        0
    })?;

    let started = MonoInstant::now();
    let mut sink = LiveSink {
        writer,
        write_error: None,
        printer,
        written: 0,
        lifecycle_written: 0,
    };
    let mut seq = 0u64;
    let mut last_counters = MonoInstant::now();
    let mut reported_lost = 0u64;
    // Records are applied in ring-buffer order: a process's exec reaches the
    // cache before any of its credential events.
    let drain = |enricher: &mut Enricher<NodePods>,
                 sink: &mut LiveSink,
                 seq: &mut u64|
     -> anyhow::Result<()> {
        let mut batch = std::mem::take(&mut *pending.borrow_mut());
        for mut rec in batch.drain(..) {
            *seq += 1;
            match &mut rec {
                Record::Proc(p) => {
                    p.seq = *seq;
                    opts.redactor.args(&mut p.args);
                }
                Record::Cred(e) => e.seq = *seq,
            }
            enricher.apply(rec, sink)?;
        }
        // Hand the allocation back for the next poll.
        let mut p = pending.borrow_mut();
        if p.is_empty() {
            *p = batch;
        }
        Ok(())
    };

    let mut stopping = false;
    let mut last_batch = 0;
    loop {
        let done = stop.load(Ordering::Relaxed)
            || opts.duration.is_some_and(|d| started.elapsed() >= d)
            || sink.write_error.is_some();
        if done && !stopping {
            stopping = true;
            // Stop new events first so the last drain and the counters agree.
            tracer.detach();
            // Let programs already running on other CPUs finish their submit.
            std::thread::sleep(Duration::from_millis(20));
        }
        // Once stopping, no waiting: drain what the kernel holds, batch by batch.
        let wait = if stopping {
            Duration::ZERO
        } else if last_batch > 0 {
            BUSY_POLL_PERIOD
        } else {
            POLL_PERIOD
        };
        let n = bpf::poll_batch(&rb, POLL_BATCH, wait)?;
        last_batch = n;
        drain(&mut enricher, &mut sink, &mut seq)?;
        if let Some(p) = sink.printer.as_mut() {
            p.flush()?;
        }
        let drained = stopping && n < POLL_BATCH;
        // As often as checkpoints, so a recovered manifest's kernel counters
        // are as fresh as its rows.
        if drained || last_counters.elapsed() >= crate::capture::FLUSH_INTERVAL {
            last_counters = MonoInstant::now();
            let c = counters_from(
                tracer.counters()?,
                decode_errors.get(),
                sink.written,
                sink.lifecycle_written,
            );
            if c.lost() + c.lifecycle_lost() > reported_lost {
                tracing::warn!(
                    ringbuf_full = c.ringbuf_full,
                    enter_store_failures = c.enter_store_failures,
                    decode_errors = c.decode_errors,
                    lifecycle_ringbuf_full = c.lifecycle_ringbuf_full,
                    "events lost so far: {} (raise --ring-buffer-mib if ringbuf_full grows)",
                    c.lost()
                );
                reported_lost = c.lost() + c.lifecycle_lost();
            }
            if let Some(w) = sink.writer.as_mut() {
                w.set_counters(c);
            }
        }
        let mut rotated = false;
        sink.write(|w| {
            rotated = w.tick()?;
            Ok(())
        });
        if rotated {
            // A new segment begins: open it with the cache so it reads alone.
            let procs = enricher.snapshot(host::boottime_ns());
            sink.write(|w| w.write_processes(&procs));
        }
        if drained {
            break;
        }
    }

    let counters = counters_from(
        tracer.counters()?,
        decode_errors.get(),
        sink.written,
        sink.lifecycle_written,
    );
    let end = host::boottime_ns();
    let end = manifest::Instant {
        time: host::rfc3339_ns(end as i64 + offset),
        ktime_ns: end,
    };
    let manifest = match (sink.writer, sink.write_error) {
        (Some(mut w), None) => {
            w.set_counters(counters.clone());
            Some(w.finish(end)?)
        }
        (Some(mut w), Some(err)) => {
            w.set_counters(counters.clone());
            let dir = w.dir().to_owned();
            let m = w
                .fail(
                    &err.to_string(),
                    (sink.written, sink.lifecycle_written),
                    end,
                )
                .with_context(|| format!("after {err}, cannot even write the final manifest"))?;
            anyhow::bail!(
                "{err}. Recording stopped; {} keeps {} events up to the last checkpoint (state failed); {} events and {} lifecycle records not written are counted as lost (events_lost_io, lifecycle_lost_io). Free space, or pass --max-capture-bytes to keep the newest segments within a budget",
                dir.display(),
                m.counters.events_written,
                m.counters.events_lost_io,
                m.counters.lifecycle_lost_io,
            );
        }
        (None, _) => None,
    };
    tracing::info!(
        events = counters.events_written,
        lost = counters.lost(),
        ringbuf_full = counters.ringbuf_full,
        enter_store_failures = counters.enter_store_failures,
        decode_errors = counters.decode_errors,
        "recording ended"
    );
    Ok(Summary { counters, manifest })
}
