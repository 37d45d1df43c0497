//! credtrail-record: capture every credential-changing syscall on this node.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use credtrail_capture::manifest::Discarded;
use credtrail_capture::sign::load_signing_key;
use credtrail_capture::{Capture, Retention, Rotation};
use credtrail_cli::say;
use credtrail_cli::term::safe;
use credtrail_cli::term::table::{Column, Layout, Mark, Table, thousands};
use credtrail_pipeline::policy::Rules;
use credtrail_pipeline::print::{PrintFormat, print_event};
use credtrail_recorder::autocut::{CutOptions, Trigger};
use credtrail_recorder::cli::{Cli, Command, RecordArgs};
use credtrail_recorder::command::{Launcher, Scope, User};
use credtrail_recorder::flight;
use credtrail_recorder::metrics::Metrics;
use credtrail_recorder::record::{record, record_command};
use credtrail_recorder::redact::Redactor;
use credtrail_recorder::session::RecordOptions;

fn main() -> ExitCode {
    let cli = Cli::parse();
    credtrail_cli::main_logged("credtrail-record", "info", cli.log_format, || run(cli))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => record_args(cli.record),
        Some(command) => {
            subcommand(command)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn subcommand(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect { dir, print } => inspect(&dir, print),
        Command::Recover { dir, sign_key } => recover(&dir, sign_key.as_deref()),
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
            println!("{}", safe(&flight::status(&dir)?));
            Ok(())
        }
    }
}

