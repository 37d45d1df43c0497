//! Side-by-side system benchmarks: credtrail, auditd and bpftrace watching
//! the same credential syscalls on the same machine, in one run.
//!
//! Each tool is started, given the same workload (`credtrail-workload`, which
//! counts every call it makes), and stopped again; rounds alternate the
//! conditions so all see the same machine state. auditd leaves the kernel
//! giving every new task an audit context once audit was enabled; after
//! measuring it the harness loads `-a never,task` and disables audit again,
//! so the conditions after it are not slowed (see `Auditd::stop`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use credtrail_capture::Capture;
use credtrail_capture::model::event::Event;

use crate::measure::{proc_status, vm_hwm};

/// The ten syscalls every tool watches.
const SYSCALLS: &str =
    "setuid,setgid,setfsuid,setfsgid,setreuid,setregid,setresuid,setresgid,setgroups,capset";

pub struct Tools {
    pub record: PathBuf,
    pub workload: PathBuf,
    pub replay: PathBuf,
    pub work: PathBuf,
}

impl Tools {
    pub fn new(work: &Path) -> anyhow::Result<Tools> {
        let here = std::env::current_exe()?;
        let t = Tools {
            record: here.with_file_name("credtrail-record"),
            workload: here.with_file_name("credtrail-workload"),
            replay: here.with_file_name("credtrail-replay"),
            work: work.to_owned(),
        };
        for p in [&t.record, &t.workload, &t.replay] {
            if !p.exists() {
                bail!(
                    "{} is missing: build it first (cargo build --release --workspace)",
                    p.display()
                );
            }
        }
        std::fs::create_dir_all(work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        Ok(t)
    }

    fn workload(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&self.workload)
            .args(args)
            .output()
            .context("cannot run credtrail-workload")?;
        if !out.status.success() {
            bail!(
                "credtrail-workload {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Starts `credtrail-record --out DIR EXTRA...` into a fresh `dir` and
    /// waits until it is ready: hooks attached, snapshot written,
    /// privileges dropped (only CAP_DAC_READ_SEARCH left).
    pub fn start_recorder(&self, dir: &Path, extra: &[&str]) -> anyhow::Result<Child> {
        let _ = std::fs::remove_dir_all(dir);
        let mut child = Command::new(&self.record)
            .arg("--out")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start credtrail-record")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while proc_status(child.id(), "CapEff:").as_deref() != Some("0000000000000004") {
            if child.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("credtrail-record did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(child)
    }

    /// `credtrail-workload storm` on `threads` threads, flat out; its report.
    pub(crate) fn storm(&self, threads: usize, seconds: u64) -> anyhow::Result<serde_json::Value> {
        self.workload(&[
            "storm",
            "--threads",
            &threads.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
    }

    pub(crate) fn ns_per_call(&self, call: &str, calls: u64) -> anyhow::Result<f64> {
        let v = self.workload(&["time-calls", "--call", call, "--calls", &calls.to_string()])?;
        v["ns_per_call"].as_f64().context("no ns_per_call")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tool {
    None,
    Credtrail,
    /// credtrail with the ia32 entry hook (`--compat-syscalls`).
    CredtrailCompat,
    /// credtrail with the return-to-user check of subjective credentials
    /// (`--subjective-check`): its cost is the difference to `Credtrail`.
    CredtrailSubjective,
    /// credtrail without the switch-out check and the sweep: the cost of
    /// detection is the difference to `Credtrail`.
    CredtrailNoDetect,
    Auditd,
    Bpftrace,
}

impl Tool {
    pub(crate) fn name(self) -> String {
        match self {
            Tool::None => "untraced".into(),
            Tool::Auditd => "auditd".into(),
            Tool::Bpftrace => "bpftrace".into(),
            _ => ["credtrail"]
                .iter()
                .chain(self.recorder_args())
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The recorder's options of a credtrail condition (none for others).
    fn recorder_args(self) -> &'static [&'static str] {
        match self {
            Tool::CredtrailCompat => &["--compat-syscalls"],
            Tool::CredtrailSubjective => &["--subjective-check"],
            Tool::CredtrailNoDetect => &["--no-switch-check", "--sweep-interval", "0"],
            _ => &[],
        }
    }
}

/// A running tool.
pub(crate) enum Running {
    None,
    Credtrail { child: Child, dir: PathBuf },
    Auditd(Auditd),
    Bpftrace { child: Child, out: PathBuf },
}

fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub struct Auditd {
    child: Child,
    log: PathBuf,
}

impl Auditd {
    fn start(work: &Path) -> anyhow::Result<Auditd> {
        let conf = work.join("auditd");
        std::fs::create_dir_all(&conf)?;
        let log = work.join("audit.log");
        let _ = std::fs::remove_file(&log);
        // Our own config: one unrotated log we can count, written as fast
        // as auditd can, never stopping on disk space.
        std::fs::write(
            conf.join("auditd.conf"),
            format!(
                "log_file = {}\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 1000\nmax_log_file_action = IGNORE\nspace_left = 2\nspace_left_action = IGNORE\nadmin_space_left = 1\nadmin_space_left_action = IGNORE\ndisk_full_action = IGNORE\ndisk_error_action = IGNORE\nwrite_logs = yes\n",
                log.display()
            ),
        )?;
        let child = Command::new("auditd")
            .args(["-n", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start auditd (apt-get install auditd)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sh("auditctl", &["-s"])?.contains(&format!("pid {}", child.id())) {
            if Instant::now() > deadline {
                bail!("auditd did not register with the kernel");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        sh("auditctl", &["-D"])?;
        sh("auditctl", &["-b", "8192"])?;
        let mut args = vec!["-a", "always,exit", "-F", "arch=b64"];
        for s in SYSCALLS.split(',') {
            args.extend(["-S", s]);
        }
        sh("auditctl", &args)?;
        sh("auditctl", &["-e", "1"])?;
        Ok(Auditd { child, log })
    }

    /// The kernel's count of records it could not queue.
    fn lost() -> u64 {
        sh("auditctl", &["-s"])
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("lost ").map(|v| v.trim().parse().ok()))
            })
            .flatten()
            .unwrap_or(0)
    }

    /// Rules removed, `-a never,task` loaded (no audit context for new
    /// tasks), audit disabled, daemon stopped.
    fn stop(mut self) -> anyhow::Result<PathBuf> {
        sh("auditctl", &["-D"])?;
        sh("auditctl", &["-a", "never,task"])?;
        sh("auditctl", &["-e", "0"])?;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait()?;
        Ok(self.log)
    }
}

fn bpftrace_script() -> String {
    let probes: Vec<String> = SYSCALLS
        .split(',')
        .map(|s| format!("tracepoint:syscalls:sys_exit_{s}"))
        .collect();
    format!(
        "{} {{ printf(\"%d %d %s %s %d %d\\n\", pid, tid, comm, probe, uid, args->ret); }}",
        probes.join(",\n")
    )
}

impl Running {
    pub(crate) fn start(tool: Tool, t: &Tools, tag: &str) -> anyhow::Result<Running> {
        match tool {
            Tool::None => Ok(Running::None),
            Tool::Credtrail
            | Tool::CredtrailCompat
            | Tool::CredtrailSubjective
            | Tool::CredtrailNoDetect => {
                let dir = t.work.join(format!("capture-{tag}"));
                let child = t.start_recorder(&dir, tool.recorder_args())?;
                Ok(Running::Credtrail { child, dir })
            }
            Tool::Auditd => Ok(Running::Auditd(Auditd::start(&t.work)?)),
            Tool::Bpftrace => {
                let out = t.work.join(format!("bpftrace-{tag}.txt"));
                let _ = std::fs::remove_file(&out);
                let child = Command::new("bpftrace")
                    .arg("-o")
                    .arg(&out)
                    .arg("-e")
                    .arg(bpftrace_script())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .context("cannot start bpftrace (apt-get install bpftrace)")?;
                // bpftrace writes "Attaching N probes..." once attached.
                let deadline = Instant::now() + Duration::from_secs(60);
                while !std::fs::read_to_string(&out).is_ok_and(|s| s.contains("Attaching")) {
                    if Instant::now() > deadline {
                        bail!("bpftrace did not attach");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::thread::sleep(Duration::from_millis(300));
                Ok(Running::Bpftrace { child, out })
            }
        }
    }

    /// Stops the tool; returns what it saw.
    pub(crate) fn stop(self) -> anyhow::Result<Stopped> {
        match self {
            Running::None => Ok(Stopped::None),
            Running::Credtrail { child, dir } => {
                // The recorder's own peak, before the harness reaps it
                // (ru_maxrss would carry this harness's RSS; see measure()).
                let hwm = vm_hwm(child.id());
                let pid = child.id() as i32;
                // SAFETY: signalling and reaping our own child.
                unsafe { libc::kill(pid, libc::SIGINT) };
                let mut status = 0;
                let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                // SAFETY: valid pointers to our locals.
                unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
                let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                Ok(Stopped::Credtrail {
                    dir,
                    cpu_s: cpu(usage.ru_utime) + cpu(usage.ru_stime),
                    max_rss: hwm,
                })
            }
            Running::Auditd(a) => Ok(Stopped::Auditd(a.stop()?)),
            Running::Bpftrace { mut child, out } => {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                child.wait()?;
                Ok(Stopped::Bpftrace { out, stderr: err })
            }
        }
    }
}

pub(crate) enum Stopped {
    None,
    Credtrail {
        dir: PathBuf,
        cpu_s: f64,
        max_rss: u64,
    },
    Auditd(PathBuf),
    Bpftrace {
        out: PathBuf,
        stderr: String,
    },
}

/// Lines of `path` that mention `needle`.
fn count_lines(path: &Path, needle: &str, also: &str) -> anyhow::Result<u64> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut n = 0;
    for line in BufReader::new(f).lines() {
        let line = line.unwrap_or_default();
        if line.contains(needle) && line.contains(also) {
            n += 1;
        }
    }
    Ok(n)
}

/// What one tool caught of a flat-out storm.
struct Caught {
    issued: u64,
    captured: u64,
    lost_counted: u64,
    note: String,
}

/// The generator flat out on every core for `seconds` under each tool.
pub fn throughput(t: &Tools, seconds: u64) -> anyhow::Result<(String, Option<PathBuf>)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut md = format!(
        "`credtrail-workload storm --threads {threads} --seconds {seconds}` (every core toggling its euid with raw setresuid as fast as it can, counting each call) under each tool; one run each. *Captured* counts only the storm's own calls.\n\n| tool | calls issued | captured | counted as lost | uncounted | notes |\n|---|---|---|---|---|---|\n"
    );
    let mut capture = None;
    for tool in [Tool::None, Tool::Credtrail, Tool::Bpftrace, Tool::Auditd] {
        eprintln!("throughput: {}", tool.name());
        let lost_before = if tool == Tool::Auditd {
            0
        } else {
            Auditd::lost()
        };
        let r = Running::start(tool, t, "storm")?;
        let lost_before = if tool == Tool::Auditd {
            Auditd::lost()
        } else {
            lost_before
        };
        let v = t.storm(threads, seconds)?;
        let issued = v["calls"].as_u64().unwrap_or(0);
        let pid = v["pid"].as_u64().unwrap_or(0);
        // Let the tool drain before stopping it.
        std::thread::sleep(Duration::from_secs(2));
        let lost_after = if tool == Tool::Auditd {
            Auditd::lost()
        } else {
            0
        };
        let storm = Storm {
            issued,
            pid,
            seconds,
            auditd_lost: lost_after.saturating_sub(lost_before),
        };
        let c = storm.caught(r.stop()?, &mut capture)?;
        let uncounted = c.issued as i64 - c.captured as i64 - c.lost_counted as i64;
        md += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            tool.name(),
            c.issued,
            if tool == Tool::None {
                "–".into()
            } else {
                c.captured.to_string()
            },
            if tool == Tool::None {
                "–".into()
            } else {
                c.lost_counted.to_string()
            },
            if tool == Tool::None {
                "–".into()
            } else {
                uncounted.to_string()
            },
            c.note
        );
    }
    Ok((md, capture))
}

/// One storm under one tool: what it issued, for counting what was caught.
struct Storm {
    issued: u64,
    pid: u64,
    seconds: u64,
    /// auditd's kernel `lost` counter over the run.
    auditd_lost: u64,
}

impl Storm {
    /// What the stopped tool caught of the storm's calls (a credtrail
    /// capture is kept in `capture`, for the replay benchmark).
    fn caught(&self, stopped: Stopped, capture: &mut Option<PathBuf>) -> anyhow::Result<Caught> {
        Ok(match stopped {
            Stopped::None => Caught {
                issued: self.issued,
                captured: 0,
                lost_counted: 0,
                note: format!("{:.0} calls/s", self.issued as f64 / self.seconds as f64),
            },
            Stopped::Credtrail {
                dir,
                cpu_s,
                max_rss,
            } => {
                let cap = Capture::open(&dir)?;
                let mut captured = 0u64;
                for e in cap.stream::<Event>() {
                    let e = e?;
                    if e.pid as u64 == self.pid {
                        // Calls, not rows: a folded row holds many.
                        captured += e.calls();
                    }
                }
                let k = &cap.manifest.counters;
                let note = format!(
                    "recorder CPU {cpu_s:.2} s = {:.2} µs/event written, peak RSS {:.0} MiB; {:.2} bytes/event on disk; spool peak {:.0} MiB, {:.0} MiB through its file",
                    cpu_s * 1e6 / k.events_written.max(1) as f64,
                    max_rss as f64 / (1 << 20) as f64,
                    cap.manifest
                        .segments_of("events")
                        .map(|s| s.bytes)
                        .sum::<u64>() as f64
                        / k.events_written.max(1) as f64,
                    k.spool_peak_bytes as f64 / (1 << 20) as f64,
                    k.spool_spilled_bytes as f64 / (1 << 20) as f64,
                );
                *capture = Some(dir);
                Caught {
                    issued: self.issued,
                    captured,
                    lost_counted: k.lost(),
                    note,
                }
            }
            Stopped::Bpftrace { out, stderr } => {
                let captured = count_lines(&out, &format!("{} ", self.pid), "sys_exit_setresuid")?;
                let lost: u64 = std::fs::read_to_string(&out)
                    .unwrap_or_default()
                    .lines()
                    .chain(stderr.lines())
                    .filter_map(|l| {
                        l.strip_prefix("Lost ")
                            .and_then(|r| r.split_whitespace().next())
                            .and_then(|n| n.parse::<u64>().ok())
                    })
                    .sum();
                let _ = std::fs::remove_file(&out);
                Caught {
                    issued: self.issued,
                    captured,
                    lost_counted: lost,
                    note: "printf per event to a file".into(),
                }
            }
            Stopped::Auditd(log) => {
                let captured = count_lines(&log, "type=SYSCALL", &format!(" pid={} ", self.pid))?;
                let bytes = std::fs::metadata(&log).map_or(0, |m| m.len());
                let _ = std::fs::remove_file(&log);
                Caught {
                    issued: self.issued,
                    captured,
                    lost_counted: self.auditd_lost,
                    note: format!(
                        "kernel `lost` counter; log {:.0} bytes/event; callers block while the backlog drains ({:.0} calls/s issued)",
                        bytes as f64 / captured.max(1) as f64,
                        self.issued as f64 / self.seconds as f64
                    ),
                }
            }
        })
    }
}

/// Bytes per event of a lossless storm capture and of a realistic mix,
/// against the same events as Tetragon-style JSON lines; replay speed.
pub fn size_and_replay(t: &Tools) -> anyhow::Result<String> {
    let mut md = String::from(
        "Whole capture directory (all tables, manifest) per credential event, against `credtrail-replay --print tetragon` of the same capture (Tetragon's `process_kprobe` JSON lines with both credential sets), raw and `gzip -6`.\n\n| workload | events | capture bytes/event | Tetragon JSON bytes/event | gzip JSON bytes/event | JSON ÷ capture |\n|---|---|---|---|---|---|\n",
    );
    let mut replay_cap = None;
    for (name, mix) in [
        ("storm, 2 × 50,000 setresuid/s for 5 s", false),
        (
            "mix: 300 × `credtrail-workload all` (every syscall, threads, fork/exec/exit)",
            true,
        ),
    ] {
        eprintln!("size: {name}");
        let r = Running::start(Tool::Credtrail, t, if mix { "mix" } else { "size" })?;
        if mix {
            for _ in 0..300 {
                t.workload(&["all"])?;
            }
        } else {
            t.workload(&[
                "storm",
                "--threads",
                "2",
                "--seconds",
                "5",
                "--rate",
                "50000",
            ])?;
        }
        std::thread::sleep(Duration::from_secs(1));
        let Stopped::Credtrail { dir, .. } = r.stop()? else {
            unreachable!()
        };
        let cap = Capture::open(&dir)?;
        let events = cap.manifest.counters.events_written.max(1);
        let disk = dir_bytes(&dir)?;
        let json = t.work.join("tetragon.json");
        let st = Command::new(&t.replay)
            .arg(&dir)
            .args(["--print", "tetragon"])
            .stdout(std::fs::File::create(&json)?)
            .status()?;
        if !st.success() {
            bail!("credtrail-replay --print tetragon failed");
        }
        let json_bytes = std::fs::metadata(&json)?.len();
        let gz = Command::new("gzip")
            .args(["-6", "-c"])
            .stdin(std::fs::File::open(&json)?)
            .output()?
            .stdout
            .len() as u64;
        let _ = std::fs::remove_file(&json);
        let per = |b: u64| b as f64 / events as f64;
        md += &format!(
            "| {name} | {events} | {:.2} | {:.0} | {:.1} | {:.0}× |\n",
            per(disk),
            per(json_bytes),
            per(gz),
            json_bytes as f64 / disk as f64
        );
        if !mix {
            replay_cap = Some((dir, events));
        }
    }
    let (dir, _) = replay_cap.expect("storm capture");
    md += "\n";
    md += &crate::replay::bench_replay(&t.replay, None, &dir, 3)?;
    Ok(md)
}

pub fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            dir_bytes(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(total)
}

/// The machine, for the report header.
pub fn machine() -> String {
    let kernel = sh("uname", &["-r"]).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_owned))
        .unwrap_or_default();
    let versions = [
        sh("auditctl", &["-v"]).unwrap_or_default(),
        sh("bpftrace", &["--version"]).unwrap_or_default(),
    ]
    .map(|s| s.trim().to_owned())
    .join(", ");
    let mut out = Vec::new();
    let _ = writeln!(
        out,
        "Machine: {} × {cpu}, Linux {}; {versions}; release build.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    );
    String::from_utf8(out).unwrap_or_default()
}
