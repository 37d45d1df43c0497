//! Every line of `--print tetragon`, for every fixture, against the field
//! types of Tetragon's API (`api/v1/tetragon/*.proto`, cilium/tetragon) under
//! the protobuf JSON mapping, as `tetra getevents` reads it: known fields
//! must have their proto type; fields Tetragon does not know are allowed
//! only where credtrail adds them on purpose (a protobuf reader that
//! discards unknown fields, as `tetra` does, skips them).

use credtrail_pipeline::print::PrintFormat;
use serde_json::Value;

use crate::golden::replay_to_string;

/// A field's type in the protobuf JSON mapping.
#[derive(Clone, Copy)]
enum T {
    Str,
    /// uint32 and google.protobuf.UInt32Value: a JSON number.
    U32,
    /// int32 and Int32Value.
    I32,
    /// int64: a JSON string (a number is accepted on input).
    I64,
    /// uint64: as int64.
    U64,
    Bool,
    /// google.protobuf.Timestamp: RFC 3339, UTC.
    Time,
    Enum(&'static [&'static str]),
    Msg(&'static str),
    /// map<string, string>.
    MapStr,
}

use T::*;

const KPROBE_ACTIONS: &[&str] = &[
    "KPROBE_ACTION_UNKNOWN",
    "KPROBE_ACTION_POST",
    "KPROBE_ACTION_FOLLOWFD",
    "KPROBE_ACTION_SIGKILL",
    "KPROBE_ACTION_UNFOLLOWFD",
    "KPROBE_ACTION_OVERRIDE",
    "KPROBE_ACTION_COPYFD",
    "KPROBE_ACTION_GETURL",
    "KPROBE_ACTION_DNSLOOKUP",
    "KPROBE_ACTION_NOPOST",
    "KPROBE_ACTION_SIGNAL",
];

const SECURE_BITS: &[&str] = &[
    "SecBitNotSet",
    "SecBitNoRoot",
    "SecBitNoRootLocked",
    "SecBitNoSetUidFixup",
    "SecBitNoSetUidFixupLocked",
    "SecBitKeepCaps",
    "SecBitKeepCapsLocked",
    "SecBitNoCapAmbientRaise",
    "SecBitNoCapAmbientRaiseLocked",
];

const PRIVILEGES_CHANGED: &[&str] = &[
    "PRIVILEGES_CHANGED_UNSET",
    "PRIVILEGES_RAISED_EXEC_FILE_CAP",
    "PRIVILEGES_RAISED_EXEC_FILE_SETUID",
    "PRIVILEGES_RAISED_EXEC_FILE_SETGID",
];

