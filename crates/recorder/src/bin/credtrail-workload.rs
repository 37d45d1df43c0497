//! credtrail-workload: credential changes with known answers, for tests,
//! the demo and benchmarks. Must run as root.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use credtrail_recorder::workload;

/// Make credential-changing syscalls with known values and report them as JSON.
#[derive(Parser, Debug)]
#[command(name = "credtrail-workload", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every hooked syscall once with distinctive values, ending with a
    /// refused setuid(0); then a 4-thread glibc setuid broadcast in a child.
    All,
    /// The single-threaded part of `all`.
    Steps,
    /// glibc setuid(UID) from a process with THREADS threads.
    Broadcast {
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        #[arg(long, default_value_t = 5001)]
        uid: u32,
    },
    /// Like `su`: setresuid(UID, UID, UID) and exit at once; prints its pid.
    SuLike {
        #[arg(long, default_value_t = 4242)]
        uid: u32,
    },
    /// Do nothing (run as a setuid copy to make exec change credentials).
    Noop,
    /// Toggle the euid of THREADS threads between 0 and UID; prints the
    /// exact number of calls issued.
    Storm {
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Calls per second per thread (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 1234)]
        uid: u32,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("credtrail-workload: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if !matches!(cli.command, Command::Noop) && unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("must run as root: it changes credentials from root downwards");
    }
    let report = match cli.command {
        Command::Steps => workload::single_thread_steps()?,
        Command::Broadcast { threads, uid } => workload::broadcast_setuid(threads.into(), uid)?,
        Command::All => {
            // The broadcast needs a fresh root process: run it as a child.
            let out = std::process::Command::new(
                std::env::current_exe().context("cannot find own binary")?,
            )
            .args(["broadcast", "--threads", "4", "--uid", "5001"])
            .output()
            .context("cannot run the broadcast child")?;
            anyhow::ensure!(
                out.status.success(),
                "broadcast child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let child: workload::Report =
                serde_json::from_slice(&out.stdout).context("broadcast child report")?;
            let mut report = workload::single_thread_steps()?;
            report.steps.extend(child.steps);
            report
        }
        Command::Noop => {
            println!("{{\"pid\": {}}}", std::process::id());
            return Ok(());
        }
        Command::SuLike { uid } => {
            let ret = workload::su_like(uid);
            println!("{{\"pid\": {}, \"ret\": {ret}}}", std::process::id());
            return Ok(());
        }
        Command::Storm {
            threads,
            seconds,
            rate,
            uid,
        } => {
            let n = workload::storm(threads.into(), uid, Duration::from_secs(seconds), rate);
            println!(
                "{{\"calls\": {n}, \"pid\": {}, \"threads\": {threads}, \"seconds\": {seconds}}}",
                std::process::id()
            );
            return Ok(());
        }
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