fn record_args(mut a: RecordArgs) -> anyhow::Result<ExitCode> {
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
    let rotate_seconds = a.rotate_seconds();
    let out = match (a.out.take(), &a.out_root) {
        (Some(dir), _) => Some(dir),
        (None, Some(root)) => {
            let node = a
                .node_name
                .clone()
                .unwrap_or_else(|| credtrail_capture::host::uname().0);
            let now = chrono::Utc::now().timestamp();
            Some(credtrail_capture::layout::capture_dir(root, &node, now)?)
        }
        (None, None) => None,
    };
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
        let node = a
            .node_name
            .clone()
            .unwrap_or_else(|| credtrail_capture::host::uname().0);
        credtrail_capture::fs::Dir::open_root(root)?
            .private_subdir(&credtrail_capture::layout::node_folder(&node)?)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    let node = a
        .node_name
        .clone()
        .unwrap_or_else(|| credtrail_capture::host::uname().0);
    let signal = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&signal))
        .context("cannot install signal handlers")?;
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
    let cuts = out.as_deref().map(|dir| CutOptions {
        plan: flight::CutPlan {
            root: a.cut_root.clone().unwrap_or_else(|| {
                // Next to the capture's folder, or to --out-root.
                let base = a.out_root.as_deref().unwrap_or(dir);
                base.parent().unwrap_or(Path::new("/")).join("incidents")
            }),
            node: node.clone(),
            key: sign_key.clone(),
        },
        triggers: a.cut_on.clone(),
        last: a.cut_last,
        after: a.cut_after,
        cooldown: a.cut_cooldown,
        max_cuts: a.cut_max as usize,
        signal: Arc::clone(&signal),
    });
    let metrics = a.metrics_addr.map(Metrics::listen).transpose()?;
    let opts = RecordOptions {
        out,
        command: launcher.as_ref().map(|l| Scope {
            program: a.command[0].clone(),
            user: a.user.clone(),
            pid: l.pid(),
        }),
        duration: a.duration.map(Duration::from_secs),
        print: a.print,
        rotation: Rotation {
            max_age: Duration::from_secs(rotate_seconds),
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
        sign_key,
        redactor,
        policy,
        cuts,
        metrics,
    };
    let summary = match launcher.as_mut() {
        Some(l) => record_command(&opts, &stop, &mut std::io::stdout(), l)?,
        None => record(&opts, &stop, &mut std::io::stdout())?,
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

fn recover(dir: &std::path::Path, key: Option<&std::path::Path>) -> anyhow::Result<()> {
    let key = key.map(load_signing_key).transpose()?;
    let r = credtrail_capture::recover::recover(dir, key.as_ref())?;
    if !r.changed {
        eprintln!(
            "credtrail-record: {} is complete (state {:?}); nothing to recover",
            dir.display(),
            r.manifest.state
        );
        return Ok(());
    }
    let rec = r.manifest.recovery.as_ref();
    eprintln!(
        "credtrail-record: recovered {}: {} segment(s) sealed from checkpoints ({} rows), {} set aside; {} events in all, at least {} lost in the crash; chain head {}",
        dir.display(),
        rec.map_or(0, |r| r.segments.len()),
        rec.map_or(0, |r| r.rows),
        rec.map_or(0, |r| r.discarded.len()),
        r.manifest.counters.events_written,
        rec.map_or(0, |r| r.events_lost_at_least),
        r.manifest.chain_head.as_deref().unwrap_or("-")
    );
    for d in rec.iter().flat_map(|r| &r.discarded) {
        eprintln!("credtrail-record:   {}", safe(&discarded_line(d)));
    }
    for p in &r.problems {
        eprintln!("credtrail-record: warning: {}", safe(p));
    }
    Ok(())
}

fn inspect(dir: &std::path::Path, print: PrintFormat) -> anyhow::Result<()> {
    let cap = Capture::open(dir)?;
    let m = &cap.manifest;
    let c = &m.counters;
    // Every field here came from a file someone handed us: through safe().
    let mut head = vec![
        format!(
            "capture {} (format v{}, {:?}) node {} kernel {}",
            dir.display(),
            m.format_version,
            m.state,
            m.node_name,
            m.kernel_release
        ),
        format!(
            "  {} .. {}",
            m.start.time,
            m.end.as_ref().map_or("(not sealed)", |e| e.time.as_str())
        ),
        format!(
            "  events {} | kernel {} | lost {} (ringbuf_full {}, enter_store_failures {}, decode_errors {}) | exit_without_enter {}",
            c.events_written,
            c.kernel_events,
            c.lost(),
            c.ringbuf_full,
            c.enter_store_failures,
            c.decode_errors,
            c.exit_without_enter,
        ),
    ];
    if c.folded_calls + c.fold_full > 0 {
        head.push(format!(
            "  folded {} calls into {} rows (repeat_count) | fold_full {} (lost)",
            c.folded_calls, c.folded_rows, c.fold_full
        ));
    }
    for (what, by_pid) in [("folded", &m.folded_by_pid), ("lost", &m.lost_by_pid)] {
        if !by_pid.is_empty() {
            head.push(format!(
                "  {what} by process ({} processes): {}",
                by_pid.len(),
                credtrail_capture::manifest::Manifest::most_by_pid(by_pid, 10)
            ));
        }
    }
    if let Some(why) = c.implausible() {
        head.push(format!("  CORRUPT: {why}"));
    }
    if let Some(e) = &m.error {
        head.push(format!("  stopped early: {e}"));
    }
    if let Some(r) = &m.recovery {
        head.push(format!(
            "  recovered {}: {} segment(s), {} rows sealed from checkpoints; {} set aside; at least {} events lost in the crash",
            r.recovered_at,
            r.segments.len(),
            r.rows,
            r.discarded.len(),
            r.events_lost_at_least
        ));
        head.extend(
            r.discarded
                .iter()
                .map(|d| format!("    {}", discarded_line(d))),
        );
    }
    if let Some(h) = &m.chain_head {
        head.push(format!("  chain head {h}"));
    }
    for line in head {
        eprintln!("{}", safe(&line));
    }
    // The segments as the query tables show things: counts with separators.
    let mut segments = Table::new(vec![
        Column::new("  SEGMENT"),
        Column::new("ROWS").right(),
        Column::new("BYTES").right(),
        Column::new("SHA256"),
    ]);
    for s in m.segments.iter().filter(|s| !s.evicted) {
        segments.push(
            Mark::Plain,
            vec![
                Some(format!("  {}", s.file)),
                Some(thousands(s.rows)),
                Some(thousands(s.bytes)),
                Some(s.sha256.chars().take(16).collect()),
            ],
        );
    }
    if !segments.rows.is_empty() {
        eprint!("{}", segments.render(Layout::default()));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Streamed: an inspected capture may hold millions of events.
    for ev in cap.stream::<credtrail_capture::model::Event>() {
        let ev = ev?;
        match print_event(&mut out, print, &ev) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.context("cannot write to stdout")?,
        }
    }
    std::io::Write::flush(&mut out).or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

/// One line on a segment `recover` set aside: what it held, and why.
fn discarded_line(d: &Discarded) -> String {
    match d {
        Discarded::Segment(d) if d.held_data => format!(
            "set aside {} ({} bytes): at least {} {} row(s) lost ({})",
            d.file, d.bytes, d.rows_at_least, d.table, d.reason
        ),
        Discarded::Segment(d) => format!(
            "set aside {}: an empty file (no row had been flushed to it yet)",
            d.file
        ),
        Discarded::Legacy(file) => format!("set aside {file} (rows not recorded)"),
    }
}