/// CapabilitiesType: bit 1 is `DAC_OVERRIDE`, without the prefix.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// (field, type, repeated) of each message credtrail writes, from the
/// proto definitions.
fn fields(msg: &str) -> &'static [(&'static str, T, bool)] {
    match msg {
        "GetEventsResponse" => &[
            ("process_exec", Msg("ProcessExec"), false),
            ("process_exit", Msg("ProcessExit"), false),
            ("process_kprobe", Msg("ProcessKprobe"), false),
            ("process_tracepoint", Msg("ProcessTracepoint"), false),
            ("node_name", Str, false),
            ("time", Time, false),
            ("cluster_name", Str, false),
            ("node_labels", MapStr, false),
        ],
        "ProcessKprobe" => &[
            ("process", Msg("Process"), false),
            ("parent", Msg("Process"), false),
            ("function_name", Str, false),
            ("args", Msg("KprobeArgument"), true),
            ("return", Msg("KprobeArgument"), false),
            ("action", Enum(KPROBE_ACTIONS), false),
            ("policy_name", Str, false),
            ("return_action", Enum(KPROBE_ACTIONS), false),
            ("message", Str, false),
            ("tags", Str, true),
            ("ancestors", Msg("Process"), true),
        ],
        "ProcessTracepoint" => &[
            ("process", Msg("Process"), false),
            ("parent", Msg("Process"), false),
            ("subsys", Str, false),
            ("event", Str, false),
            ("args", Msg("KprobeArgument"), true),
            ("policy_name", Str, false),
            ("action", Enum(KPROBE_ACTIONS), false),
            ("message", Str, false),
            ("tags", Str, true),
            ("ancestors", Msg("Process"), true),
        ],
        "ProcessExec" | "ProcessExit" => &[
            ("process", Msg("Process"), false),
            ("parent", Msg("Process"), false),
            ("ancestors", Msg("Process"), true),
            ("signal", Str, false),
            ("status", U32, false),
            ("time", Time, false),
        ],
        "Process" => &[
            ("exec_id", Str, false),
            ("pid", U32, false),
            ("uid", U32, false),
            ("cwd", Str, false),
            ("binary", Str, false),
            ("arguments", Str, false),
            ("flags", Str, false),
            ("start_time", Time, false),
            ("auid", U32, false),
            ("pod", Msg("Pod"), false),
            ("docker", Str, false),
            ("parent_exec_id", Str, false),
            ("refcnt", U32, false),
            ("cap", Msg("Capabilities"), false),
            ("tid", U32, false),
            ("process_credentials", Msg("ProcessCredentials"), false),
            ("binary_properties", Msg("BinaryProperties"), false),
            ("in_init_tree", Bool, false),
        ],
        "Pod" => &[
            ("namespace", Str, false),
            ("name", Str, false),
            ("uid", Str, false),
            ("container", Msg("Container"), false),
            ("pod_labels", MapStr, false),
            ("workload", Str, false),
            ("workload_kind", Str, false),
            ("pod_annotations", MapStr, false),
        ],
        "Container" => &[
            ("id", Str, false),
            ("name", Str, false),
            ("image", Msg("Image"), false),
            ("start_time", Time, false),
            ("pid", U32, false),
            ("maybe_exec_probe", Bool, false),
        ],
        "Image" => &[("id", Str, false), ("name", Str, false)],
        "ProcessCredentials" => &[
            ("uid", U32, false),
            ("gid", U32, false),
            ("euid", U32, false),
            ("egid", U32, false),
            ("suid", U32, false),
            ("sgid", U32, false),
            ("fsuid", U32, false),
            ("fsgid", U32, false),
            ("securebits", Enum(SECURE_BITS), true),
            ("caps", Msg("Capabilities"), false),
            ("user_ns", Msg("UserNamespace"), false),
        ],
        "Capabilities" => &[
            ("permitted", Enum(CAPABILITIES), true),
            ("effective", Enum(CAPABILITIES), true),
            ("inheritable", Enum(CAPABILITIES), true),
        ],
        "UserNamespace" => &[
            ("level", I32, false),
            ("uid", U32, false),
            ("gid", U32, false),
            ("ns", Msg("Namespace"), false),
        ],
        "Namespace" => &[("inum", U32, false), ("is_host", Bool, false)],
        "BinaryProperties" => &[
            ("setuid", U32, false),
            ("setgid", U32, false),
            ("privileges_changed", Enum(PRIVILEGES_CHANGED), true),
        ],
        "KprobeArgument" => &[
            ("string_arg", Str, false),
            ("int_arg", I32, false),
            ("long_arg", I64, false),
            ("size_arg", U64, false),
            ("uint_arg", U32, false),
            ("cap_effective_arg", Str, false),
            ("cap_permitted_arg", Str, false),
            ("cap_inheritable_arg", Str, false),
            ("process_credentials_arg", Msg("ProcessCredentials"), false),
            ("user_ns_arg", Msg("UserNamespace"), false),
            ("label", Str, false),
        ],
        other => panic!("no definition of {other}"),
    }
}

/// Fields credtrail adds, which Tetragon's readers skip.
fn extras(msg: &str) -> &'static [(&'static str, T, bool)] {
    match msg {
        "ProcessKprobe" | "ProcessTracepoint" => {
            &[("new_process_credentials", Msg("ProcessCredentials"), false)]
        }
        "ProcessExec" => &[("old_process_credentials", Msg("ProcessCredentials"), false)],
        "ProcessCredentials" => &[("groups", U32, true), ("no_new_privs", Bool, false)],
        "Capabilities" => &[
            ("bounding", Enum(CAPABILITIES), true),
            ("ambient", Enum(CAPABILITIES), true),
        ],
        _ => &[],
    }
}

fn check_value(v: &Value, t: T, path: &str, errs: &mut Vec<String>) {
    let ok = match t {
        Str => v.is_string(),
        U32 => v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
        I32 => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        I64 => v.as_str().is_some_and(|s| s.parse::<i64>().is_ok()) || v.is_i64(),
        U64 => v.as_str().is_some_and(|s| s.parse::<u64>().is_ok()) || v.is_u64(),
        Bool => v.is_boolean(),
        Time => v
            .as_str()
            .is_some_and(|s| s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        Enum(names) => v.as_str().is_some_and(|s| names.contains(&s)),
        MapStr => v
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)),
        Msg(name) => {
            check_msg(v, name, path, errs);
            return;
        }
    };
    if !ok {
        errs.push(format!("{path}: {v} is not {}", type_name(t)));
    }
}

