//! credtrail-record: capture every credential-changing syscall on this node.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use credtrail_recorder::capture::{Capture, Rotation};
use credtrail_recorder::cli::record::{Cli, Command};
use credtrail_recorder::output::{PrintFormat, print_event};
use credtrail_recorder::record::{RecordOptions, record};

fn main() -> ExitCode {
    credtrail_recorder::host::init_logging("info");
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("credtrail-record: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Inspect { dir, print }) => inspect(&dir, print),
        None => {
            let a = cli.record;
            if a.out.is_none() && a.print.is_none() {
                anyhow::bail!(
                    "nothing to do: pass --out DIR to write a capture and/or --print json|compact"
                );
            }
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&stop))
                    .context("cannot install signal handlers")?;
            }
            let opts = RecordOptions {
                out: a.out,
                duration: a.duration.map(Duration::from_secs),
                print: a.print,
                rotation: Rotation {
                    max_age: Duration::from_secs(a.rotate_seconds),
                    max_bytes: a.rotate_bytes,
                },
                ring_buffer_bytes: a.ring_buffer_mib << 20,
                node_name: a.node_name,
                pods_file: a.pods,
            };
            let summary = record(&opts, &stop, &mut std::io::stdout())?;
            if let Some(m) = summary.manifest {
                eprintln!(
                    "credtrail-record: sealed {} segment(s), {} events, {} lost",
                    m.segments.len(),
                    m.counters.events_written,
                    m.counters.lost()
                );
            }
            Ok(())
        }
    }
}

fn inspect(dir: &std::path::Path, print: PrintFormat) -> anyhow::Result<()> {
    let cap = Capture::open(dir)?;
    let m = &cap.manifest;
    let c = &m.counters;
    eprintln!(
        "capture {} (format v{}, {:?}) node {} kernel {}\n  {} .. {}\n  events {} | kernel {} | lost {} (ringbuf_full {}, enter_store_failures {}, decode_errors {}) | exit_without_enter {}",
        dir.display(),
        m.format_version,
        m.state,
        m.node_name,
        m.kernel_release,
        m.start.time,
        m.end.as_ref().map_or("(not sealed)", |e| e.time.as_str()),
        c.events_written,
        c.kernel_events,
        c.lost(),
        c.ringbuf_full,
        c.enter_store_failures,
        c.decode_errors,
        c.exit_without_enter,
    );
    for s in &m.segments {
        eprintln!(
            "  {:<28} {:>8} rows {:>10} bytes sha256 {}",
            s.file,
            s.rows,
            s.bytes,
            &s.sha256[..16]
        );
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Streamed: an inspected capture may hold millions of events.
    for ev in cap.stream::<credtrail_recorder::Event>() {
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
