//! `--print compact`: one line per event, for people.

use std::fmt::Write as _;

use credtrail_capture::model::creds::{cap_diff, cap_name};
use credtrail_capture::model::options;
use credtrail_capture::model::userns::NsIds;
use credtrail_capture::model::{Creds, Event, Syscall};

fn hex(v: i64) -> String {
    format!("{:#x}", v as u64)
}

/// A capability number by name (`CAP_NET_RAW`), or the number if out of range.
fn cap_arg(v: i64) -> String {
    u32::try_from(v).map_or_else(|_| v.to_string(), |b| cap_name(b).into_owned())
}

/// The call's arguments as a person reads them: ids as numbers, masks in
/// hex, options and flags by name.
fn call_args(ev: &Event) -> Vec<String> {
    let option = || ev.option.clone().unwrap_or_else(|| ev.arg0.to_string());
    match ev.syscall_kind() {
        Some(Syscall::Capset) => ev.args().map(hex).collect(),
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
        Some(Syscall::Prctl) => match ev.option.as_deref() {
            Some(o) if o.starts_with("PR_CAP_AMBIENT_CLEAR") => vec![option()],
            Some(o) if o.starts_with("PR_CAP_AMBIENT") => vec![option(), cap_arg(ev.arg2)],
            Some("PR_CAPBSET_DROP") => vec![option(), cap_arg(ev.arg1)],
            Some("PR_SET_SECUREBITS") => vec![option(), hex(ev.arg1)],
            _ => vec![option(), ev.arg1.to_string()],
        },
        Some(Syscall::Unshare | Syscall::Clone | Syscall::Clone3) => vec![option()],
        Some(Syscall::Setns) => vec![ev.arg0.to_string(), option()],
        Some(Syscall::IoUringRegister) => {
            let mut v = vec![ev.arg0.to_string(), option()];
            if ev.arg1 == options::IORING_UNREGISTER_PERSONALITY {
                v.push(ev.arg2.to_string());
            }
            v
        }
        Some(Syscall::IoUringSubmit) => vec![option(), format!("user_data {}", hex(ev.arg1))],
        // Noticed by which check, unchanged when last seen.
        Some(Syscall::Unexplained) => {
            let mut v = vec![option()];
            if let Some(t) = ev.last_seen {
                let mut at = String::from("unchanged at ");
                write_time_of_day(&mut at, t);
                v.push(at);
            }
            v
        }
        _ => ev.args().map(|a| a.to_string()).collect(),
    }
}

/// The call as a person writes it: `setuid(0)`, `unshare(CLONE_NEWUSER)`.
pub fn call(ev: &Event) -> String {
    let mut s = String::new();
    write_call(&mut s, ev);
    s
}

/// [`call`], appended to `s`: the id calls (nearly every event) without a
/// string per argument.
fn write_call(s: &mut String, ev: &Event) {
    let _ = write!(s, "{}(", ev.call_name());
    if ev.syscall_kind().is_some_and(plain_args) {
        for (i, a) in ev.args().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(itoa::Buffer::new().format(a));
        }
    } else {
        s.push_str(&call_args(ev).join(", "));
    }
    s.push(')');
}

/// Calls [`call_args`] prints as plain numbers (its last arm).
fn plain_args(k: Syscall) -> bool {
    !matches!(
        k,
        Syscall::Capset
            | Syscall::Setgroups
            | Syscall::Prctl
            | Syscall::Unshare
            | Syscall::Clone
            | Syscall::Clone3
            | Syscall::Setns
            | Syscall::IoUringRegister
            | Syscall::IoUringSubmit
            | Syscall::Unexplained
    )
}

/// `17012330` as `17,012,330`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The time of day (UTC, nanoseconds: `HH:MM:SS.nnnnnnnnn`), appended to
/// `s`: enough on a live terminal, the date is in the capture. Computed,
/// not cut from chrono's RFC 3339 text: that was a tenth of a compact
/// replay (the test checks both agree).
fn write_time_of_day(s: &mut String, unix_ns: i64) {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let day = secs.rem_euclid(86_400);
    let _ = write!(
        s,
        "{:02}:{:02}:{:02}.{nanos:09}",
        day / 3600,
        day / 60 % 60,
        day % 60
    );
}

/// `12:00:01.123456789 setresuid  pid 4242/4242 (su)  uid 1000→0 euid 1000→0  ok`
pub fn compact(ev: &Event) -> String {
    let mut s = String::with_capacity(160);
    write_compact(&mut s, ev);
    match credtrail_cli::term::safe(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(safe) => safe,
    }
}

/// [`compact`] appended to `s`, before escaping: the caller escapes the
/// line ([`credtrail_cli::term::safe`]).
pub(crate) fn write_compact(s: &mut String, ev: &Event) {
    write_time_of_day(s, ev.time);
    write_who(s, ev);
    s.push_str("  ");
    write_call(s, ev);
    write_repeats(s, ev);
    write_changes(s, ev);
    write_outcome(s, ev);
}

/// The call's name, then who made it: `setresuid  pid 4242/4242 (su)`,
/// its binary, and its pod or container when known.
fn write_who(s: &mut String, ev: &Event) {
    let _ = write!(s, " {:<9}  pid {}", ev.syscall, ev.pid);
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
}

/// A folded row: the kernel counted this exact transition's repeats.
fn write_repeats(s: &mut String, ev: &Event) {
    if let Some(n) = ev.repeat_count {
        let _ = write!(s, " ×{}", thousands(n));
        if let Some(t) = ev.last_time {
            s.push_str(" until ");
            write_time_of_day(s, t);
        }
    }
}