fn type_name(t: T) -> &'static str {
    match t {
        Str => "a string",
        U32 => "a uint32 number",
        I32 => "an int32 number",
        I64 => "an int64 (string)",
        U64 => "a uint64 (string)",
        Bool => "a bool",
        Time => "an RFC 3339 UTC timestamp",
        Enum(_) => "one of the enum's names",
        MapStr => "a map of strings",
        Msg(_) => "a message",
    }
}

fn check_msg(v: &Value, msg: &str, path: &str, errs: &mut Vec<String>) {
    let Some(obj) = v.as_object() else {
        errs.push(format!("{path}: {msg} must be an object, is {v}"));
        return;
    };
    for (k, fv) in obj {
        let p = format!("{path}.{k}");
        let known = fields(msg)
            .iter()
            .chain(extras(msg))
            .find(|(n, _, _)| n == k);
        let Some(&(_, t, repeated)) = known else {
            errs.push(format!("{p}: {msg} has no such field"));
            continue;
        };
        match (repeated, fv.as_array()) {
            (true, Some(items)) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(item, t, &format!("{p}[{i}]"), errs);
                }
            }
            (true, None) => errs.push(format!("{p}: repeated, must be a list, is {fv}")),
            (false, _) => check_value(fv, t, &p, errs),
        }
    }
    if msg == "KprobeArgument" {
        let set = obj.keys().filter(|k| *k != "label").count();
        if set != 1 {
            errs.push(format!("{path}: one member of the arg oneof, not {set}"));
        }
    }
}

const EVENTS: [&str; 4] = [
    "process_exec",
    "process_exit",
    "process_kprobe",
    "process_tracepoint",
];

/// Every fixture capture's folder.
fn fixture_dirs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("manifest.json").exists())
        .collect()
}

#[test]
fn every_fixture_line_is_a_tetragon_get_events_response() {
    let mut lines = 0;
    for dir in fixture_dirs() {
        for (i, line) in replay_to_string(&dir, PrintFormat::Tetragon)
            .lines()
            .enumerate()
        {
            let v: Value = serde_json::from_str(line).unwrap();
            let mut errs = Vec::new();
            check_msg(&v, "GetEventsResponse", "", &mut errs);
            let kinds = EVENTS.iter().filter(|k| v.get(**k).is_some()).count();
            if kinds != 1 {
                errs.push(format!("{kinds} events in one response"));
            }
            assert!(
                errs.is_empty(),
                "{} line {}: {errs:#?}\n{line}",
                dir.display(),
                i + 1
            );
            lines += 1;
        }
    }
    assert!(lines > 100, "{lines} lines checked");
}

#[test]
fn the_checker_rejects_what_tetra_would() {
    let bad = serde_json::json!({
        "process_kprobe": {
            "process": {
                "pid": 1,
                "process_credentials": { "securebits": "0x10" },
            },
            "args": [{ "int_arg": 5_000_000_000i64 }],
        },
        "time": "yesterday",
    });
    let mut errs = Vec::new();
    check_msg(&bad, "GetEventsResponse", "", &mut errs);
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn what_the_tetragon_views_say_about_the_xwing_su() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let compact = replay_to_string(&root.join("k8s-xwing-su"), PrintFormat::TetragonCompact);
    assert!(
        compact
            .lines()
            .any(|l| l == "🔑 setuid  default/xwing /bin/su 0"),
        "{compact}"
    );
    // The host-side runc that started the container is not in the pod.
    let json = replay_to_string(&root.join("k8s-xwing-su"), PrintFormat::Tetragon);
    for line in json.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let k = &v["process_kprobe"];
        if k["process"]["binary"] == "/usr/bin/runc" && k["process"]["pod"].is_null() {
            assert!(k["parent"]["pod"].is_null(), "{line}");
            assert!(k["parent"]["docker"].is_null(), "{line}");
        }
    }
    // An exec that raised privileges is Tetragon's process_exec.
    let exec = replay_to_string(&root.join("setuid-binary-exec"), PrintFormat::Tetragon);
    let e: Value = exec
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v.get("process_exec").is_some())
        .expect("the setuid exec");
    let props = &e["process_exec"]["process"]["binary_properties"];
    assert_eq!(props["setuid"], 0);
    assert_eq!(
        props["privileges_changed"],
        serde_json::json!(["PRIVILEGES_RAISED_EXEC_FILE_SETUID"])
    );
}

