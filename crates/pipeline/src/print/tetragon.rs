//! `--print tetragon`: Tetragon's `GetEventsResponse` JSON (as `tetra
//! getevents -o json` writes it, under the protobuf JSON mapping):
//! `process_kprobe` for calls, `process_exec` for credentials changed by
//! exec, `process_tracepoint` for an io_uring request run under a
//! personality (credtrail hooks the `io_uring/io_uring_submit_req`
//! tracepoint, and so would a Tetragon policy). credtrail's extra fields
//! (credentials after the call, bounding and ambient sets, groups,
//! no_new_privs) are fields a protobuf reader skips.
//! `--print tetragon-compact` is `tetra getevents -o compact`.
//!
//! A folded row (`repeat_count`: calls the kernel counted instead of
//! sending) is one line, as Tetragon has no count field: its time is the
//! first call's. Count calls from the capture (`credtrail-query`), not from
//! these lines.
//!
//! Each event is written straight into one buffer, in Tetragon's key order:
//! building a `serde_json::Value` tree per event first ran at 53,000
//! events/s, most of it spent on capability names (a root process's sets
//! hold 41 each).

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::LazyLock;

use serde_json::Value;

use super::json_writer::{Obj, display, int, object, plain_str, string};
use credtrail_capture::model::creds::{Creds, cap_name};
use credtrail_capture::model::options::IO_URING_TRACEPOINT;
use credtrail_capture::model::{Event, Syscall};

/// The policy an event is reported under when it was recorded without
/// `--policy` (the `policy` column is null).
pub const DEFAULT_POLICY: &str = "credtrail-credentials";

/// One event as Tetragon's JSON: field names, order and omission rules of
/// `tetra getevents -o json` (zero scalars omitted; pid, uid, auid and tid
/// always printed). A credential change by exec is a `process_exec` with
/// the credentials after it and its binary properties; every other event
/// a `process_kprobe` with the credentials before and (credtrail's) after.
pub fn write_tetragon(out: &mut impl Write, ev: &Event) -> io::Result<()> {
    LINE.with_borrow_mut(|line| {
        line.clear();
        event(line, ev);
        out.write_all(line)
    })
}

