//! The process table at start, read from /proc.

use credtrail_capture::model::process::{ProcessRow, truncate_args};

/// Reads every process in /proc. Processes that vanish mid-scan are skipped;
/// fields that cannot be read (kernel threads have no exe) are left empty.
pub fn snapshot(snapshot_ktime_ns: u64) -> std::io::Result<Vec<ProcessRow>> {
    let ticks = procfs::ticks_per_second();
    let all = procfs::process::all_processes().map_err(std::io::Error::other)?;
    let mut rows = Vec::new();
    for proc in all.flatten() {
        let Ok(stat) = proc.stat() else { continue };
        let Ok(status) = proc.status() else { continue };
        let pid = proc.pid() as u32;
        let read_u32 = |name: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{name}"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(u32::MAX)
        };
        let cgroups = proc
            .cgroups()
            .map(|cgs| {
                cgs.0
                    .iter()
                    .map(|c| format!("{}:{}:{}", c.hierarchy, c.controllers.join(","), c.pathname))
                    .collect()
            })
            .unwrap_or_default();
        rows.push(ProcessRow {
            snapshot_ktime_ns,
            source: "procfs".into(),
            pid,
            ppid: stat.ppid as u32,
            comm: stat.comm.clone(),
            exe: proc
                .exe()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            cmdline: truncate_args(proc.cmdline().unwrap_or_default()),
            cwd: proc
                .cwd()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            start_ktime_ns: stat.starttime.saturating_mul(1_000_000_000 / ticks.max(1)),
            uid: status.ruid,
            euid: status.euid,
            suid: status.suid,
            fsuid: status.fuid,
            gid: status.rgid,
            egid: status.egid,
            sgid: status.sgid,
            fsgid: status.fgid,
            cap_effective: status.capeff,
            cap_permitted: status.capprm,
            cap_inheritable: status.capinh,
            cap_bounding: status.capbnd.unwrap_or(0),
            cap_ambient: status.capamb.unwrap_or(0),
            groups: status.groups.clone(),
            auid: read_u32("loginuid"),
            sessionid: read_u32("sessionid"),
            cgroups,
            ..ProcessRow::default()
        });
    }
    Ok(rows)
}