/// `tetra getevents -o compact` for one `--print tetragon` line, written
/// from Tetragon's compact encoder (`pkg/encoder`, colours off), not from
/// credtrail's printer: `EMOJI WORD` (the word padded to 7), the pod
/// (`namespace/name`) or node, the binary, then the event's own part, all
/// joined by single spaces, empty parts included. Kprobes: the function
/// name with its entry prefix cut (`__x64_`, `__arm64_`, `__ia32_`);
/// `sys_setuid` and `sys_setns` have their own words, every other call is
/// `❓ syscall` and the full function name. Tracepoints other than
/// `raw_syscalls/sys_enter`: `⁉️ tracepoint SUBSYS EVENT`. No capability
/// trailer: it is drawn from `process.cap`, which credtrail does not write.
fn tetra_compact(v: &Value) -> String {
    let node = v["node_name"].as_str().unwrap_or_default();
    let info = |p: &Value| {
        let source = match p.get("pod") {
            Some(pod) => format!(
                "{}/{}",
                pod["namespace"].as_str().unwrap_or_default(),
                pod["name"].as_str().unwrap_or_default()
            ),
            None => node.to_owned(),
        };
        format!("{source} {}", p["binary"].as_str().unwrap_or_default())
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if let Some(e) = v.get("process_exec") {
        let p = &e["process"];
        return format!("🚀 {:<7} {} {}", "process", info(p), text(&p["arguments"]));
    }
    if let Some(t) = v.get("process_tracepoint") {
        return format!(
            "⁉️ {:<7} {} {} {}",
            "tracepoint",
            info(&t["process"]),
            text(&t["subsys"]),
            text(&t["event"])
        );
    }
    let k = &v["process_kprobe"];
    let function = text(&k["function_name"]);
    let cut = ["__x64_", "__arm64_", "__ia32_"]
        .iter()
        .find_map(|p| function.strip_prefix(p))
        .unwrap_or(&function);
    // GetIntArg: 0 unless the argument is an int_arg.
    let int_arg = |i: usize| k["args"][i]["int_arg"].as_i64().unwrap_or(0);
    match cut {
        "sys_setuid" => format!("🔑 {:<7} {} {}", "setuid", info(&k["process"]), int_arg(0)),
        "sys_setns" => {
            let ns = match int_arg(1) {
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
            };
            format!("🔧 {:<7} {} {ns}", "setns", info(&k["process"]))
        }
        _ => format!("❓ {:<7} {} {function}", "syscall", info(&k["process"])),
    }
}

#[test]
fn tetragon_compact_is_what_tetra_prints_for_every_fixture_line() {
    let mut lines = 0;
    for dir in fixture_dirs() {
        let json = replay_to_string(&dir, PrintFormat::Tetragon);
        let compact = replay_to_string(&dir, PrintFormat::TetragonCompact);
        let compact: Vec<&str> = compact.lines().collect();
        assert_eq!(json.lines().count(), compact.len(), "{}", dir.display());
        for (i, (line, got)) in json.lines().zip(compact).enumerate() {
            let want = tetra_compact(&serde_json::from_str(line).unwrap());
            // Byte for byte, trailing spaces included (insta's snapshots
            // do not see those).
            assert_eq!(got, want, "{} line {}", dir.display(), i + 1);
            lines += 1;
        }
    }
    assert!(lines > 100, "{lines} lines checked");
}

/// The kernel functions fixtures/README.md lists, and the kernel release
/// whose /proc/kallsyms they were checked against.
fn listed_functions() -> (String, Vec<String>) {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/README.md"),
    )
    .unwrap();
    let (_, rest) = readme
        .split_once("<!-- kallsyms:begin release=")
        .expect("the list's start");
    let (release, rest) = rest.split_once(" -->").unwrap();
    let (list, _) = rest.split_once("<!-- kallsyms:end -->").expect("its end");
    let names = list
        .lines()
        .filter_map(|l| l.strip_prefix("- `")?.strip_suffix('`'))
        .map(str::to_owned)
        .collect();
    (release.to_owned(), names)
}

#[test]
fn every_function_name_is_a_kernel_symbol() {
    let (release, listed) = listed_functions();
    assert!(listed.len() >= 39, "{listed:?}");
    let mut named = std::collections::BTreeSet::new();
    for dir in fixture_dirs() {
        for line in replay_to_string(&dir, PrintFormat::Tetragon).lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(f) = v["process_kprobe"]["function_name"].as_str() {
                named.insert(f.to_owned());
            }
        }
    }
    for f in &named {
        assert!(
            listed.contains(f) || f == "credtrail_unexplained_change",
            "{f} is not a function of the recording kernel (fixtures/README.md)"
        );
    }
    assert!(named.contains("__ia32_sys_setresuid") && named.contains("__ia32_sys_setuid16"));
    // On the kernel the list was made on, the list itself is checked.
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    if running.trim() == release {
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
        let symbols: std::collections::HashSet<&str> = kallsyms
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        for f in &listed {
            assert!(symbols.contains(f.as_str()), "{f} is not in /proc/kallsyms");
        }
    }
}
