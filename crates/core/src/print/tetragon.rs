//! `--print tetragon`: Tetragon's `GetEventsResponse` JSON (as `tetra
//! getevents -o json` writes it, under the protobuf JSON mapping):
//! `process_kprobe` for calls, `process_exec` for credentials changed by
//! exec. credtrail's extra fields (credentials after the call, bounding and
//! ambient sets, groups, no_new_privs) are fields a protobuf reader skips.
//! `--print tetragon-compact` is `tetra getevents -o compact`.

use serde_json::{Map, Value};

use crate::model::creds::{Creds, cap_name};
use crate::model::{Event, Syscall};

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
        cap_name(bit).into_owned()
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

fn securebits(bits: u32) -> Value {
    SECUREBITS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| Value::from(*n))
        .collect()
}

/// The policy an event is reported under when it was recorded without
/// `--policy` (the `policy` column is null).
pub const DEFAULT_POLICY: &str = "credtrail-credentials";

/// An integer argument: `int_arg` (int32) when it fits, else `long_arg`
/// (int64, a JSON string in the protobuf mapping).
fn int_arg(v: i64) -> Value {
    match i32::try_from(v) {
        Ok(v) => serde_json::json!({ "int_arg": v }),
        Err(_) => serde_json::json!({ "long_arg": v.to_string() }),
    }
}