/// What the call changed in the credentials, or ` (no change)`.
fn write_changes(s: &mut String, ev: &Event) {
    let old = ev.old_creds();
    let new = ev.new_creds();
    // Each change starts with a space, after the one that opens them.
    s.push(' ');
    let before_diffs = s.len();
    write_id_changes(s, &old, &new, &ev.old_ns_ids(), &ev.new_ns_ids());
    write_cap_changes(s, &old, &new);
    write_other_changes(s, &old, &new);
    if s.len() == before_diffs {
        s.push_str(" (no change)");
    }
}

/// The eight ids that changed, as the task's namespace numbers them
/// (`o`, `n`: none on the host), the host's beside them when they differ.
fn write_id_changes(s: &mut String, old: &Creds, new: &Creds, o: &NsIds, n: &NsIds) {
    for (name, a, b, la, lb) in [
        ("uid", old.uid, new.uid, o.uid, n.uid),
        ("euid", old.euid, new.euid, o.euid, n.euid),
        ("suid", old.suid, new.suid, o.suid, n.suid),
        ("fsuid", old.fsuid, new.fsuid, o.fsuid, n.fsuid),
        ("gid", old.gid, new.gid, o.gid, n.gid),
        ("egid", old.egid, new.egid, o.egid, n.egid),
        ("sgid", old.sgid, new.sgid, o.sgid, n.sgid),
        ("fsgid", old.fsgid, new.fsgid, o.fsgid, n.fsgid),
    ] {
        // The id as the task's namespace numbers it, the host's beside it.
        let local = |host: u32, ns: Option<u32>| ns.unwrap_or(host);
        let (ua, ub) = (local(a, la), local(b, lb));
        if a == b && ua == ub {
            continue;
        }
        let _ = write!(s, " {name} {ua}→{ub}");
        if (ua, ub) != (a, b) {
            if a == b {
                let _ = write!(s, " ({a} on the host)");
            } else {
                let _ = write!(s, " ({a}→{b} on the host)");
            }
        }
    }
}

/// The five capability sets that changed.
fn write_cap_changes(s: &mut String, old: &Creds, new: &Creds) {
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
                let _ = write!(s, " {name} {}", cap_diff(a, b));
            } else {
                let _ = write!(s, " {name} {a:#x}→{b:#x}");
            }
        }
    }
}

/// Securebits, groups, no_new_privs and the user namespace, if changed.
fn write_other_changes(s: &mut String, old: &Creds, new: &Creds) {
    if old.securebits != new.securebits {
        let _ = write!(s, " securebits {:#x}→{:#x}", old.securebits, new.securebits);
    }
    if old.groups != new.groups {
        let _ = write!(s, " groups {:?}→{:?}", old.groups, new.groups);
    }
    if old.no_new_privs != new.no_new_privs {
        let flag = |v: Option<bool>| v.map_or("?", |v| if v { "1" } else { "0" });
        let _ = write!(
            s,
            " no_new_privs {}→{}",
            flag(old.no_new_privs),
            flag(new.no_new_privs)
        );
    }
    if old.userns != new.userns {
        let ns = |v: Option<u32>| v.map_or("?".to_owned(), |v| v.to_string());
        let _ = write!(s, " userns {}→{}", ns(old.userns), ns(new.userns));
        if let Some(level) = new.userns_level {
            let _ = write!(s, " (level {level})");
        }
    }
}

/// How the call ended, what it returned worth naming, and the event's
/// root scope, ABI (when not x86-64) and flags.
fn write_outcome(s: &mut String, ev: &Event) {
    let _ = write!(s, "  {}", ev.outcome());
    match ev.syscall_kind() {
        Some(Syscall::Clone | Syscall::Clone3) if ev.ret > 0 => {
            let _ = write!(s, " child {}", ev.ret);
        }
        Some(Syscall::IoUringRegister)
            if ev.ret > 0 && ev.arg1 == options::IORING_REGISTER_PERSONALITY =>
        {
            let _ = write!(s, " personality {}", ev.ret);
        }
        _ => {}
    }
    if let Some(scope) = &ev.root_scope {
        let _ = write!(s, " root:{scope}");
    }
    if ev.abi != credtrail_capture::model::event::abi::X64 {
        let _ = write!(s, " {}", ev.abi);
    }
    if !ev.event_flags.is_empty() {
        let _ = write!(s, " [{}]", ev.event_flags.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credtrail_capture::host::rfc3339_ns;

    /// The time of day as chrono's RFC 3339 text has it.
    fn time_of_day(rfc3339: &str) -> &str {
        rfc3339.get(11..rfc3339.len() - 1).unwrap_or(rfc3339)
    }

    #[test]
    fn time_of_day_is_the_rfc3339_times() {
        let mut times = vec![0, 1, -1, 999_999_999, 1_000_000_000, -1_000_000_001];
        // From 1960 to 2100 in uneven steps.
        let (from, to) = (-315_619_200_000_000_000i64, 4_102_444_800_000_000_000i64);
        times.extend((0..200_000i64).map(|i| from + i * ((to - from) / 200_000) + i * 7_919));
        for t in times {
            let mut s = String::new();
            write_time_of_day(&mut s, t);
            assert_eq!(s, time_of_day(&rfc3339_ns(t)), "{t}");
        }
    }
}
