//! The `credtrail-record` command line, here so that tests can render its
//! help exactly as the binary prints it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use credtrail_cli::LogFormat;
use credtrail_pipeline::print::PrintFormat;

use crate::autocut::Trigger;

/// Record which processes change their UIDs, GIDs, groups or capabilities,
/// with the full credentials before and after each call, into a capture
/// directory of Parquet files (and/or print them live).
#[derive(Parser, Debug)]
#[command(
    name = "credtrail-record",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub record: RecordArgs,
    /// How log lines on stderr look: `human`, or `json` (one object per
    /// line: timestamp, level, fields with the message) for Fluent Bit or
    /// Vector.
    #[arg(long, value_enum, default_value = "human", global = true)]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a capture's manifest summary and its events.
    Inspect {
        /// Capture directory.
        dir: PathBuf,
        /// How to print the events.
        #[arg(long, value_enum, default_value = "compact")]
        print: PrintFormat,
    },
    /// Cut the last minutes of a running capture (a flight recorder's)
    /// into a complete, signed, verifiable capture of their own, while the
    /// recorder goes on with no gap: it seals its open segments, the cut
    /// hard-links them (copies them across file systems) and rewrites only
    /// the segment at the window's start. `kill -USR1` on the recorder
    /// does the same into `--cut-root`.
    Cut {
        /// The running capture, or a folder holding it (e.g. an
        /// `--out-root` ROOT: the newest capture still recording is taken).
        running: PathBuf,
        /// The new capture's folder (must not exist or be empty; made 0700).
        incident: PathBuf,
        /// How far back: `10m`, `90s`, `1h` (default: everything still kept).
        #[arg(long, value_parser = parse_duration)]
        last: Option<std::time::Duration>,
        /// Sign the cut's manifest with this ed25519 key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY_PEM")]
        sign_key: Option<PathBuf>,
        /// How long to wait for the recorder to seal its open segments.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// Is a recorder running on this capture (or folder of captures)? Prints
    /// its state, hooks and loss counters; exits 0 only when a recorder
    /// holds a capture that is recording with its hooks attached (a
    /// readiness probe).
    Status {
        /// A capture, or a folder holding captures (e.g. an `--out-root` ROOT).
        dir: PathBuf,
    },
    /// Seal a capture whose recorder died (kill -9, OOM, power loss):
    /// each open segment is cut back to its last checkpoint (at most
    /// half a second old) and listed in the manifest.
    Recover {
        /// Capture directory.
        dir: PathBuf,
        /// Re-sign the manifest with this ed25519 key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY_PEM")]
        sign_key: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Capture directory to create (must be new or empty; made 0700).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Fleet layout: create the capture as ROOT/node=<node>/<start time,
    /// UTC>, so that many nodes' captures under one root are one dataset
    /// (docs/capture-format.md, "Fleet layout"). Instead of --out.
    #[arg(long, value_name = "ROOT", conflicts_with = "out")]
    pub out_root: Option<PathBuf>,
    /// Stop after this many seconds (default: run until Ctrl-C / SIGTERM).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: Option<u64>,
    /// Print each event to stdout as it happens.
    #[arg(long, value_enum)]
    pub print: Option<PrintFormat>,
    /// Start a new events segment after this many seconds (default 300;
    /// with --keep, a sixtieth of it between 10 and 300).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rotate_seconds: Option<u64>,
    /// Start a new events segment once the current one reaches this many bytes.
    #[arg(long, default_value_t = 256 << 20, value_parser = clap::value_parser!(u64).range(4096..))]
    pub rotate_bytes: u64,
    /// Kernel ring buffer size in MiB (a power of two); raise it if ringbuf_full drops appear.
    #[arg(long, default_value_t = 8, value_parser = parse_ring_mib)]
    pub ring_buffer_mib: u32,
    /// Memory in MiB for records drained from the ring and not yet encoded
    /// (a storm faster than encoding waits here, then on disk).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub spool_mib: u32,
    /// Disk in MiB (an unlinked file beside the capture) for the same once
    /// memory is full; 0: none. Past both the ring fills and the kernel
    /// counts the loss (ringbuf_full).
    #[arg(long, default_value_t = 4096)]
    pub spool_disk_mib: u64,
    /// Also record credential calls made through the 32-bit syscall entry
    /// (`int $0x80`, 32-bit programs), which the per-syscall tracepoints
    /// never see: any process can make them. Costs every syscall on the
    /// host, not only credential ones: getpid 62 → 144 ns measured here
    /// (see BENCHMARKS.md). Without it, such changes are still found as
    /// unexplained (after the fact, without the call).
    #[arg(long)]
    pub compat_syscalls: bool,
    /// Seconds between sweeps over every task for credentials that changed
    /// with no recorded call to explain it (`unexplained` events), so a
    /// process that changed and went to sleep is found within one interval
    /// (0 disables the sweep; the other checks stay).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 1.0,
        value_parser = parse_interval,
        allow_negative_numbers = true
    )]
    pub sweep_interval: f64,
    /// Do not check the credentials of each task as it is switched out
    /// (a pointer comparison per context switch). Unexplained changes are
    /// then found at the task's next recorded call, exec, fork or exit, or
    /// by the sweep.
    #[arg(long)]
    pub no_switch_check: bool,
    /// Also compare each task's subjective credentials (task->cred, what
    /// permission checks use) with its objective ones at every return to
    /// user space: a raw sys_exit hook on every syscall of the host (+45 ns
    /// per syscall measured). Without it, a task running with credentials
    /// an exploit swapped in is found at its next recorded call or exec.
    #[arg(long)]
    pub subjective_check: bool,
    /// Node name stored with every event (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// `kubectl get pods -A -o json` output: pod labels and image ids for
    /// containers (pod names also come from the runtime's annotations).
    #[arg(long, value_name = "FILE")]
    pub pods: Option<PathBuf>,
    /// The container runtime's CRI socket, asked for each new container's
    /// pod (namespace, name, uid, labels, annotations, image digest,
    /// workload). Default: the first of /run/containerd/containerd.sock,
    /// /var/run/crio/crio.sock, /run/crio/crio.sock that exists.
    #[arg(long, value_name = "SOCKET", conflicts_with = "no_cri")]
    pub cri_socket: Option<PathBuf>,
    /// Do not ask the container runtime (pod metadata then comes from OCI
    /// bundle annotations and --pods).
    #[arg(long)]
    pub no_cri: bool,
    /// Keep the capture within this many bytes by deleting its oldest
    /// segments (a ring) instead of filling the disk; evictions are
    /// counted in the manifest.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1 << 20..))]
    pub max_capture_bytes: Option<u64>,
    /// Flight recorder: keep only the segments of the last DURATION
    /// (`30m`, `2h`), deleting older ones as it goes (counted as evicted),
    /// for always-on use; `credtrail-record cut` or `kill -USR1` then
    /// takes the last minutes out as a capture of their own. Combines
    /// with --max-capture-bytes (whichever is reached first).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keep: Option<std::time::Duration>,
    /// Where `kill -USR1` and `--cut-on` put their cuts, as
    /// `DIR/node=<node>/<time>` (the fleet layout, so `credtrail-ship
    /// --follow DIR` and `credtrail-query` take them as they are). Default:
    /// `incidents` next to the capture's folder (or next to --out-root).
    #[arg(long, value_name = "DIR")]
    pub cut_root: Option<PathBuf>,
    /// How far back a cut goes: from the signal (`kill -USR1`), or from
    /// the event that triggered it (`--cut-on`).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_cut_last)]
    pub cut_last: std::time::Duration,
    /// Cut by itself when it records such an event: `unexplained` (a change
    /// no recorded call explains), `became-root` (a process became root, on
    /// the host or in its user namespace), `policy:NAME` (an event the
    /// --policy NAME kept; an event several policies post carries, and
    /// triggers on, the first one's name). Comma-separated or repeated.
    /// Each cut holds the --cut-last before the event and the --cut-after
    /// after it, signed with --sign-key, under --cut-root; a log line
    /// names the event.
    #[arg(long, value_name = "TRIGGER", value_delimiter = ',', value_parser = Trigger::parse)]
    pub cut_on: Vec<Trigger>,
    /// How long after the triggering event a --cut-on cut ends (at most 1h).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_cut_after)]
    pub cut_after: std::time::Duration,
    /// The most cuts the cut root's node folder may hold: past it, triggers
    /// make no cut (logged, counted in credtrail_cut_triggers_suppressed_total)
    /// until cuts are shipped away (`credtrail-ship --follow --remove-local`)
    /// or removed. Anyone on the node can cause some triggers.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub cut_max: u32,
    /// The least time between two cuts of one trigger: events of a trigger
    /// storm in between make no cut of their own (they are in the capture,
    /// and counted in credtrail_cut_triggers_suppressed_total).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub cut_cooldown: std::time::Duration,
    /// Serve Prometheus metrics (events by call and result, losses by
    /// reason, ring buffer and spool use, unexplained changes, sweeps,
    /// cuts, CRI lookups, the recorder's CPU and memory) at
    /// http://ADDR:PORT/metrics, e.g. `127.0.0.1:9464` or `0.0.0.0:9464`.
    /// Off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Scheduling priority (nice value, -20 to 19) of the recorder's
    /// threads. Raised by default, as auditd's `priority_boost` does: on a
    /// node whose CPUs are busy, the recorder still decodes, writes and
    /// checkpoints on time, so a kill -9 loses at most about a second.
    /// 0 leaves it as started.
    #[arg(long, value_name = "N", default_value_t = -10, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: i32,
    /// Do not fsync the checkpoints written every half second. A killed
    /// recorder still loses at most that half second, but a power cut or
    /// kernel crash may lose back to the last sealed segment. For slow
    /// storage, where fsync stalls the recorder.
    #[arg(long)]
    pub no_fsync: bool,
    /// Sign every manifest written with this ed25519 private key
    /// (PKCS#8 PEM, e.g. `openssl genpkey -algorithm ed25519`): a
    /// detached `manifest.json.sig` for `credtrail-replay --verify --pubkey`.
    #[arg(long, value_name = "KEY_PEM")]
    pub sign_key: Option<PathBuf>,
    /// Regular expression: in stored command lines, what follows a match
    /// is replaced by `<redacted>` (the next argument, if the match ends
    /// one). Repeatable, e.g. `--redact=--password= --redact='^-p$'`.
    #[arg(long, value_name = "REGEX")]
    pub redact: Vec<String>,
    /// Tetragon TracingPolicy or TracingPolicyNamespaced YAML
    /// (cilium.io/v1alpha1) choosing which credential events to record,
    /// filtered in the kernel. Repeatable: an event is kept when any policy
    /// posts it, and carries the first such policy's name. Lifecycle rows
    /// are always kept. See docs/policies.md for what maps to what.
    #[arg(long, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Record even when a policy uses what credtrail cannot honour
    /// (Sigkill, cap_capable, override_creds, ...): each is ignored, which
    /// widens the filter, and listed in the manifest's settings.
    #[arg(long, requires = "policy")]
    pub policy_warn: bool,
    /// Run COMMAND as this user (its uid, gid and groups from the user
    /// database), switched to before recording starts.
    #[arg(long, value_name = "NAME", requires = "command")]
    pub user: Option<String>,
    /// Record only this command and its descendants (`-- COMMAND ARGS…`),
    /// filtered in the kernel: the recorder starts it once its hooks are
    /// attached, stops when the command and every process it started have
    /// exited, and exits with the command's exit status.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(format!("{e} (e.g. 90s, 10m, 2h)")),
    }
}

fn parse_cut_last(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d > std::time::Duration::from_secs(7 * 86_400) {
        return Err("at most 7 days".into());
    }
    Ok(d)
}

fn parse_cut_after(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d > std::time::Duration::from_secs(3600) {
        return Err("at most 1h: the window's segments are kept until it ends".into());
    }
    Ok(d)
}

impl RecordArgs {
    /// Segment age: short under --keep, so the window is fine-grained.
    pub fn rotate_seconds(&self) -> u64 {
        self.rotate_seconds.unwrap_or_else(|| match self.keep {
            Some(keep) => (keep.as_secs() / 60).clamp(10, 300),
            None => 300,
        })
    }
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=1024).contains(&v) || !v.is_power_of_two() {
        return Err("must be a power of two from 1 to 1024".into());
    }
    Ok(v)
}
