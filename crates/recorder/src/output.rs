//! Printers shared by the live recorder and every reader of captures.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::{Map, Value};

use crate::event::{Event, Syscall, cap_diff};
use crate::host::rfc3339_ns;

/// Output formats for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintFormat {
    /// One flat JSON object per line, keys equal to the capture's column names.
    Json,
    /// One human-readable line per event.
    Compact,
    /// Tetragon `process_kprobe` JSON (as `tetra getevents -o json`), plus
    /// the return value and the credentials before and after.
    Tetragon,
}

/// Writes one event in `format`, newline-terminated.
pub fn print_event(out: &mut impl Write, format: PrintFormat, ev: &Event) -> io::Result<()> {
    match format {
        PrintFormat::Json => {
            write_json(out, ev)?;
            out.write_all(b"\n")
        }
        PrintFormat::Compact => writeln!(out, "{}", compact(ev)),
        PrintFormat::Tetragon => {
            serde_json::to_writer(&mut *out, &tetragon(ev)).map_err(io::Error::other)?;
            out.write_all(b"\n")
        }
    }
}

/// The JSON form: the columns as keys, in column order, `time` as RFC 3339.
pub fn write_json(out: &mut impl Write, ev: &Event) -> io::Result<()> {
    // Serialized straight from the struct, then `time` (its first field, a
    // number) swapped for the RFC 3339 text: building a `Value` map per event
    // first was most of JSON replay's time (131,000 events/s).
    let mut buf = Vec::with_capacity(1024);
    serde_json::to_writer(&mut buf, ev).map_err(io::Error::other)?;
    const HEAD: &[u8] = b"{\"time\":";
    if let Some(rest) = buf.strip_prefix(HEAD) {
        let number = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'-'))
            .unwrap_or(rest.len());
        out.write_all(HEAD)?;
        write!(out, "\"{}\"", rfc3339_ns(ev.time))?;
        return out.write_all(&rest[number..]);
    }
    write_json_value(out, ev)
}

/// [`write_json`] through a `Value`: whatever the field order.
fn write_json_value(out: &mut impl Write, ev: &Event) -> io::Result<()> {
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

/// A protobuf Timestamp in JSON: UTC, with 0, 3, 6 or 9 fractional digits.
fn proto_time(unix_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Tetragon prints bit 1 without its prefix (a known quirk we keep).
fn tetragon_cap_name(bit: u32) -> String {
    if bit == 1 {
        "DAC_OVERRIDE".to_owned()
    } else {
        crate::event::cap_name(bit).into_owned()
    }
}

fn cap_list(mask: u64) -> Value {
    Value::Array(
        (0..64)
            .filter(|b| mask & (1u64 << b) != 0)
            .map(|b| Value::String(tetragon_cap_name(b)))
            .collect(),
    )
}

/// Tetragon's ProcessCredentials, plus bounding and ambient sets and groups.
fn credentials(c: &crate::event::Creds) -> Value {
    let mut m = Map::new();
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
        m.insert(k.into(), v.into());
    }
    if c.securebits != 0 {
        m.insert("securebits".into(), format!("{:#x}", c.securebits).into());
    }
    let mut caps = Map::new();
    for (k, v) in [
        ("permitted", c.cap_permitted),
        ("effective", c.cap_effective),
        ("inheritable", c.cap_inheritable),
        ("bounding", c.cap_bounding),
        ("ambient", c.cap_ambient),
    ] {
        if v != 0 {
            caps.insert(k.into(), cap_list(v));
        }
    }
    m.insert("caps".into(), caps.into());
    if !c.groups.is_empty() {
        m.insert("groups".into(), c.groups.clone().into());
    }
    m.into()
}

fn put_str(m: &mut Map<String, Value>, k: &str, v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        m.insert(k.into(), v.into());
    }
}

/// The `pod` object shared by process and parent.
fn pod(ev: &Event, container_pid: Option<u32>) -> Option<Value> {
    ev.pod_name.as_ref()?;
    let mut p = Map::new();
    put_str(&mut p, "namespace", ev.pod_namespace.as_deref());
    put_str(&mut p, "name", ev.pod_name.as_deref());
    put_str(&mut p, "uid", ev.pod_uid.as_deref());
    if let Some(id) = &ev.container_id {
        let mut c = Map::new();
        let runtime = ev
            .container_runtime
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("containerd");
        c.insert("id".into(), format!("{runtime}://{id}").into());
        put_str(&mut c, "name", ev.container_name.as_deref());
        let mut img = Map::new();
        put_str(&mut img, "id", ev.image_id.as_deref());
        put_str(&mut img, "name", ev.image_name.as_deref());
        if !img.is_empty() {
            c.insert("image".into(), img.into());
        }
        if let Some(t) = ev.container_start_time {
            c.insert("start_time".into(), proto_time(t).into());
        }
        if let Some(pid) = container_pid {
            c.insert("pid".into(), pid.into());
        }
        p.insert("container".into(), c.into());
    }
    if !ev.pod_labels.is_empty() {
        let labels: Map<String, Value> = ev
            .pod_labels
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), Value::from(v)),
                None => (kv.clone(), Value::from("")),
            })
            .collect();
        p.insert("pod_labels".into(), labels.into());
    }
    Some(p.into())
}

