//! Recording: the programs loaded and attached, a [`Session`] run until
//! told to stop (or, for `-- COMMAND`, until the command's tree has
//! exited), then sealed.

use std::io::Write;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as MonoInstant};

use credtrail_capture::folder::check_capture_dir;
use credtrail_capture::host;
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
    bpf::check_privileges()?;
    if let Some(dir) = &opts.out {
        // Refuse a bad --out before touching the kernel.
        check_capture_dir(dir)?;
    }
    // Before any thread starts: threads inherit it.
    crate::privileges::set_nice(opts.nice)?;
    crate::privileges::drop_bounding_set()?;
    let host_ns = host::namespaces();
    let mut obj = MaybeUninit::uninit();
    let tracer = Tracer::load(
        &mut obj,
        &bpf::Options {
            ring_buffer_bytes: opts.ring_buffer_bytes,
            compat_syscalls: opts.compat_syscalls,
            switch_check: opts.switch_check,
            subjective_check: opts.subjective_check,
            scope: launcher.is_some(),
            policy: crate::policy_map::kernel_policy(&opts.policy, host_ns),
        },
    )?;
    let mut session = Session::start(&tracer, opts, host_ns, out)?;
    if let Some(l) = launcher.as_deref_mut() {
        let started = tracer
            .scope_add(l.pid())
            .map_err(anyhow::Error::from)
            .and_then(|()| l.start());
        if let Err(e) = started {
            // The capture stays whole: sealed with what it holds.
            while session.poll(true)? {}
            session.finish()?;
            return Err(e);
        }
    }
    let started = MonoInstant::now();
    let mut waiting_told = false;
    let mut wait_error = None;
    loop {
        let mut done = false;
        if let Some(l) = launcher.as_deref_mut() {
            match l.exited() {
                Ok(false) => {}
                Ok(true) => {
                    let left = tracer.scope_len();
                    done = left == 0;
                    if !done && !waiting_told {
                        waiting_told = true;
                        tracing::info!(
                            "the command exited; waiting for the {left} process(es) it started (Ctrl-C stops)"
                        );
                    }
                }
                // Sealed all the same, then reported.
                Err(e) => {
                    done = true;
                    wait_error.get_or_insert(e);
                }
            }
        }
        let stop = done
            || stop.load(Ordering::Relaxed)
            || opts.duration.is_some_and(|d| started.elapsed() >= d)
            || session.write_failed();
        if !session.poll(stop)? {
            break;
        }
    }
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
