//! `--print compact`: one line per event, for people.

use std::fmt::Write as _;

use crate::host::rfc3339_ns;
use crate::model::creds::cap_diff;
use crate::model::{Event, Syscall};

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
    if let Some(b) = ev.binary.as_deref().filter(|b| !b.is_empty()) {
        let _ = write!(s, " {b}");
    }
    match (&ev.pod_namespace, &ev.pod_name, &ev.container_id) {
        (Some(ns), Some(name), _) => {
            let _ = write!(s, " pod {ns}/{name}");
            if let Some(c) = &ev.container_name {
                let _ = write!(s, "/{c}");
            }
        }
        (_, _, Some(id)) => {
            let _ = write!(s, " container {}", &id[..id.len().min(12)]);
        }
        _ => {}
    }
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
    // Names and arguments are the caller's choice: escapes stay text.
    match crate::term::safe(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(safe) => safe,
    }
}
