//! The live recording: BPF records → decode → enrich → capture and printer.
//!
//! [`crate::record`] loads the programs and runs a [`Session`]: [`Session::start`]
//! (capture, /proc snapshot, privileges dropped), [`Session::poll`] until
//! told to stop, [`Session::finish`] (sealed capture, or a failed one with
//! its losses counted).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant as MonoInstant};

use anyhow::Context as _;
use credtrail_capture::host;
use credtrail_capture::manifest::{Counters, Instant, Manifest};
use credtrail_capture::model::{Syscall, lifecycle};
use credtrail_capture::storage::micros;
use credtrail_capture::{CaptureWriter, FLUSH_INTERVAL};
use credtrail_pipeline::enrich::Enricher;
use credtrail_pipeline::policy::HostNamespaces;
use credtrail_pipeline::policy::decide::PolicyFilter;
use credtrail_pipeline::sink::Record;
use credtrail_pipeline::sink::{CaptureSink, Printer};
use credtrail_pipeline::sink::{Decorated, PolicySink};
use credtrail_recorder_bpf::{self as bpf, Tracer};

use crate::autocut::Cuts;
use crate::decode::{DecodeContext, decode_record};
use crate::drain::{Drain, SpoolLimits};
use crate::manifest::{counters_from, settings};
use crate::metrics::{Snapshot, Tally};
pub use crate::options::RecordOptions;
use crate::pods::NodePods;
use crate::watch::{LogBudget, Watch};

/// The longest the session waits for the drain's next batch: it still
/// checkpoints, rotates and serves cuts while the system is quiet (the
/// drain hands over a batch, empty or not, at least every 20 ms).
const POLL_PERIOD: Duration = Duration::from_millis(25);
/// Records applied between two looks at the checkpoint clock.
const CHECK_EVERY: usize = 256;
/// How often the recorder looks for a cut's request to seal (one stat).
const CONTROL_PERIOD: Duration = Duration::from_millis(100);
/// How often the kernel's folded transitions become rows: a storm of one
/// transition is one row per period (and a kill -9 loses at most one
/// period of its count, as it does of rows).
const FOLD_PERIOD: Duration = Duration::from_millis(1000);
/// Processes the manifest names in `folded_by_pid` at most.
const FOLDED_PIDS: usize = 8192;

/// Logs (at debug level) a step of the loop that held checkpoints back.
fn slow(step: &str, since: MonoInstant) {
    let took = since.elapsed();
    if took >= FLUSH_INTERVAL / 2 {
        tracing::debug!("{step} took {} ms", took.as_millis());
    }
}

/// How a session ended.
#[derive(Debug, Clone)]
pub struct Summary {
    pub counters: Counters,
    pub manifest: Option<Manifest>,
    /// `-- COMMAND`: its exit status, to be the recorder's.
    pub exit_code: Option<std::process::ExitCode>,
}

/// A recording in progress: the attached programs, the ring buffer, the
/// enricher and the sink behind it.
pub struct Session<'t, 'o> {
    opts: &'t RecordOptions,
    tracer: &'t Tracer<'t>,
    drain: Drain,
    decode_ctx: DecodeContext,
    decode_errors: u64,
    enricher: Enricher<NodePods>,
    sink: CaptureSink<'o>,
    /// `--policy`: the kernel has dropped what it excludes; this adds the
    /// pod conditions and names the policy (the same pass as replay's).
    policy: Option<PolicyFilter>,
    realtime_offset_ns: i64,
    /// Arrival order of records, shared by events and lifecycle rows.
    seq: u64,
    stopping: bool,
    last_counters: MonoInstant,
    reported_lost: u64,
    /// Sweeps run, their total time, and when the last one started.
    sweeps: u64,
    sweep_ns: u64,
    last_sweep: MonoInstant,
    /// When the last drain of the ring began: what a seal covers.
    drained_to: u64,
    last_control: MonoInstant,
    /// The recorder's own cuts, pending and running.
    cuts: Option<Cuts>,
    /// Rows by call and result, for the metrics.
    tally: Tally,
    /// Log lines about unexplained changes, per second.
    unexplained_log: LogBudget,
    /// Folded transitions taken from the kernel, each batch with the boot
    /// time it was taken at: applied once the ring is drained past it, so
    /// they follow every record sent before them.
    pending_folds: Vec<(u64, Vec<bpf::fair::Folded>)>,
    last_fold: MonoInstant,
    /// Folded rows applied, and the calls they hold (the kernel's count
    /// runs ahead by what it has not handed over yet).
    folded_rows: u64,
    folded_calls: u64,
    folded_by_pid: BTreeMap<u32, u64>,
}

