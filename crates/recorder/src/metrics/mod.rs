//! `--metrics-addr`: the recorder's counters in Prometheus' text format.
//!
//! The manifest's counters are the truth; a scrape shows the copy the
//! session hands over with each checkpoint ([`Metrics::publish`], every
//! half second), so a scrape after a quiet second shows exactly what the
//! manifest holds. Cuts and CRI lookups, which happen on other threads,
//! are counted where they happen. Encoding is prometheus-client's; the
//! HTTP side is in [`serve`].

pub mod serve;
mod tally;

pub use tally::Tally;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use credtrail_capture::manifest::Counters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// One label, as prometheus-client encodes it.
pub type Labels = Vec<(&'static str, String)>;
/// A family's samples: labels and value.
type Samples = Vec<(Labels, f64)>;

/// What the session publishes with each checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counters: Counters,
    /// Event rows delivered, by label.
    pub tally: Tally,
    pub capture_bytes: u64,
    pub segments_sealed: u64,
    pub segments_evicted: u64,
    pub spool_bytes: u64,
    pub ring_used_bytes: u64,
    pub ring_size_bytes: u64,
    pub hooks_attached: u64,
    pub hooks_missing: u64,
}

/// Counted on other threads: the cuts (by trigger) and the CRI lookups.
#[derive(Debug, Clone)]
pub struct Live {
    pub cuts: Family<Labels, Counter>,
    pub cut_failures: Family<Labels, Counter>,
    pub cut_triggers: Family<Labels, Counter>,
    pub cut_suppressed: Family<Labels, Counter>,
    pub cut_seconds: Histogram,
    pub cri_lookups: Family<Labels, Counter>,
    pub cri_seconds: Histogram,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            cuts: Family::default(),
            cut_failures: Family::default(),
            cut_triggers: Family::default(),
            cut_suppressed: Family::default(),
            cut_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            cri_lookups: Family::default(),
            cri_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        }
    }
}

impl Live {
    pub fn trigger(name: &str) -> Labels {
        vec![("trigger", name.to_owned())]
    }

    /// One CRI request: `result` is found, not_found or error.
    pub fn cri_lookup(&self, result: &'static str, took: Duration) {
        self.cri_lookups
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
        self.cri_seconds.observe(took.as_secs_f64());
    }
}

/// The registry a scrape encodes, the snapshot behind it, and the socket
/// bound for it until it is served.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    snapshot: Arc<Mutex<Snapshot>>,
    pub live: Live,
    listener: Arc<Mutex<Option<std::net::TcpListener>>>,
}

impl Metrics {
    /// Metrics to be served at `addr`, bound now (see [`serve::bind`]).
    pub fn listen(addr: std::net::SocketAddr) -> anyhow::Result<Metrics> {
        let m = Metrics::new();
        *m.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(serve::bind(addr)?);
        Ok(m)
    }

    /// Starts answering scrapes (once; see [`serve::serve`]).
    pub fn serve(&self) -> anyhow::Result<()> {
        let taken = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match taken {
            Some(l) => serve::serve(l, self.clone()),
            None => Ok(()),
        }
    }

    fn new() -> Metrics {
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let live = Live::default();
        let mut r = Registry::default();
        r.register(
            "credtrail_cuts",
            "Incident cuts made, by what triggered them (signal: SIGUSR1)",
            live.cuts.clone(),
        );
        r.register(
            "credtrail_cut_failures",
            "Incident cuts that failed, by trigger (see the recorder's log)",
            live.cut_failures.clone(),
        );
        r.register(
            "credtrail_cut_triggers",
            "Events that matched a --cut-on trigger",
            live.cut_triggers.clone(),
        );
        r.register(
            "credtrail_cut_triggers_suppressed",
            "Trigger events that made no cut of their own: a cut of the same trigger was pending or within --cut-cooldown",
            live.cut_suppressed.clone(),
        );
        r.register_with_unit(
            "credtrail_cut_duration",
            "Time to make a cut once its window ended (seal, link, rewrite, sign)",
            Unit::Seconds,
            live.cut_seconds.clone(),
        );
        r.register(
            "credtrail_cri_lookups",
            "Pod metadata requests to the CRI socket, by result",
            live.cri_lookups.clone(),
        );
        r.register_with_unit(
            "credtrail_cri_lookup_duration",
            "Time of each CRI pod metadata request",
            Unit::Seconds,
            live.cri_seconds.clone(),
        );
        r.register_collector(Box::new(Published(Arc::clone(&snapshot))));
        Metrics {
            registry: Arc::new(r),
            snapshot,
            live,
            listener: Arc::default(),
        }
    }