/// One event as Tetragon's `process_kprobe` JSON: field names, order and
/// omission rules of `tetra getevents -o json` (zero scalars omitted; pid,
/// uid, auid and tid always printed).
pub fn tetragon(ev: &Event) -> Value {
    let docker = ev
        .container_id
        .as_deref()
        .map(|id| id[..id.len().min(31)].to_owned());
    let mut process = Map::new();
    put_str(&mut process, "exec_id", ev.exec_id.as_deref());
    process.insert("pid".into(), ev.pid.into());
    process.insert("uid".into(), ev.process_uid.unwrap_or(ev.old_euid).into());
    put_str(&mut process, "cwd", ev.cwd.as_deref());
    put_str(&mut process, "binary", ev.binary.as_deref());
    put_str(&mut process, "arguments", ev.arguments.as_deref());
    put_str(&mut process, "flags", ev.flags.as_deref());
    if let Some(t) = ev.start_time {
        process.insert("start_time".into(), proto_time(t).into());
    }
    process.insert("auid".into(), ev.auid.into());
    if let Some(p) = pod(ev, ev.container_pid) {
        process.insert("pod".into(), p);
    }
    put_str(&mut process, "docker", docker.as_deref());
    put_str(&mut process, "parent_exec_id", ev.parent_exec_id.as_deref());
    process.insert("tid".into(), ev.tid.into());
    process.insert("process_credentials".into(), credentials(&ev.old_creds()));

    let mut kprobe = Map::new();
    kprobe.insert("process".into(), process.into());
    if let Some(ppid) = ev.parent_pid {
        let mut parent = Map::new();
        put_str(&mut parent, "exec_id", ev.parent_exec_id.as_deref());
        parent.insert("pid".into(), ppid.into());
        if let Some(uid) = ev.parent_uid {
            parent.insert("uid".into(), uid.into());
        }
        put_str(&mut parent, "cwd", ev.parent_cwd.as_deref());
        put_str(&mut parent, "binary", ev.parent_binary.as_deref());
        put_str(&mut parent, "arguments", ev.parent_arguments.as_deref());
        put_str(&mut parent, "flags", ev.parent_flags.as_deref());
        if let Some(t) = ev.parent_start_time {
            parent.insert("start_time".into(), proto_time(t).into());
        }
        if let Some(auid) = ev.parent_auid {
            parent.insert("auid".into(), auid.into());
        }
        if let Some(p) = pod(ev, ev.parent_container_pid) {
            parent.insert("pod".into(), p);
        }
        put_str(&mut parent, "docker", docker.as_deref());
        put_str(
            &mut parent,
            "parent_exec_id",
            ev.parent_parent_exec_id.as_deref(),
        );
        parent.insert("tid".into(), ppid.into());
        kprobe.insert("parent".into(), parent.into());
    }
    kprobe.insert(
        "function_name".into(),
        format!("__x64_sys_{}", ev.syscall).into(),
    );
    let args: Vec<Value> = match ev.syscall_kind() {
        Some(Syscall::Capset) => [
            "cap_effective_arg",
            "cap_permitted_arg",
            "cap_inheritable_arg",
        ]
        .iter()
        .zip([ev.arg0, ev.arg1, ev.arg2])
        .map(|(k, v)| {
            let names: Vec<String> = (0..64)
                .filter(|b| (v as u64) & (1u64 << b) != 0)
                .map(tetragon_cap_name)
                .collect();
            serde_json::json!({ *k: names.join(" ") })
        })
        .collect(),
        _ => ev
            .args()
            .map(|a| serde_json::json!({ "int_arg": a }))
            .collect(),
    };
    if !args.is_empty() {
        kprobe.insert("args".into(), args.into());
    }
    kprobe.insert("return".into(), serde_json::json!({ "int_arg": ev.ret }));
    kprobe.insert("action".into(), "KPROBE_ACTION_POST".into());
    kprobe.insert(
        "new_process_credentials".into(),
        credentials(&ev.new_creds()),
    );

    let mut top = Map::new();
    top.insert("process_kprobe".into(), kprobe.into());
    top.insert("node_name".into(), ev.node_name.clone().into());
    top.insert("time".into(), proto_time(ev.time).into());
    top.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_json_equals_the_value_form() {
        let events = [
            Event::default(),
            Event {
                time: 1_764_000_000_123_456_789,
                node_name: "n\"ode".into(),
                comm: "s\u{e9}\\u".into(),
                groups: Some(vec![1, 2]),
                binary: Some("/bin/su".into()),
                start_time: Some(-7),
                ..Event::default()
            },
            Event {
                time: -1_000_000_001,
                ..Event::default()
            },
        ];
        for ev in &events {
            let (mut direct, mut value) = (Vec::new(), Vec::new());
            write_json(&mut direct, ev).unwrap();
            write_json_value(&mut value, ev).unwrap();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                String::from_utf8(value).unwrap()
            );
        }
    }
}
