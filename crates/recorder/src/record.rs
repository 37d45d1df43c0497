//! Recording: the programs loaded and attached, a [`Session`] run until
//! told to stop (or, for `-- COMMAND`, until the command's tree has
//! exited), then sealed.

use std::io::Write;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as MonoInstant};

use credtrail_capture::folder::check_capture_dir;
use credtrail_capture::host::{self, HostNamespaces};
use credtrail_recorder_bpf::{self as bpf, Tracer};

use crate::command::Launcher;
use crate::session::{RecordOptions, Session, Summary};

/// Records until `stop` is set or the duration ends, printing events to
/// `out` when `opts.print` asks for it.
pub fn record(
    opts: &RecordOptions,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> anyhow::Result<Summary> {
    run(opts, stop, out, None)
}

/// [`record`] of one command's tree (`-- COMMAND`): `launcher`'s process
/// joins the tree and execs once the hooks are attached, and recording
/// stops when it and every process of its tree have exited.
pub fn record_command(
    opts: &RecordOptions,
    stop: &AtomicBool,
    out: &mut dyn Write,
    launcher: &mut Launcher,
) -> anyhow::Result<Summary> {
    run(opts, stop, out, Some(launcher))
}

fn run(
    opts: &RecordOptions,
    stop: &AtomicBool,
    out: &mut dyn Write,
    mut launcher: Option<&mut Launcher>,
) -> anyhow::Result<Summary> {
    prepare(opts)?;
    let host_ns = host::namespaces();
    let mut obj = MaybeUninit::uninit();
    let tracer = Tracer::load(&mut obj, &bpf_options(opts, launcher.is_some(), host_ns))?;
    let mut session = Session::start(&tracer, opts, host_ns, out)?;
    if let Some(l) = launcher.as_deref_mut()
        && let Err(e) = start_command(&tracer, l)
    {
        // The capture stays whole: sealed with what it holds.
        while session.poll(true)? {}
        session.finish()?;
        return Err(e);
    }
    let wait_error =
        poll_until_stopped(&tracer, &mut session, opts, stop, launcher.as_deref_mut())?;
    let summary = session.finish();
    // A command the recording stopped before (a signal, --duration, a
    // write error) does not outlive it.
    if let Some(l) = launcher.as_deref_mut() {
        l.stop(Duration::from_secs(5))?;
    }
    if let Some(e) = wait_error {
        return Err(e);
    }
    let mut summary = summary?;
    summary.exit_code = launcher.and_then(|l| l.exit_code());
    Ok(summary)
}

/// The checks and process settings that come before the kernel is touched.
fn prepare(opts: &RecordOptions) -> anyhow::Result<()> {
    bpf::check_privileges()?;
    if let Some(dir) = &opts.out {
        // Refuse a bad --out before touching the kernel.
        check_capture_dir(dir)?;
    }
    // Before any thread starts: threads inherit it.
    crate::privileges::set_nice(opts.nice)?;
    crate::privileges::drop_bounding_set()?;
    Ok(())
}

/// What the BPF programs are loaded with; `scope` for a command's tree.
fn bpf_options(opts: &RecordOptions, scope: bool, host_ns: HostNamespaces) -> bpf::Options {
    bpf::Options {
        ring_buffer_bytes: opts.ring_buffer_bytes,
        compat_syscalls: opts.compat_syscalls,
        switch_check: opts.switch_check,
        subjective_check: opts.subjective_check,
        scope,
        policy: crate::policy_map::kernel_policy(&opts.policy, host_ns),
    }
}

/// Puts the command's process in the traced scope, then lets it exec.
fn start_command(tracer: &Tracer<'_>, l: &mut Launcher) -> anyhow::Result<()> {
    tracer
        .scope_add(l.pid())
        .map_err(anyhow::Error::from)
        .and_then(|()| l.start())
}

/// Polls the session until it has drained after a stop: asked for, the
/// duration over, a write failed, or the command's tree gone. Returns the
/// error waiting for the command, if any, to report after sealing.
fn poll_until_stopped(
    tracer: &Tracer<'_>,
    session: &mut Session<'_, '_>,
    opts: &RecordOptions,
    stop: &AtomicBool,
    mut launcher: Option<&mut Launcher>,
) -> anyhow::Result<Option<anyhow::Error>> {
    let started = MonoInstant::now();
    let mut waiting_told = false;
    let mut wait_error = None;
    loop {
        let done = launcher
            .as_deref_mut()
            .is_some_and(|l| command_done(tracer, l, &mut waiting_told, &mut wait_error));
        let stop = done
            || stop.load(Ordering::Relaxed)
            || opts.duration.is_some_and(|d| started.elapsed() >= d)
            || session.write_failed();
        if !session.poll(stop)? {
            break;
        }
    }
    Ok(wait_error)
}

/// Whether the command and every process of its tree have exited, or
/// waiting for it failed (the error kept in `wait_error`).
fn command_done(
    tracer: &Tracer<'_>,
    l: &mut Launcher,
    waiting_told: &mut bool,
    wait_error: &mut Option<anyhow::Error>,
) -> bool {
    match l.exited() {
        Ok(false) => false,
        Ok(true) => {
            let left = tracer.scope_len();
            if left != 0 && !*waiting_told {
                *waiting_told = true;
                tracing::info!(
                    "the command exited; waiting for the {left} process(es) it started (Ctrl-C stops)"
                );
            }
            left == 0
        }
        // Sealed all the same, then reported.
        Err(e) => {
            wait_error.get_or_insert(e);
            true
        }
    }
}