    /// The session's counters, as of its latest checkpoint.
    pub fn publish(&self, s: Snapshot) {
        *lock(&self.snapshot) = s;
    }

    /// The text a scrape gets (OpenMetrics 1.0).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        // Writing to a String fails only on a bug in the encoder.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("metrics: encoding failed: {e}");
        }
        out
    }
}

fn lock(m: &Mutex<Snapshot>) -> MutexGuard<'_, Snapshot> {
    // A panicked publisher left a whole snapshot: still the latest one.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The snapshot as metrics, read at each scrape.
#[derive(Debug)]
struct Published(Arc<Mutex<Snapshot>>);

/// Writes one metric family: a counter or gauge, each sample with its labels.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, v) in samples {
        let sample = m.encode_family(labels)?;
        // Counts as integers: exact, and as the manifest writes them.
        let whole = v.fract() == 0.0 && v.abs() < 9.0e15;
        match kind {
            MetricType::Counter if whole => ConstCounter::new(*v as u64).encode(sample)?,
            MetricType::Counter => ConstCounter::new(*v).encode(sample)?,
            _ if whole => ConstGauge::new(*v as i64).encode(sample)?,
            _ => ConstGauge::new(*v).encode(sample)?,
        }
    }
    Ok(())
}

fn by(label: &'static str, values: &[(&str, u64)]) -> Vec<(Labels, f64)> {
    values
        .iter()
        .map(|(k, v)| (vec![(label, (*k).to_owned())], *v as f64))
        .collect()
}

/// A metric without labels: name, help, unit, type, and its value in a
/// snapshot.
type Plain = (
    &'static str,
    &'static str,
    Option<Unit>,
    MetricType,
    fn(&Snapshot) -> f64,
);

const SECONDS: Option<Unit> = Some(Unit::Seconds);
const BYTES: Option<Unit> = Some(Unit::Bytes);
const COUNTER: MetricType = MetricType::Counter;
const GAUGE: MetricType = MetricType::Gauge;

