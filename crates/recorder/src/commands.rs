//! What `credtrail-record` does with its command line: a recording (the
//! options checked and turned into a session's, in an order that keeps a
//! bad option from touching the kernel or the disk) or one of its
//! subcommands.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use credtrail_capture::manifest::SigningKey;
use credtrail_capture::sign::load_signing_key;
use credtrail_capture::{Retention, Rotation};
use credtrail_cli::term::safe;
use credtrail_cli::{LogFormat, Tool as _, say};
use credtrail_pipeline::policy::Rules;
use credtrail_pipeline::print::inspect::{inspect, recover};

use crate::autocut::{CutOptions, Trigger};
use crate::cli::{Cli, Command, RecordArgs};
use crate::command::{Launcher, Scope, User};
use crate::flight;
use crate::metrics::Metrics;
use crate::record::{record, record_command};
use crate::redact::Redactor;
use crate::session::RecordOptions;

impl credtrail_cli::Tool for Cli {
    const PROGRAM: &'static str = "credtrail-record";
    const LOG_LEVEL: &'static str = "info";

    fn log_format(&self) -> LogFormat {
        self.log_format
    }

    fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self.command {
            None => record_args(self.record, out),
            Some(command) => {
                subcommand(command, out, err)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn subcommand(command: Command, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        Command::Inspect { dir, print } => inspect(&dir, print, out, err),
        Command::Recover { dir, sign_key } => recover(Cli::PROGRAM, &dir, sign_key.as_deref(), err),
        Command::Cut {
            running,
            incident,
            last,
            sign_key,
            timeout,
        } => {
            let key = sign_key.as_deref().map(load_signing_key).transpose()?;
            let (dir, report) =
                flight::cut_running(&running, &incident, last, key.as_ref(), timeout)?;
            say(
                "credtrail-record",
                &flight::cut_line(&dir, &incident, &report),
            );
            Ok(())
        }
        Command::Status { dir } => {
            writeln!(out, "{}", safe(&flight::status(&dir)?))?;
            Ok(())
        }
    }
}

fn record_args(mut a: RecordArgs, stdout: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if a.out.is_none() && a.out_root.is_none() && a.print.is_none() {
        anyhow::bail!(
            "nothing to do: pass --out DIR (or --out-root ROOT) to write a capture and/or --print json|compact"
        );
    }
    // The command's first process, forked while the recorder has one
    // thread and its own privileges (see command.rs).
    let user = a.user.as_deref().map(User::lookup).transpose()?;
    let mut launcher = (!a.command.is_empty())
        .then(|| Launcher::fork(&a.command, user.as_ref()))
        .transpose()?;
    let node = a
        .node_name
        .clone()
        .unwrap_or_else(|| credtrail_capture::host::uname().0);
    let out = capture_dir(&mut a, &node)?;
    let sign_key = a.sign_key.as_deref().map(load_signing_key).transpose()?;
    let redactor = Redactor::new(&a.redact).map_err(anyhow::Error::msg)?;
    // Before anything touches the kernel or the disk: a bad policy
    // records nothing.
    let policy = Rules::load(&a.policy, a.policy_warn)?;
    for line in &policy.ignored {
        tracing::warn!("policy: {line}");
    }
    // The node's folder of --out-root, owner-only like the capture
    // in it: made once every option has been checked, and refused
    // if someone else made it.
    if let Some(root) = &a.out_root {
        credtrail_capture::fs::Dir::open_root(root)?
            .private_subdir(&credtrail_capture::layout::node_folder(&node)?)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    let signal = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&signal))
        .context("cannot install signal handlers")?;
    check_cut_triggers(&a, out.as_deref(), &policy)?;
    let cuts = out
        .as_deref()
        .map(|dir| cut_options(&a, dir, &node, sign_key.as_ref(), &signal));
    let metrics = a.metrics_addr.map(Metrics::listen).transpose()?;
    let scope = launcher.as_ref().map(|l| Scope {
        program: a.command[0].clone(),
        user: a.user.clone(),
        pid: l.pid(),
    });
    let opts = RecordOptions {
        out,
        command: scope,
        sign_key,
        redactor,
        policy,
        cuts,
        metrics,
        ..session_options(a)
    };
    let summary = match launcher.as_mut() {
        Some(l) => record_command(&opts, &stop, stdout, l)?,
        None => record(&opts, &stop, stdout)?,
    };
    if let Some(m) = summary.manifest {
        say(
            "credtrail-record",
            &format!(
                "sealed {} segment(s), {} events, {} lost; chain head {} (note it: `credtrail-replay --verify --expect-head` checks it)",
                m.segments.len(),
                m.counters.events_written,
                m.counters.lost(),
                m.chain_head.as_deref().unwrap_or("-")
            ),
        );
    }
    Ok(summary.exit_code.unwrap_or(ExitCode::SUCCESS))
}

/// The capture's folder: `--out`, or a new one under `--out-root` in the
/// fleet layout (named, not made: it is made with the capture).
fn capture_dir(a: &mut RecordArgs, node: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    Ok(match (a.out.take(), &a.out_root) {
        (Some(dir), _) => Some(dir),
        (None, Some(root)) => {
            let now = chrono::Utc::now().timestamp();
            Some(credtrail_capture::layout::capture_dir(root, node, now)?)
        }
        (None, None) => None,
    })
}

/// Where and when the recorder cuts its own capture (`--cut-*`, SIGUSR1).
fn cut_options(
    a: &RecordArgs,
    dir: &Path,
    node: &str,
    key: Option<&SigningKey>,
    signal: &Arc<AtomicBool>,
) -> CutOptions {
    CutOptions {
        plan: flight::CutPlan {
            root: a.cut_root.clone().unwrap_or_else(|| {
                // Next to the capture's folder, or to --out-root.
                let base = a.out_root.as_deref().unwrap_or(dir);
                base.parent().unwrap_or(Path::new("/")).join("incidents")
            }),
            node: node.to_owned(),
            key: key.cloned(),
        },
        triggers: a.cut_on.clone(),
        last: a.cut_last,
        after: a.cut_after,
        cooldown: a.cut_cooldown,
        max_cuts: a.cut_max as usize,
        signal: Arc::clone(signal),
    }
}

/// `--cut-on` needs a capture to cut, and a `policy:NAME` trigger a
/// `--policy` of that name.
fn check_cut_triggers(a: &RecordArgs, out: Option<&Path>, policy: &Rules) -> anyhow::Result<()> {
    if !a.cut_on.is_empty() && out.is_none() {
        anyhow::bail!("--cut-on cuts a capture: pass --out DIR or --out-root ROOT too");
    }
    for t in &a.cut_on {
        if let Trigger::Policy(name) = t
            && !policy.policies.iter().any(|p| p.name == *name)
        {
            anyhow::bail!(
                "--cut-on {}: no --policy is named {name:?} (the names given: {})",
                t.name(),
                policy
                    .policies
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// The session's options that are the command line's as given (the
/// capture, the command, keys, policy, cuts and metrics are set by
/// `record_args`).
fn session_options(a: RecordArgs) -> RecordOptions {
    RecordOptions {
        out: None,
        command: None,
        duration: a.duration.map(Duration::from_secs),
        print: a.print,
        rotation: Rotation {
            max_age: Duration::from_secs(a.rotate_seconds()),
            max_bytes: a.rotate_bytes,
        },
        nice: a.nice,
        ring_buffer_bytes: a.ring_buffer_mib << 20,
        spool_memory_bytes: (a.spool_mib as usize) << 20,
        spool_disk_bytes: a.spool_disk_mib << 20,
        compat_syscalls: a.compat_syscalls,
        sweep_interval: Duration::from_secs_f64(a.sweep_interval),
        switch_check: !a.no_switch_check,
        subjective_check: a.subjective_check,
        node_name: a.node_name,
        pods_file: a.pods,
        cri_socket: a.cri_socket,
        no_cri: a.no_cri,
        retention: Retention {
            max_capture_bytes: a.max_capture_bytes,
            no_fsync: a.no_fsync,
            keep: a.keep,
        },
        sign_key: None,
        redactor: Redactor::default(),
        policy: Rules::default(),
        cuts: None,
        metrics: None,
    }
}