impl<'t, 'o> Session<'t, 'o> {
    /// Whether writing the capture failed (the recording then stops).
    pub fn write_failed(&self) -> bool {
        self.sink.write_error.is_some()
    }

    /// Opens the capture, snapshots /proc (after attaching, so a process
    /// starting now is in the snapshot or seen by the lifecycle hooks),
    /// drops privileges and starts reading the ring buffer.
    pub fn start(
        tracer: &'t Tracer<'t>,
        opts: &'t RecordOptions,
        host_ns: HostNamespaces,
        out: &'o mut dyn Write,
    ) -> anyhow::Result<Self> {
        let offset = host::realtime_offset_ns();
        let (uname_node, kernel_release) = host::uname();
        let node_name = opts.node_name.clone().unwrap_or(uname_node);
        let mut enricher =
            Enricher::new(&node_name, offset, node_pods(opts)).with_lineage(opts.policy.lineage());
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
                let mut m = Manifest::new(&node_name, offset, host::boottime_ns());
                m.kernel_release = kernel_release;
                m.boot_id = host::boot_id();
                m.hooks = tracer.hooks();
                m.settings = settings(opts, host_ns);
                let missing = tracer.missing_optional_hooks();
                if !missing.is_empty() {
                    m.settings
                        .insert("missing_hooks".into(), missing.to_vec().into());
                }
                Some(CaptureWriter::create_with(
                    dir,
                    m,
                    opts.rotation,
                    opts.retention,
                    opts.sign_key.clone(),
                )?)
            }
            None => None,
        };
        let mut procs = crate::procfs::snapshot(host::boottime_ns())
            .context("cannot read the process table from /proc")?;
        // One command's recording holds the command's ancestry, not the
        // host's process table.
        if let Some(c) = &opts.command {
            procs = crate::command::ancestry(procs, c.pid);
        }
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
        crate::privileges::drop_capabilities()?;
        if let Some(m) = &opts.metrics {
            m.serve()?;
        }

        let drain = Drain::start(
            tracer.ring_map()?,
            SpoolLimits {
                memory_bytes: opts.spool_memory_bytes,
                disk_bytes: opts.spool_disk_bytes,
                dir: opts.out.clone(),
            },
        )?;
        let printer = opts.print.map(|format| Printer::new(format, out));
        let cuts = match (&opts.cuts, &writer) {
            (Some(c), Some(w)) => Some(Cuts::new(
                c.clone(),
                w.dir(),
                opts.metrics
                    .as_ref()
                    .map(|m| m.live.clone())
                    .unwrap_or_default(),
            )?),
            _ => None,
        };
        let mut session = Session {
            opts,
            tracer,
            drain,
            decode_ctx: DecodeContext {
                node_name,
                realtime_offset_ns: offset,
            },
            decode_errors: 0,
            enricher,
            sink: CaptureSink::new(writer, printer),
            policy: (!opts.policy.policies.is_empty())
                .then(|| PolicyFilter::new(opts.policy.clone(), host_ns)),
            realtime_offset_ns: offset,
            seq: 0,
            stopping: false,
            last_counters: MonoInstant::now(),
            reported_lost: 0,
            sweeps: 0,
            sweep_ns: 0,
            last_sweep: MonoInstant::now(),
            drained_to: host::boottime_ns(),
            last_control: MonoInstant::now(),
            cuts,
            tally: Tally::default(),
            unexplained_log: LogBudget::default(),
            pending_folds: Vec::new(),
            last_fold: MonoInstant::now(),
            folded_rows: 0,
            folded_calls: 0,
            folded_by_pid: BTreeMap::new(),
        };
        // Every task that already runs gets its last known credentials now,
        // not at its first switch-out.
        session.sweep()?;
        Ok(session)
    }

    /// One round: waits for the drain's batches, applies them, refreshes
    /// the counters, checkpoints and rotates. With `stop`, the programs are
    /// detached first and the ring drained to its end. Returns false once
    /// stopped and drained.
    pub fn poll(&mut self, stop: bool) -> anyhow::Result<bool> {
        if stop && !self.stopping {
            self.stopping = true;
            // Stop new events first so the last drain and the counters agree.
            self.tracer.detach();
            // Let programs already running on other CPUs finish their submit.
            std::thread::sleep(Duration::from_millis(20));
            self.drain.finish();
        }
        if !self.stopping
            && !self.opts.sweep_interval.is_zero()
            && self.last_sweep.elapsed() >= self.opts.sweep_interval
        {
            let t = MonoInstant::now();
            self.sweep()?;
            slow("sweep", t);
        }
        self.tracer
            .set_backlog_level(backlog_level(self.drain.backlog_bytes()));
        let t = MonoInstant::now();
        let caught_up = self.apply_batch()?;
        slow("applying a batch", t);
        if let Some(t) = caught_up {
            // Every record made before this instant is applied.
            self.drained_to = t;
        }
        let drained = self.stopping && self.drain.ended();
        if drained || self.last_fold.elapsed() >= FOLD_PERIOD {
            self.last_fold = MonoInstant::now();
            // Detached and drained: the last folds, after every record.
            self.take_folds(drained)?;
        }
        self.sink.flush()?;
        if drained {
            self.last_counters = MonoInstant::now();
            self.refresh_counters()?;
        }
        self.checkpoint_if_due()?;
        let mut rotated = false;
        let t = MonoInstant::now();
        self.sink.write(|w| {
            rotated = w.tick()?;
            Ok(())
        });
        slow("rotation and eviction", t);
        if drained || (!self.stopping && self.last_control.elapsed() >= CONTROL_PERIOD) {
            self.last_control = MonoInstant::now();
            // Drained: the cuts still waiting for their window's end are
            // made with what there is.
            rotated |= self.serve_cuts(drained);
        }
        if rotated {
            // A new segment begins: open it with the cache so it reads alone.
            let t = MonoInstant::now();
            let procs = self.enricher.snapshot(host::boottime_ns());
            self.sink.write(|w| w.write_processes(&procs));
            slow("the process snapshot", t);
        }
        Ok(!drained)
    }

    /// Every [`FLUSH_INTERVAL`]: fresh kernel counters, then a checkpoint of
    /// every table (so a recovered manifest's counters are as fresh as its
    /// rows).
    fn checkpoint_if_due(&mut self) -> anyhow::Result<()> {
        let since = self.last_counters.elapsed();
        if since < FLUSH_INTERVAL {
            return Ok(());
        }
        if since >= 2 * FLUSH_INTERVAL {
            tracing::debug!(
                "checkpoint {} ms late: a kill -9 now loses that much more",
                (since - FLUSH_INTERVAL).as_millis()
            );
        }
        self.last_counters = MonoInstant::now();
        self.refresh_counters()?;
        let t = MonoInstant::now();
        self.sink.write(|w| w.checkpoint_if_due().map(drop));
        slow("a checkpoint", t);
        Ok(())
    }

    /// A cut's request to seal (`credtrail-record cut`), and the
    /// recorder's own cuts that are due (all of them when `all`: the
    /// recording ends). Returns whether segments were sealed.
    fn serve_cuts(&mut self, all: bool) -> bool {
        let end = self.drained_to;
        let mut sealed = false;
        self.sink.write(|w| {
            sealed = w.serve_seal_request(end)?;
            Ok(())
        });
        let now = host::boottime_ns();
        let Some(cuts) = self.cuts.as_mut().filter(|c| c.due(end, now, all)) else {
            return sealed;
        };
        self.sink.write(|w| {
            sealed |= w.seal_now()?;
            Ok(())
        });
        // After a write error what was sealed is still whole: cut that.
        if let Some(dir) = self.sink.writer.as_ref().map(|w| w.dir().to_owned()) {
            cuts.start_due(&dir, end, now, all);
        }
        sealed
    }

    /// Decodes and applies the drain's next batch, record by record in
    /// ring order (a process's exec reaches the cache before any of its
    /// credential events); returns the drained instant it carried.
    fn apply_batch(&mut self) -> anyhow::Result<Option<u64>> {
        let Some(batch) = self.drain.take(POLL_PERIOD)? else {
            return Ok(None);
        };
        for (i, bytes) in batch.records().enumerate() {
            match decode_record(bytes, &self.decode_ctx) {
                Ok(rec) => {
                    // Its folded calls first, while the cache still knows it.
                    if let Record::Proc(p) = &rec
                        && p.proc_flags.iter().any(|f| f == lifecycle::flags::FOLDED)
                    {
                        self.take_folds(true)?;
                    }
                    self.apply(rec)?
                }
                Err(e) => {
                    if self.decode_errors == 0 {
                        tracing::error!("undecodable BPF record: {e}");
                    }
                    self.decode_errors += 1;
                }
            }
            // A large batch (the spool catching up) does not hold the
            // checkpoint back: what is applied so far becomes durable.
            if i % CHECK_EVERY == CHECK_EVERY - 1 {
                self.checkpoint_if_due()?;
            }
        }
        let caught_up = batch.caught_up;
        self.drain.recycle(batch);
        Ok(caught_up)
    }

    /// Takes the kernel's folded transitions, and applies those taken
    /// before the ring was drained to `drained_to` (all of them when
    /// `last`): each is one row of `repeat_count` calls.
    fn take_folds(&mut self, last: bool) -> anyhow::Result<()> {
        let taken_at = host::boottime_ns();
        let folds = self.tracer.drain_folds()?;
        if !folds.is_empty() {
            self.pending_folds.push((taken_at, folds));
        }
        let ready = self
            .pending_folds
            .iter()
            .take_while(|(at, _)| last || *at <= self.drained_to)
            .count();
        let ready: Vec<_> = self.pending_folds.drain(..ready).collect();
        for (_, folds) in ready {
            for f in folds {
                match decode_record(&f.record, &self.decode_ctx) {
                    Ok(Record::Cred(mut e)) => {
                        e.repeat_count = Some(f.count);
                        // Whole microseconds, as stored: live equals replay.
                        e.last_time = Some(micros(
                            self.realtime_offset_ns.saturating_add(f.last_ns as i64),
                        ));
                        self.folded_rows += 1;
                        self.folded_calls += f.count;
                        // Bounded: a fork bomb's pids do not grow the manifest.
                        if self.folded_by_pid.len() < FOLDED_PIDS
                            || self.folded_by_pid.contains_key(&e.pid)
                        {
                            *self.folded_by_pid.entry(e.pid).or_default() += f.count;
                        }
                        self.apply(Record::Cred(e))?;
                    }
                    Ok(_) | Err(_) => self.decode_errors += f.count,
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, mut rec: Record) -> anyhow::Result<()> {
        self.seq += 1;
        match &mut rec {
            Record::Proc(p) => {
                p.seq = self.seq;
                self.opts.redactor.args(&mut p.args);
            }
            Record::Cred(e) => {
                e.seq = self.seq;
                // As LKRG logs: the responder hears of it now, not at query
                // (a storm's lines are bounded per second; the rows are not).
                if e.syscall == Syscall::Unexplained.name() && self.unexplained_log.take() {
                    tracing::warn!(
                        "unexplained credential change: {}",
                        credtrail_cli::term::safe(&credtrail_pipeline::print::compact(e))
                    );
                }
            }
            Record::Userns(u) => u.seq = self.seq,
        }
        let mut watch = Decorated::new(
            Watch {
                tally: &mut self.tally,
                cuts: self.cuts.as_mut(),
            },
            &mut self.sink,
        );
        match self.policy.as_mut() {
            Some(filter) => {
                let mut sink = PolicySink::new(filter, &mut watch);
                self.enricher.apply(rec, &mut sink)
            }
            None => self.enricher.apply(rec, &mut watch),
        }
    }

    /// Runs the task iterator once: every task's credentials against the
    /// last known ones.
    fn sweep(&mut self) -> anyhow::Result<()> {
        let started = MonoInstant::now();
        self.tracer.sweep()?;
        self.last_sweep = started;
        self.sweeps += 1;
        self.sweep_ns += started.elapsed().as_nanos() as u64;
        Ok(())
    }

    fn counters(&self) -> anyhow::Result<Counters> {
        let k = self.tracer.counters()?;
        // Userspace leaves out nothing the kernel kept unless pods decide
        // (or the two disagree: then counted, not hidden).
        let user = self.policy.as_ref().map(|f| f.counts).unwrap_or_default();
        let spool = self.drain.stats();
        Ok(Counters {
            spool_peak_bytes: spool.peak_bytes,
            spool_spilled_bytes: spool.spilled_bytes,
            sweeps: self.sweeps,
            sweep_ns: self.sweep_ns,
            policy_filtered: k.policy_filtered + user.filtered,
            policy_rate_limited: k.policy_rate_limited + user.rate_limited,
            policy_pod_filtered: user.pod_filtered,
            folded_rows: self.folded_rows,
            folded_calls: self.folded_calls,
            ..counters_from(
                k,
                self.decode_errors,
                self.sink.counts.events,
                self.sink.counts.lifecycle,
            )
        })
    }

    /// Hands the kernel's counters to the writer, warning when losses grow.
    fn refresh_counters(&mut self) -> anyhow::Result<()> {
        let c = self.counters()?;
        if c.lost() + c.lifecycle_lost() > self.reported_lost {
            tracing::warn!(
                ringbuf_full = c.ringbuf_full,
                enter_store_failures = c.enter_store_failures,
                decode_errors = c.decode_errors,
                lifecycle_ringbuf_full = c.lifecycle_ringbuf_full,
                "events lost so far: {} (raise --ring-buffer-mib if ringbuf_full grows)",
                c.lost()
            );
            self.reported_lost = c.lost() + c.lifecycle_lost();
        }
        self.publish(&c);
        if let Some(w) = self.sink.writer.as_mut() {
            w.set_counters(c);
        }
        self.hand_over_by_pid();
        Ok(())
    }

    /// The counters (those the manifest gets) to the metrics endpoint.
    fn publish(&self, c: &Counters) {
        let Some(m) = &self.opts.metrics else {
            return;
        };
        let (ring_used_bytes, ring_size_bytes) = self.drain.ring_fill();
        let mut s = Snapshot {
            counters: c.clone(),
            tally: self.tally.clone(),
            spool_bytes: self.drain.backlog_bytes(),
            ring_used_bytes,
            ring_size_bytes,
            hooks_attached: self.tracer.hooks().len() as u64,
            hooks_missing: self.tracer.missing_optional_hooks().len() as u64,
            ..Snapshot::default()
        };
        if let Some(w) = &self.sink.writer {
            let manifest = w.manifest();
            s.capture_bytes = manifest.kept_bytes();
            s.segments_sealed = manifest.segments.len() as u64;
            s.segments_evicted = manifest.segments.iter().filter(|g| g.evicted).count() as u64;
        }
        m.publish(s);
    }

    /// Losses (the kernel's) and folded calls by process, to the writer.
    fn hand_over_by_pid(&mut self) {
        let lost = self.tracer.lost_by_tgid();
        if let Some(w) = self.sink.writer.as_mut() {
            w.set_by_pid(lost, self.folded_by_pid.clone());
        }
    }

    /// Seals the capture; after a write error, seals what the checkpoints
    /// hold, counts the rest as lost and says so in the error.
    pub fn finish(mut self) -> anyhow::Result<Summary> {
        if let Some(mut cuts) = self.cuts.take() {
            // Their segments are pinned until they are done.
            cuts.join();
        }
        let counters = self.counters()?;
        self.publish(&counters);
        self.hand_over_by_pid();
        let end = Instant::at(host::boottime_ns(), self.realtime_offset_ns);
        let delivered = (self.sink.counts.events, self.sink.counts.lifecycle);
        let manifest = match (self.sink.writer, self.sink.write_error) {
            (Some(mut w), None) => {
                w.set_counters(counters.clone());
                Some(w.finish(end)?)
            }
            (Some(mut w), Some(err)) => {
                w.set_counters(counters.clone());
                let dir = w.dir().to_owned();
                let m = w.fail(&err.to_string(), delivered, end).with_context(|| {
                    format!("after {err}, cannot even write the final manifest")
                })?;
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
        Ok(Summary {
            counters,
            manifest,
            exit_code: None,
        })
    }
}

/// The kernel's pressure level for a spool holding `bytes`: a spool of a
/// few batches is normal; past 1, 16 and 64 MiB, a flood is being spooled
/// and processes over their share are folded ever sooner.
fn backlog_level(bytes: u64) -> u32 {
    const MIB: u64 = 1 << 20;
    match bytes {
        b if b >= 64 * MIB => 3,
        b if b >= 16 * MIB => 2,
        b if b >= MIB => 1,
        _ => 0,
    }
}

/// The live node's pod metadata: the CRI socket, OCI bundles under `/`,
/// then `--pods`.
fn node_pods(opts: &RecordOptions) -> NodePods {
    let pods_file = match &opts.pods_file {
        Some(path) => crate::pods::read_pods_file(path).unwrap_or_else(|e| {
            // Pod labels are a nicety; never lose the recording over them.
            tracing::warn!("{e}; continuing without pod labels from it");
            Default::default()
        }),
        None => Default::default(),
    };
    NodePods {
        root: "/".into(),
        pods_file,
        cri: if opts.no_cri {
            None
        } else {
            crate::cri::CriSource::connect(
                opts.cri_socket.as_deref(),
                opts.metrics
                    .as_ref()
                    .map(|m| m.live.clone())
                    .unwrap_or_default(),
            )
        },
    }
}