/// Every unlabelled metric of the snapshot, in the order scraped.
const PLAIN: &[Plain] = &[
    (
        "credtrail_kernel_events",
        "Events the kernel programs produced (calls completed, unexplained changes)",
        None,
        COUNTER,
        |s| s.counters.kernel_events as f64,
    ),
    (
        "credtrail_calls_folded",
        "Calls the kernel folded into repeat counts (not lost: the repeat_count of folded rows)",
        None,
        COUNTER,
        |s| s.counters.folded_calls as f64,
    ),
    (
        "credtrail_folded_rows",
        "Rows that stand for folded calls",
        None,
        COUNTER,
        |s| s.counters.folded_rows as f64,
    ),
    (
        "credtrail_lifecycle_records",
        "Process lifecycle rows written (exec, fork, exit)",
        None,
        COUNTER,
        |s| s.counters.lifecycle_written as f64,
    ),
    (
        "credtrail_unexplained_found",
        "Unexplained credential changes the kernel found (written, or lost to a full ring buffer)",
        None,
        COUNTER,
        |s| s.counters.unexplained as f64,
    ),
    (
        "credtrail_unexplained_lost",
        "Unexplained changes lost to a full ring buffer (also in credtrail_events_lost_total{reason=\"ringbuf_full\"}): a flood may be hiding one",
        None,
        COUNTER,
        |s| s.counters.unexplained_ringbuf_full as f64,
    ),
    (
        "credtrail_user_namespace_records_lost",
        "User namespace records lost to a full ring buffer (their rows' namespace-local ids are unknown until sent again)",
        None,
        COUNTER,
        |s| s.counters.user_namespaces_ringbuf_full as f64,
    ),
    (
        "credtrail_unchecked_tasks",
        "Tasks whose last known credentials could not be stored, so not checked for unexplained changes",
        None,
        COUNTER,
        |s| s.counters.unchecked_tasks as f64,
    ),
    (
        "credtrail_lost_unattributed",
        "Losses whose process the kernel could not name (its table of losing processes was full)",
        None,
        COUNTER,
        |s| s.counters.lost_unattributed as f64,
    ),
    (
        "credtrail_subjective_overrides",
        "Tasks found running with subjective credentials that are not their objective ones",
        None,
        COUNTER,
        |s| s.counters.subjective_overrides as f64,
    ),
    (
        "credtrail_tasks_checked",
        "Credential checks run in the kernel (calls, exec, fork, exit, switch-outs, sweeps)",
        None,
        COUNTER,
        |s| s.counters.tasks_checked as f64,
    ),
    (
        "credtrail_returns_checked",
        "Returns to user space checked (--subjective-check)",
        None,
        COUNTER,
        |s| s.counters.returns_checked as f64,
    ),
    (
        "credtrail_sweeps",
        "Sweeps over every task for unexplained changes",
        None,
        COUNTER,
        |s| s.counters.sweeps as f64,
    ),
    (
        "credtrail_sweep_duration",
        "Time spent in sweeps",
        SECONDS,
        COUNTER,
        |s| s.counters.sweep_ns as f64 / 1e9,
    ),
    (
        "credtrail_sweep_tasks",
        "Tasks the sweeps visited",
        None,
        COUNTER,
        |s| s.counters.sweep_tasks as f64,
    ),
    (
        "credtrail_outside_scope_events",
        "-- COMMAND: calls of processes outside the command's tree, left out in the kernel",
        None,
        COUNTER,
        |s| s.counters.outside_scope as f64,
    ),
    (
        "credtrail_scope_full",
        "-- COMMAND: processes of the command's tree the kernel could not follow (their events were not recorded)",
        None,
        COUNTER,
        |s| s.counters.scope_full as f64,
    ),
    (
        "credtrail_segments_sealed",
        "Capture segments sealed (every table)",
        None,
        COUNTER,
        |s| s.segments_sealed as f64,
    ),
    (
        "credtrail_segments_evicted",
        "Capture segments deleted to keep within --keep or --max-capture-bytes",
        None,
        COUNTER,
        |s| s.segments_evicted as f64,
    ),
    (
        "credtrail_spool_spilled",
        "Bytes the spool wrote to disk because encoding fell behind the ring",
        BYTES,
        COUNTER,
        |s| s.counters.spool_spilled_bytes as f64,
    ),
    (
        "credtrail_capture",
        "Bytes of sealed segments the capture keeps",
        BYTES,
        GAUGE,
        |s| s.capture_bytes as f64,
    ),
    (
        "credtrail_spool",
        "Bytes waiting between the ring buffer and the encoder (memory and disk)",
        BYTES,
        GAUGE,
        |s| s.spool_bytes as f64,
    ),
    (
        "credtrail_spool_peak",
        "The most bytes the spool held at once",
        BYTES,
        GAUGE,
        |s| s.counters.spool_peak_bytes as f64,
    ),
    (
        "credtrail_ring_buffer_used",
        "Bytes in the kernel ring buffer not yet read (when it is full, ringbuf_full losses begin)",
        BYTES,
        GAUGE,
        |s| s.ring_used_bytes as f64,
    ),
    (
        "credtrail_ring_buffer_size",
        "Size of the kernel ring buffer (--ring-buffer-mib)",
        BYTES,
        GAUGE,
        |s| s.ring_size_bytes as f64,
    ),
    (
        "credtrail_hooks_attached",
        "BPF programs attached",
        None,
        GAUGE,
        |s| s.hooks_attached as f64,
    ),
    (
        "credtrail_hooks_missing",
        "Optional hooks this kernel does not have",
        None,
        GAUGE,
        |s| s.hooks_missing as f64,
    ),
];

