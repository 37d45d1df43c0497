//! What each `credtrail-workload` command does, as one JSON line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::{Cli, Command};

/// The binary: must run as root (it changes credentials from root
/// downwards), except for the commands that only look; one JSON line.
impl credtrail_cli::Tool for Cli {
    const PROGRAM: &'static str = "credtrail-workload";

    fn run(self, out: &mut dyn Write, _err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        let cli = self;
        // SAFETY: geteuid has no preconditions.
        if !matches!(
            cli.command,
            Command::Noop | Command::Reexec { .. } | Command::Access { .. }
        ) && unsafe { libc::geteuid() } != 0
        {
            anyhow::bail!("must run as root: it changes credentials from root downwards");
        }
        let report = match cli.command {
            Command::Steps => crate::single_thread_steps()?,
            Command::Setgroups => crate::setgroups_only(&[1001, 1002, 1003])?,
            Command::CapsetDrop => crate::capset_drop()?,
            Command::Ia32 { then, ms } => crate::paths::ia32_then(then, Duration::from_millis(ms))?,
            Command::Prctl { names } => crate::paths::prctl_steps(names)?,
            Command::RegainRoot { uid } => crate::paths::regain_root(uid)?,
            Command::Setuid { uid } => crate::paths::setuid_only(uid)?,
            Command::Userns => crate::paths::userns_steps()?,
            Command::IoUring { uid } => crate::paths::io_uring_steps(uid)?,
            Command::DeniedSetuid { uid } => crate::denied_setuid(uid)?,
            Command::Broadcast { threads, uid } => crate::broadcast_setuid(threads.into(), uid)?,
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
                let child: crate::Report =
                    serde_json::from_slice(&out.stdout).context("broadcast child report")?;
                let mut report = crate::single_thread_steps()?;
                report.steps.extend(child.steps);
                report
            }
            Command::Noop | Command::Reexec { left: 0 } => {
                writeln!(out, "{{\"pid\": {}}}", std::process::id())?;
                return Ok(ExitCode::SUCCESS);
            }
            Command::Reexec { left } => {
                use std::os::unix::process::CommandExt;
                let e = std::process::Command::new("/proc/self/exe")
                    .args(["reexec", "--left", &(left - 1).to_string()])
                    .exec();
                anyhow::bail!("cannot exec /proc/self/exe: {e}");
            }
            Command::Ia32Toggle { toggles, rate, uid } => {
                let done = crate::paths::ia32_toggle(toggles, rate, uid)?;
                writeln!(
                    out,
                    "{{\"pid\": {}, \"toggles\": {done}}}",
                    std::process::id()
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            Command::Access { calls } => {
                let allowed = crate::paths::access_checks(calls);
                writeln!(
                    out,
                    "{{\"pid\": {}, \"calls\": {calls}, \"allowed\": {allowed}}}",
                    std::process::id()
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            Command::SuLike { uid } => {
                let ret = crate::su_like(uid);
                writeln!(out, "{{\"pid\": {}, \"ret\": {ret}}}", std::process::id())?;
                return Ok(ExitCode::SUCCESS);
            }
            Command::TimeCalls { call, calls, uid } => {
                let ns = crate::time_calls(call, calls, uid);
                writeln!(out, "{{\"ns_per_call\": {ns:.1}, \"calls\": {calls}}}")?;
                return Ok(ExitCode::SUCCESS);
            }
            Command::Storm {
                threads,
                seconds,
                rate,
                uid,
                call,
            } => {
                let n = crate::storm(
                    call,
                    threads.into(),
                    uid,
                    Duration::from_secs(seconds),
                    rate,
                );
                writeln!(
                    out,
                    "{{\"calls\": {n}, \"pid\": {}, \"threads\": {threads}, \"seconds\": {seconds}}}",
                    std::process::id()
                )?;
                return Ok(ExitCode::SUCCESS);
            }
        };
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        Ok(ExitCode::SUCCESS)
    }
}
