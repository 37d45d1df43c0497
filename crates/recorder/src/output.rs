//! Printers shared by the live recorder and every reader of captures.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::event::{Event, Syscall, cap_diff};
use crate::host::rfc3339_ns;

/// Output formats for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "bpf", derive(clap::ValueEnum))]
pub enum PrintFormat {
    /// One flat JSON object per line, keys equal to the capture's column names.
    Json,
    /// One human-readable line per event.
    Compact,
}

/// Writes one event in `format`, newline-terminated.
pub fn print_event(out: &mut impl Write, format: PrintFormat, ev: &Event) -> io::Result<()> {
    match format {
        PrintFormat::Json => {
            write_json(out, ev)?;
            out.write_all(b"\n")
        }
        PrintFormat::Compact => writeln!(out, "{}", compact(ev)),
    }
}

/// The JSON form: the columns as keys, in column order, `time` as RFC 3339.
pub fn write_json(out: &mut impl Write, ev: &Event) -> io::Result<()> {
    let mut value = serde_json::to_value(ev).map_err(io::Error::other)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("time".into(), rfc3339_ns(ev.time).into());
    }
    serde_json::to_writer(out, &value).map_err(io::Error::other)
}

/// `12:00:01.123456789 setresuid  pid 4242/4242 (su)  uid 1000→0 euid 1000→0  ok`
pub fn compact(ev: &Event) -> String {
    let mut s = String::with_capacity(160);
    let time = rfc3339_ns(ev.time);
    // Time of day is enough on a live terminal; the date is in the capture.
    let tod = time.get(11..time.len() - 1).unwrap_or(&time);
    let _ = write!(s, "{tod} {:<9}  pid {}", ev.syscall, ev.pid);
    if ev.tid != ev.pid {
        let _ = write!(s, "/{}", ev.tid);
    }
    let _ = write!(s, " ({})", ev.comm);
    let _ = write!(s, "  {}(", ev.syscall);
    let kind = ev.syscall_kind();
    let args: Vec<String> = match kind {
        Some(Syscall::Capset) => ev.args().map(|a| format!("{:#x}", a as u64)).collect(),
        Some(Syscall::Setgroups) => vec![format!(
            "[{}]",
            ev.groups
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )],
        _ => ev.args().map(|a| a.to_string()).collect(),
    };
    let _ = write!(s, "{})", args.join(", "));
    let old = ev.old_creds();
    let new = ev.new_creds();
    let mut diffs = String::new();
    for (name, a, b) in [
        ("uid", old.uid, new.uid),
        ("euid", old.euid, new.euid),
        ("suid", old.suid, new.suid),
        ("fsuid", old.fsuid, new.fsuid),
        ("gid", old.gid, new.gid),
        ("egid", old.egid, new.egid),
        ("sgid", old.sgid, new.sgid),
        ("fsgid", old.fsgid, new.fsgid),
    ] {
        if a != b {
            let _ = write!(diffs, " {name} {a}→{b}");
        }
    }
    for (name, a, b) in [
        ("capeff", old.cap_effective, new.cap_effective),
        ("capprm", old.cap_permitted, new.cap_permitted),
        ("capinh", old.cap_inheritable, new.cap_inheritable),
        ("capbnd", old.cap_bounding, new.cap_bounding),
        ("capamb", old.cap_ambient, new.cap_ambient),
    ] {
        if a != b {
            // Name a few changed capabilities; show masks for sweeping changes.
            if (a ^ b).count_ones() <= 3 {
                let _ = write!(diffs, " {name} {}", cap_diff(a, b));
            } else {
                let _ = write!(diffs, " {name} {a:#x}→{b:#x}");
            }
        }
    }
    if old.securebits != new.securebits {
        let _ = write!(
            diffs,
            " securebits {:#x}→{:#x}",
            old.securebits, new.securebits
        );
    }
    if old.groups != new.groups {
        let _ = write!(diffs, " groups {:?}→{:?}", old.groups, new.groups);
    }
    if diffs.is_empty() {
        diffs.push_str(" (no change)");
    }
    s.push(' ');
    s.push_str(&diffs);
    let _ = write!(s, "  {}", ev.outcome());
    if !ev.event_flags.is_empty() {
        let _ = write!(s, " [{}]", ev.event_flags.join(","));
    }
    s
}