/// Tetragon's ProcessCredentials, plus bounding and ambient sets and groups.
fn credentials(c: &Creds) -> Value {
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
        m.insert("securebits".into(), securebits(c.securebits));
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
    // Tetragon's UserNamespace: level, the creator's uid, the namespace.
    if let (Some(inum), Some(level)) = (c.userns, c.userns_level) {
        let mut ns = Map::new();
        ns.insert("level".into(), level.into());
        if let Some(owner) = c.userns_owner {
            ns.insert("uid".into(), owner.into());
        }
        let mut id = Map::new();
        id.insert("inum".into(), inum.into());
        if level == 0 {
            id.insert("is_host".into(), true.into());
        }
        ns.insert("ns".into(), id.into());
        m.insert("user_ns".into(), ns.into());
    }
    if c.no_new_privs == Some(true) {
        m.insert("no_new_privs".into(), true.into());
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
    // Without owner references (not in the capture) the pod is its own
    // workload, as Tetragon reports a bare pod.
    put_str(&mut p, "workload", ev.pod_name.as_deref());
    p.insert("workload_kind".into(), "Pod".into());
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

/// Tetragon's Process for the event's process: identity, pod and the
/// credentials `creds`.
fn process(ev: &Event, creds: &Creds) -> Map<String, Value> {
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
    put_str(&mut process, "docker", docker(ev).as_deref());
    put_str(&mut process, "parent_exec_id", ev.parent_exec_id.as_deref());
    process.insert("tid".into(), ev.tid.into());
    process.insert("process_credentials".into(), credentials(creds));
    // The container's init is in its init tree; for other processes the
    // capture does not say (a BoolValue left out: unknown).
    if ev.container_pid == Some(1) {
        process.insert("in_init_tree".into(), true.into());
    }
    process
}

/// The container id as Tetragon's `docker` field: its first 31 characters.
fn docker(ev: &Event) -> Option<String> {
    ev.container_id
        .as_deref()
        .map(|id| id[..id.len().min(31)].to_owned())
}

/// Tetragon's Process for the parent. Its pod and container are the
/// event's only when the parent runs in a container too (the host-side
/// runtime that started a container is not in it).
fn parent(ev: &Event) -> Option<Map<String, Value>> {
    let ppid = ev.parent_pid?;
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
    if ev.parent_container_pid.is_some() {
        if let Some(p) = pod(ev, ev.parent_container_pid) {
            parent.insert("pod".into(), p);
        }
        put_str(&mut parent, "docker", docker(ev).as_deref());
    }
    put_str(
        &mut parent,
        "parent_exec_id",
        ev.parent_parent_exec_id.as_deref(),
    );
    parent.insert("tid".into(), ppid.into());
    Some(parent)
}

/// The call's arguments as Tetragon's KprobeArguments.
fn args(ev: &Event) -> Vec<Value> {
    match ev.syscall_kind() {
        // Capability masks: 16 hex digits, as Tetragon prints kernel_cap_t.
        Some(Syscall::Capset) => [
            "cap_effective_arg",
            "cap_permitted_arg",
            "cap_inheritable_arg",
        ]
        .iter()
        .zip([ev.arg0, ev.arg1, ev.arg2])
        .map(|(k, v)| serde_json::json!({ *k: format!("{:016x}", v as u64) }))
        .collect(),
        // Which check noticed the change, and since when it can have happened.
        Some(Syscall::Unexplained) => [ev.option.clone(), ev.last_seen.map(proto_time)]
            .into_iter()
            .flatten()
            .map(|v| serde_json::json!({ "string_arg": v }))
            .collect(),
        _ => ev.args().map(int_arg).collect(),
    }
}

/// Tetragon's BinaryProperties of an exec that changed credentials.
fn binary_properties(ev: &Event) -> Value {
    let mut b = Map::new();
    let mut changed = Vec::new();
    if ev.new_euid != ev.old_euid {
        b.insert("setuid".into(), ev.new_euid.into());
        changed.push("PRIVILEGES_RAISED_EXEC_FILE_SETUID");
    }
    if ev.new_egid != ev.old_egid {
        b.insert("setgid".into(), ev.new_egid.into());
        changed.push("PRIVILEGES_RAISED_EXEC_FILE_SETGID");
    }
    // Capabilities gained beyond what the ids explain: file capabilities.
    if changed.is_empty() && ev.new_cap_permitted & !ev.old_cap_permitted != 0 {
        changed.push("PRIVILEGES_RAISED_EXEC_FILE_CAP");
    }
    if !changed.is_empty() {
        b.insert("privileges_changed".into(), changed.into());
    }
    b.into()
}

/// One event as Tetragon's JSON: field names, order and omission rules of
/// `tetra getevents -o json` (zero scalars omitted; pid, uid, auid and tid
/// always printed). A credential change by exec is a `process_exec` with
/// the credentials after it and its binary properties; every other event
/// a `process_kprobe` with the credentials before and (credtrail's) after.
pub fn tetragon(ev: &Event) -> Value {
    let (kind, body) = if ev.syscall_kind() == Some(Syscall::Execve) {
        let mut p = process(ev, &ev.new_creds());
        p.insert("binary_properties".into(), binary_properties(ev));
        let mut exec = Map::new();
        exec.insert("process".into(), p.into());
        if let Some(parent) = parent(ev) {
            exec.insert("parent".into(), parent.into());
        }
        exec.insert(
            "old_process_credentials".into(),
            credentials(&ev.old_creds()),
        );
        ("process_exec", exec)
    } else {
        let mut kprobe = Map::new();
        kprobe.insert("process".into(), process(ev, &ev.old_creds()).into());
        if let Some(parent) = parent(ev) {
            kprobe.insert("parent".into(), parent.into());
        }
        kprobe.insert("function_name".into(), ev.kernel_function().into());
        let args = args(ev);
        if !args.is_empty() {
            kprobe.insert("args".into(), args.into());
        }
        kprobe.insert("return".into(), int_arg(ev.ret));
        kprobe.insert("action".into(), "KPROBE_ACTION_POST".into());
        kprobe.insert(
            "policy_name".into(),
            ev.policy.as_deref().unwrap_or(DEFAULT_POLICY).into(),
        );
        kprobe.insert("return_action".into(), "KPROBE_ACTION_POST".into());
        kprobe.insert(
            "new_process_credentials".into(),
            credentials(&ev.new_creds()),
        );
        ("process_kprobe", kprobe)
    };
    let mut top = Map::new();
    top.insert(kind.into(), body.into());
    top.insert("node_name".into(), ev.node_name.clone().into());
    top.insert("time".into(), proto_time(ev.time).into());
    top.into()
}

/// `tetra getevents -o compact`: an emoji, the event's word padded to 7,
/// the pod (or the node) and binary, then what the call asked for. Tetragon
/// names setuid only; every other call is `❓ syscall … FUNCTION`.
pub fn tetragon_compact(ev: &Event) -> String {
    let place = match (&ev.pod_namespace, &ev.pod_name) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        _ => ev.node_name.clone(),
    };
    let binary = ev.binary.as_deref().unwrap_or_default();
    let (emoji, word, rest) = match ev.syscall_kind() {
        Some(Syscall::Execve) => ("🚀", "process", ev.arguments.clone().unwrap_or_default()),
        Some(Syscall::Setuid) => ("🔑", "setuid", ev.arg0.to_string()),
        _ => ("❓", "syscall", ev.kernel_function()),
    };
    let line = format!("{emoji} {word:<7} {place} {binary} {rest}");
    // Names and arguments are the caller's choice: escapes stay text.
    crate::term::safe(line.trim_end()).into_owned()
}