thread_local! {
    /// The line being written, its buffer kept from event to event: a
    /// fresh one per event (lines are 2 to 7 KiB) cost 5% of replay's time.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// [`write_tetragon`]'s JSON as a `Value` (keys in the printed order).
pub fn tetragon(ev: &Event) -> Value {
    let mut buf = Vec::new();
    event(&mut buf, ev);
    serde_json::from_slice(&buf).expect("the Tetragon printer writes valid JSON")
}

fn event(out: &mut Vec<u8>, ev: &Event) {
    object(out, |top| {
        match ev.syscall_kind() {
            Some(Syscall::Execve) => top.obj("process_exec", |o| exec(o, ev)),
            Some(Syscall::IoUringSubmit) => top.obj("process_tracepoint", |o| tracepoint(o, ev)),
            kind => top.obj("process_kprobe", |o| kprobe(o, ev, kind)),
        }
        top.str("node_name", &ev.node_name);
        proto_time(top.key("time"), ev.time);
    });
}

/// Tetragon's ProcessExec: the process with the credentials after the
/// exec and its binary properties, and the credentials before.
fn exec(o: &mut Obj<'_>, ev: &Event) {
    o.obj("process", |p| {
        process(p, ev, &ev.new_creds());
        p.obj("binary_properties", |b| binary_properties(b, ev));
    });
    parent(o, ev);
    o.obj("old_process_credentials", |c| {
        credentials(c, &ev.old_creds())
    });
}

/// Tetragon's ProcessKprobe: the process with the credentials before the
/// call, the call, and (credtrail's) the credentials after it.
fn kprobe(o: &mut Obj<'_>, ev: &Event, kind: Option<Syscall>) {
    o.obj("process", |p| process(p, ev, &ev.old_creds()));
    parent(o, ev);
    let [prefix, call, suffix] = ev.kernel_function_parts();
    display(
        o.key("function_name"),
        format_args!("{prefix}{call}{suffix}"),
    );
    args(o, ev, kind);
    o.obj("return", |r| int_arg(r, ev.ret));
    policy_and_after(o, ev, true);
}

/// The policy and action fields, in each event type's key order, then
/// (credtrail's) the credentials after the event. A kprobe has a return
/// action too; a tracepoint names its policy before its action.
fn policy_and_after(o: &mut Obj<'_>, ev: &Event, kprobe: bool) {
    let policy = ev.policy.as_deref().unwrap_or(DEFAULT_POLICY);
    if kprobe {
        o.plain("action", "KPROBE_ACTION_POST");
        o.str("policy_name", policy);
        o.plain("return_action", "KPROBE_ACTION_POST");
    } else {
        o.str("policy_name", policy);
        o.plain("action", "KPROBE_ACTION_POST");
    }
    o.obj("new_process_credentials", |c| {
        credentials(c, &ev.new_creds())
    });
}

/// Tetragon's ProcessTracepoint for a request run under a personality: the
/// process with its own credentials, the tracepoint's `user_data` (u64, a
/// `size_arg`) and `opcode` fields in their format's order, and
/// (credtrail's) the personality's credentials the request ran with.
fn tracepoint(o: &mut Obj<'_>, ev: &Event) {
    o.obj("process", |p| process(p, ev, &ev.old_creds()));
    parent(o, ev);
    o.plain("subsys", IO_URING_TRACEPOINT.0);
    o.plain("event", IO_URING_TRACEPOINT.1);
    o.list("args", [0, 1], |out, i| {
        object(out, |a| {
            if i == 0 {
                display(a.key("size_arg"), ev.arg1 as u64);
            } else {
                int_arg(a, ev.arg0);
            }
        })
    });
    policy_and_after(o, ev, false);
}

/// Tetragon's Process for the event's process: identity, pod and the
/// credentials `creds`.
fn process(p: &mut Obj<'_>, ev: &Event, creds: &Creds) {
    p.some_str("exec_id", ev.exec_id.as_deref());
    p.int("pid", ev.pid);
    p.int("uid", ev.process_uid.unwrap_or(ev.old_euid));
    p.some_str("cwd", ev.cwd.as_deref());
    p.some_str("binary", ev.binary.as_deref());
    p.some_str("arguments", ev.arguments.as_deref());
    p.some_str("flags", ev.flags.as_deref());
    if let Some(t) = ev.start_time {
        proto_time(p.key("start_time"), t);
    }
    p.int("auid", ev.auid);
    pod(p, ev, ev.container_pid);
    p.some_str("docker", docker(ev));
    p.some_str("parent_exec_id", ev.parent_exec_id.as_deref());
    p.int("tid", ev.tid);
    p.obj("process_credentials", |c| credentials(c, creds));
    // The container's init is in its init tree; for other processes the
    // capture does not say (a BoolValue left out: unknown).
    if ev.container_pid == Some(1) {
        p.set("in_init_tree");
    }
}

/// Tetragon's Process for the parent. Its pod and container are the
/// event's only when the parent runs in a container too (the host-side
/// runtime that started a container is not in it).
fn parent(o: &mut Obj<'_>, ev: &Event) {
    let Some(ppid) = ev.parent_pid else {
        return;
    };
    o.obj("parent", |p| {
        p.some_str("exec_id", ev.parent_exec_id.as_deref());
        p.int("pid", ppid);
        if let Some(uid) = ev.parent_uid {
            p.int("uid", uid);
        }
        p.some_str("cwd", ev.parent_cwd.as_deref());
        p.some_str("binary", ev.parent_binary.as_deref());
        p.some_str("arguments", ev.parent_arguments.as_deref());
        p.some_str("flags", ev.parent_flags.as_deref());
        if let Some(t) = ev.parent_start_time {
            proto_time(p.key("start_time"), t);
        }
        if let Some(auid) = ev.parent_auid {
            p.int("auid", auid);
        }
        if ev.parent_container_pid.is_some() {
            pod(p, ev, ev.parent_container_pid);
            p.some_str("docker", docker(ev));
        }
        p.some_str("parent_exec_id", ev.parent_parent_exec_id.as_deref());
        p.int("tid", ppid);
    });
}

/// The container id as Tetragon's `docker` field: its first 31 characters.
fn docker(ev: &Event) -> Option<&str> {
    ev.container_id.as_deref().map(|id| &id[..id.len().min(31)])
}

/// The `pod` object shared by process and parent, when the event has a pod.
fn pod(o: &mut Obj<'_>, ev: &Event, container_pid: Option<u32>) {
    if ev.pod_name.is_none() {
        return;
    }
    o.obj("pod", |p| {
        p.some_str("namespace", ev.pod_namespace.as_deref());
        p.some_str("name", ev.pod_name.as_deref());
        p.some_str("uid", ev.pod_uid.as_deref());
        if let Some(id) = &ev.container_id {
            p.obj("container", |c| container(c, ev, id, container_pid));
        }
        // Without owner references (not in the capture) the pod is its own
        // workload, as Tetragon reports a bare pod.
        p.some_str("workload", ev.pod_name.as_deref());
        p.plain("workload_kind", "Pod");
        if !ev.pod_labels.is_empty() {
            p.obj("pod_labels", |l| pod_labels(l, &ev.pod_labels));
        }
    });
}

fn container(c: &mut Obj<'_>, ev: &Event, id: &str, container_pid: Option<u32>) {
    let runtime = ev
        .container_runtime
        .as_deref()
        .filter(|r| !r.is_empty())
        .unwrap_or("containerd");
    display(c.key("id"), format_args!("{runtime}://{id}"));
    c.some_str("name", ev.container_name.as_deref());
    let (image_id, image_name) = (non_empty(&ev.image_id), non_empty(&ev.image_name));
    if image_id.is_some() || image_name.is_some() {
        c.obj("image", |i| {
            i.some_str("id", image_id);
            i.some_str("name", image_name);
        });
    }
    if let Some(t) = ev.container_start_time {
        proto_time(c.key("start_time"), t);
    }
    if let Some(pid) = container_pid {
        c.int("pid", pid);
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `key=value` labels as an object (a label without `=` has the value "").
fn pod_labels(o: &mut Obj<'_>, labels: &[String]) {
    // Labels come sorted by key, each key once; otherwise a key given twice
    // keeps its first place and its last value, as the map this printer
    // once built did.
    let unique = labels
        .windows(2)
        .all(|w| split_label(&w[0]).0 < split_label(&w[1]).0);
    for (i, kv) in labels.iter().enumerate() {
        let (key, mut value) = split_label(kv);
        if !unique {
            if labels[..i].iter().any(|l| split_label(l).0 == key) {
                continue;
            }
            let last = labels[i..]
                .iter()
                .rev()
                .map(|l| split_label(l))
                .find(|(k, _)| *k == key);
            value = last.map_or(value, |(_, v)| v);
        }
        string(o.escaped_key(key), value);
    }
}

fn split_label(kv: &str) -> (&str, &str) {
    kv.split_once('=').unwrap_or((kv, ""))
}

/// Tetragon's ProcessCredentials, plus bounding and ambient sets and groups.
fn credentials(o: &mut Obj<'_>, c: &Creds) {
    for (k, v) in [
        ("uid", c.uid),
        ("gid", c.gid),
        ("euid", c.euid),
        ("egid", c.egid),
        ("suid", c.suid),
        ("sgid", c.sgid),
        ("fsuid", c.fsuid),
        ("fsgid", c.fsgid),
    ] {
        o.int(k, v);
    }
    if c.securebits != 0 {
        let set = SECUREBITS
            .iter()
            .enumerate()
            .filter(|(i, _)| c.securebits & (1 << i) != 0);
        o.list("securebits", set, |out, (_, name)| plain_str(out, name));
    }
    o.obj("caps", |caps| {
        for (k, v) in [
            ("permitted", c.cap_permitted),
            ("effective", c.cap_effective),
            ("inheritable", c.cap_inheritable),
            ("bounding", c.cap_bounding),
            ("ambient", c.cap_ambient),
        ] {
            if v != 0 {
                cap_list(caps.key(k), v);
            }
        }
    });
    if !c.groups.is_empty() {
        o.list("groups", &c.groups, |out, g| int(out, *g));
    }
    // Tetragon's UserNamespace: level, the creator's uid, the namespace.
    if let (Some(inum), Some(level)) = (c.userns, c.userns_level) {
        o.obj("user_ns", |ns| {
            ns.int("level", level);
            if let Some(owner) = c.userns_owner {
                ns.int("uid", owner);
            }
            ns.obj("ns", |id| {
                id.int("inum", inum);
                if level == 0 {
                    id.set("is_host");
                }
            });
        });
    }
    if c.no_new_privs == Some(true) {
        o.set("no_new_privs");
    }
}

/// Tetragon's SecureBitsType names, bit by bit (a repeated enum).
const SECUREBITS: [&str; 8] = [
    "SecBitNoRoot",
    "SecBitNoRootLocked",
    "SecBitNoSetUidFixup",
    "SecBitNoSetUidFixupLocked",
    "SecBitKeepCaps",
    "SecBitKeepCapsLocked",
    "SecBitNoCapAmbientRaise",
    "SecBitNoCapAmbientRaiseLocked",
];

/// A capability set as Tetragon's list of names, copied a byte of the
/// mask at a time from [`CAP_CHUNKS`].
fn cap_list(out: &mut Vec<u8>, mask: u64) {
    out.push(b'[');
    let mut first = true;
    for (chunk, byte) in CAP_CHUNKS.iter().zip(mask.to_le_bytes()) {
        if byte != 0 {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(chunk[usize::from(byte)].as_bytes());
        }
    }
    out.push(b']');
}

/// For bits 8i to 8i+7 of a capability mask and each value of that byte,
/// the quoted names of the capabilities it holds (`"CAP_CHOWN","DAC_OVERRIDE"`):
/// root's sets hold 41 names, and an event prints up to ten sets.
static CAP_CHUNKS: LazyLock<Vec<Vec<String>>> = LazyLock::new(|| {
    (0..8u32)
        .map(|i| {
            (0..256u32)
                .map(|byte| {
                    (0..8)
                        .filter(|b| byte & (1 << b) != 0)
                        .map(|b| format!("\"{}\"", tetragon_cap_name(8 * i + b)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect()
        })
        .collect()
});

/// Tetragon prints bit 1 without its prefix (a known quirk we keep).
fn tetragon_cap_name(bit: u32) -> std::borrow::Cow<'static, str> {
    if bit == 1 {
        "DAC_OVERRIDE".into()
    } else {
        cap_name(bit)
    }
}

/// The call's arguments as Tetragon's KprobeArguments, if it has any.
fn args(o: &mut Obj<'_>, ev: &Event, kind: Option<Syscall>) {
    match kind {
        // Capability masks: 16 hex digits, as Tetragon prints kernel_cap_t.
        Some(Syscall::Capset) => {
            let masks = [
                ("cap_effective_arg", ev.arg0),
                ("cap_permitted_arg", ev.arg1),
                ("cap_inheritable_arg", ev.arg2),
            ];
            o.list("args", masks, |out, (k, v)| {
                object(out, |a| {
                    display(a.key(k), format_args!("{:016x}", v as u64))
                });
            });
        }
        // Which check noticed the change, and since when it can have happened.
        Some(Syscall::Unexplained) => {
            let strings = [
                ev.option.as_deref().map(StringArg::Text),
                ev.last_seen.map(StringArg::Time),
            ];
            if strings.iter().any(Option::is_some) {
                o.list("args", strings.into_iter().flatten(), |out, v| {
                    object(out, |a| match v {
                        StringArg::Text(text) => a.str("string_arg", text),
                        StringArg::Time(t) => proto_time(a.key("string_arg"), t),
                    });
                });
            }
        }
        _ => {
            let mut values = ev.args().peekable();
            if values.peek().is_some() {
                o.list("args", values, |out, v| object(out, |a| int_arg(a, v)));
            }
        }
    }
}

/// A `string_arg`: text, or a time.
enum StringArg<'a> {
    Text(&'a str),
    Time(i64),
}

/// An integer argument: `int_arg` (int32) when it fits, else `long_arg`
/// (int64, a JSON string in the protobuf mapping).
fn int_arg(o: &mut Obj<'_>, v: i64) {
    match i32::try_from(v) {
        Ok(v) => o.int("int_arg", v),
        Err(_) => display(o.key("long_arg"), v),
    }
}

/// Tetragon's BinaryProperties of an exec that changed credentials.
fn binary_properties(b: &mut Obj<'_>, ev: &Event) {
    let mut changed = Vec::new();
    if ev.new_euid != ev.old_euid {
        b.int("setuid", ev.new_euid);
        changed.push("PRIVILEGES_RAISED_EXEC_FILE_SETUID");
    }
    if ev.new_egid != ev.old_egid {
        b.int("setgid", ev.new_egid);
        changed.push("PRIVILEGES_RAISED_EXEC_FILE_SETGID");
    }
    // Capabilities gained beyond what the ids explain: file capabilities.
    if changed.is_empty() && ev.new_cap_permitted & !ev.old_cap_permitted != 0 {
        changed.push("PRIVILEGES_RAISED_EXEC_FILE_CAP");
    }
    if !changed.is_empty() {
        b.list("privileges_changed", changed, |out, name| {
            plain_str(out, name)
        });
    }
}

/// A protobuf Timestamp in JSON: UTC, with 0, 3, 6 or 9 fractional digits
/// (chrono's `SecondsFormat::AutoSi`), formatted on the stack: through
/// chrono's calendar it was a sixth of the printer's time.
fn proto_time(out: &mut Vec<u8>, unix_ns: i64) {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nano = unix_ns.rem_euclid(1_000_000_000) as u32;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400) as u32;
    // i64 nanoseconds span the years 1677 to 2262: always four digits.
    let mut s = *b"\"0000-00-00T00:00:00.000000000";
    digits(&mut s[1..5], year);
    digits(&mut s[6..8], month);
    digits(&mut s[9..11], day);
    digits(&mut s[12..14], second_of_day / 3600);
    digits(&mut s[15..17], second_of_day / 60 % 60);
    digits(&mut s[18..20], second_of_day % 60);
    digits(&mut s[21..30], nano);
    let fraction = match nano {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    // The seconds, or `.` and the fractional digits kept; then `Z"`.
    let end = if fraction == 0 { 20 } else { 21 + fraction };
    out.extend_from_slice(&s[..end]);
    out.extend_from_slice(b"Z\"");
}

/// The year, month and day of a day counted from 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097); // 400-year cycles
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}

/// `v` in decimal into all of `out`, zero-padded.
fn digits(out: &mut [u8], mut v: u32) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// `tetra getevents -o compact`: an emoji, the event's word padded to 7,
/// the pod (or the node) and binary, then what the event says, each part
/// joined by one space even when empty (an exec without arguments ends
/// with one). Of the calls Tetragon names `sys_setuid` (`🔑 setuid UID`)
/// and `sys_setns` (`🔧 setns NAMESPACE`) once the entry's prefix
/// (`__x64_`, `__ia32_`) is cut; every other call is `❓ syscall …
/// FUNCTION`, a tracepoint `⁉️ tracepoint … SUBSYS EVENT`.
pub fn tetragon_compact(ev: &Event) -> String {
    let place = match (&ev.pod_namespace, &ev.pod_name) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        _ => ev.node_name.clone(),
    };
    let binary = ev.binary.as_deref().unwrap_or_default();
    let function = ev.kernel_function();
    let call = ["__x64_", "__ia32_"]
        .iter()
        .find_map(|p| function.strip_prefix(p))
        .unwrap_or(&function);
    // Tetragon reads an int_arg; a value printed as long_arg reads as 0.
    let int_arg = |v: i64| i32::try_from(v).unwrap_or(0);
    let (emoji, word, rest) = match ev.syscall_kind() {
        Some(Syscall::Execve) => ("🚀", "process", ev.arguments.clone().unwrap_or_default()),
        Some(Syscall::IoUringSubmit) => (
            "⁉️",
            "tracepoint",
            format!("{} {}", IO_URING_TRACEPOINT.0, IO_URING_TRACEPOINT.1),
        ),
        _ if call == "sys_setuid" => ("🔑", "setuid", int_arg(ev.arg0).to_string()),
        _ if call == "sys_setns" => ("🔧", "setns", namespace_name(int_arg(ev.arg1)).into()),
        _ => ("❓", "syscall", function.clone()),
    };
    // Names and arguments are the caller's choice: escapes stay text (the
    // emoji's variation selector is ours).
    let told = format!("{place} {binary} {rest}");
    format!("{emoji} {word:<7} {}", credtrail_cli::term::safe(&told))
}

/// The namespace Tetragon's compact line names for a setns nstype: one
/// kind, `any` for 0, nothing for a combination.
fn namespace_name(nstype: i32) -> &'static str {
    match nstype {
        0 => "any",
        0x0200_0000 => "cgroup",
        0x0800_0000 => "ipc",
        0x4000_0000 => "net",
        0x0002_0000 => "mnt",
        0x2000_0000 => "pid",
        0x80 => "time",
        0x1000_0000 => "user",
        0x0400_0000 => "uts",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_chrono_prints_them() {
        for ns in [
            0,
            1,
            1_000,
            1_000_000,
            1_000_000_000,
            1_688_584_470_918_977_160,
            1_688_584_470_918_977_000,
            1_688_584_470_918_000_000,
            1_688_584_470_000_000_000,
            -1,
            -1_000_000_001,
            i64::MIN,
            i64::MAX,
        ]
        .into_iter()
        // Every day from 1679 to 2260, at a varied time of day, to the ns and to the ms.
        .chain((-106_000..106_000i64).flat_map(|day| {
            let t = (day * 2_654_435_761).rem_euclid(86_400_000_000_000);
            let midnight = day * 86_400_000_000_000;
            [midnight + t, midnight + t / 1_000_000 * 1_000_000]
        })) {
            let mut got = Vec::new();
            proto_time(&mut got, ns);
            let want = chrono::DateTime::from_timestamp_nanos(ns)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(String::from_utf8(got).unwrap(), format!("\"{want}\""));
        }
    }

    #[test]
    fn capability_lists_name_every_bit() {
        for mask in [0, 1, 2, 0x1ff_ffff_ffff, 0x8000_0000_0000_0001, u64::MAX] {
            let mut got = Vec::new();
            cap_list(&mut got, mask);
            let want: Vec<_> = (0..64)
                .filter(|b| mask & (1 << b) != 0)
                .map(tetragon_cap_name)
                .collect();
            assert_eq!(got, serde_json::to_vec(&want).unwrap());
        }
    }

    #[test]
    fn a_repeated_label_keeps_its_first_place_and_last_value() {
        let ev = Event {
            pod_name: Some("p".into()),
            pod_labels: vec!["b=1".into(), "a".into(), "b=2".into(), "c=\"".into()],
            ..Event::default()
        };
        let labels = &tetragon(&ev)["process_kprobe"]["process"]["pod"]["pod_labels"];
        assert_eq!(
            serde_json::to_string(labels).unwrap(),
            r#"{"b":"2","a":"","c":"\""}"#
        );
    }
}