impl Collector for Published {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = lock(&self.0).clone();
        let c = &s.counters;
        let calls: Vec<(Labels, f64)> = s
            .tally
            .by_call
            .iter()
            .map(|((call, result), n)| {
                (
                    vec![
                        ("syscall", (*call).to_owned()),
                        ("result", (*result).to_owned()),
                    ],
                    *n as f64,
                )
            })
            .collect();
        let checks: Vec<(Labels, f64)> = s
            .tally
            .unexplained_by_check
            .iter()
            .map(|(check, n)| (vec![("check", check.clone())], *n as f64))
            .collect();
        let labelled: [(&str, &str, Samples); 6] = [
            (
                "credtrail_events",
                "Credential event rows written (a folded row counts once), by syscall and result (ok, an errno name, refused, query); their sum is the manifest's events_written",
                calls,
            ),
            (
                "credtrail_events_lost",
                "Credential events lost, by reason; their sum is the manifest's lost()",
                by(
                    "reason",
                    &[
                        ("ringbuf_full", c.ringbuf_full),
                        ("fold_full", c.fold_full),
                        ("enter_store_failure", c.enter_store_failures),
                        ("decode_error", c.decode_errors),
                        ("write_error", c.events_lost_io),
                    ],
                ),
            ),
            (
                "credtrail_lifecycle_lost",
                "Process lifecycle records lost, by reason",
                by(
                    "reason",
                    &[
                        ("ringbuf_full", c.lifecycle_ringbuf_full),
                        ("write_error", c.lifecycle_lost_io),
                    ],
                ),
            ),
            (
                "credtrail_evicted",
                "Rows deleted with the oldest segments (--keep, --max-capture-bytes), by table",
                by(
                    "table",
                    &[
                        ("events", c.events_evicted),
                        ("lifecycle", c.lifecycle_evicted),
                    ],
                ),
            ),
            (
                "credtrail_unexplained_changes",
                "Unexplained credential changes written, by the check that found them",
                checks,
            ),
            (
                "credtrail_policy_filtered_events",
                "Events left out by --policy, by stage: kernel (no policy posted them), rate_limit (a rateLimit held them back), pod (a namespace or podSelector, decided in userspace)",
                by(
                    "stage",
                    &[
                        (
                            "kernel",
                            c.policy_filtered.saturating_sub(c.policy_rate_limited),
                        ),
                        ("rate_limit", c.policy_rate_limited),
                        ("pod", c.policy_pod_filtered),
                    ],
                ),
            ),
        ];
        for (name, help, samples) in &labelled {
            family(&mut enc, name, help, None, COUNTER, samples)?;
        }
        for (name, help, unit, kind, value) in PLAIN {
            family(
                &mut enc,
                name,
                help,
                unit.clone(),
                *kind,
                &[(Vec::new(), value(&s))],
            )?;
        }
        process(&mut enc)
    }
}

/// Prometheus' standard process metrics, from /proc/self.
fn process(enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Ok(me) = procfs::process::Process::myself() else {
        return Ok(());
    };
    let Ok(stat) = me.stat() else {
        return Ok(());
    };
    let ticks = procfs::ticks_per_second() as f64;
    let page = procfs::page_size();
    family(
        enc,
        "process_cpu",
        "Total user and system CPU time of the recorder",
        Some(Unit::Seconds),
        MetricType::Counter,
        &[(Vec::new(), (stat.utime + stat.stime) as f64 / ticks)],
    )?;
    family(
        enc,
        "process_resident_memory",
        "Resident memory of the recorder",
        Some(Unit::Bytes),
        MetricType::Gauge,
        &[(Vec::new(), (stat.rss * page) as f64)],
    )?;
    if let Ok(fds) = me.fd_count() {
        family(
            enc,
            "process_open_fds",
            "Open file descriptors of the recorder",
            None,
            MetricType::Gauge,
            &[(Vec::new(), fds as f64)],
        )?;
    }
    Ok(())
}
