//! credtrail-workload: credential changes with known answers, for tests,
//! the demo and benchmarks. Must run as root.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use credtrail_workload as workload;
use credtrail_workload::cli::{Cli, Command};

fn main() -> ExitCode {
    credtrail_cli::main("credtrail-workload", "warn", || {
        run(Cli::parse())?;
        Ok(ExitCode::SUCCESS)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if !matches!(
        cli.command,
        Command::Noop | Command::Reexec { .. } | Command::Access { .. }
    ) && unsafe { libc::geteuid() } != 0
    {
        anyhow::bail!("must run as root: it changes credentials from root downwards");
    }
    let report = match cli.command {
        Command::Steps => workload::single_thread_steps()?,
        Command::Setgroups => workload::setgroups_only(&[1001, 1002, 1003])?,
        Command::CapsetDrop => workload::capset_drop()?,
        Command::Ia32 { then, ms } => workload::paths::ia32_then(then, Duration::from_millis(ms))?,
        Command::Prctl { names } => workload::paths::prctl_steps(names)?,
        Command::RegainRoot { uid } => workload::paths::regain_root(uid)?,
        Command::Setuid { uid } => workload::paths::setuid_only(uid)?,
        Command::Userns => workload::paths::userns_steps()?,
        Command::IoUring { uid } => workload::paths::io_uring_steps(uid)?,
        Command::DeniedSetuid { uid } => workload::denied_setuid(uid)?,
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
        Command::Noop | Command::Reexec { left: 0 } => {
            println!("{{\"pid\": {}}}", std::process::id());
            return Ok(());
        }
        Command::Reexec { left } => {
            use std::os::unix::process::CommandExt;
            let e = std::process::Command::new("/proc/self/exe")
                .args(["reexec", "--left", &(left - 1).to_string()])
                .exec();
            anyhow::bail!("cannot exec /proc/self/exe: {e}");
        }
        Command::Ia32Toggle { toggles, rate, uid } => {
            let done = workload::paths::ia32_toggle(toggles, rate, uid)?;
            println!("{{\"pid\": {}, \"toggles\": {done}}}", std::process::id());
            return Ok(());
        }
        Command::Access { calls } => {
            let allowed = workload::paths::access_checks(calls);
            println!(
                "{{\"pid\": {}, \"calls\": {calls}, \"allowed\": {allowed}}}",
                std::process::id()
            );
            return Ok(());
        }
        Command::SuLike { uid } => {
            let ret = workload::su_like(uid);
            println!("{{\"pid\": {}, \"ret\": {ret}}}", std::process::id());
            return Ok(());
        }
        Command::TimeCalls { call, calls, uid } => {
            let ns = workload::time_calls(call, calls, uid);
            println!("{{\"ns_per_call\": {ns:.1}, \"calls\": {calls}}}");
            return Ok(());
        }
        Command::Storm {
            threads,
            seconds,
            rate,
            uid,
            call,
        } => {
            let n = workload::storm(
                call,
                threads.into(),
                uid,
                Duration::from_secs(seconds),
                rate,
            );
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
