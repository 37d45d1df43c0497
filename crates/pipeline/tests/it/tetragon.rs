//! `--print tetragon` against the event in Tetragon's own credentials guide
//! (`tests/data/tetragon-guide-setgid.json`, copied from it verbatim).

use credtrail_capture::model::Event;
use credtrail_pipeline::print as output;
use serde_json::Value;

fn ns(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

/// The guide's `su root` setgid(0) call, as credtrail's enrichment fills it.
fn guide_event() -> Event {
    let mut ev = Event {
        time: ns("2023-07-05T19:14:30.918977160Z"),
        node_name: "kind-control-plane".into(),
        pid: 125798,
        tid: 125798,
        ppid: 125792,
        comm: "su".into(),
        syscall: "setgid".into(),
        arg0: 0,
        ret: 0,
        auid: 4294967295,
        exec_id: Some("a2luZC1jb250cm9sLXBsYW5lOjQwNzk4ODc2MDI2NTk4OjEyNTc5OA==".into()),
        parent_exec_id: Some("a2luZC1jb250cm9sLXBsYW5lOjQwNzk1NjYyMDM3MzMyOjEyNTc5Mg==".into()),
        binary: Some("/bin/su".into()),
        arguments: Some("root".into()),
        cwd: Some("/".into()),
        flags: Some("execve rootcwd clone".into()),
        start_time: Some(ns("2023-07-05T19:14:30.918693157Z")),
        process_uid: Some(0),
        parent_pid: Some(125792),
        parent_binary: Some("/bin/bash".into()),
        parent_arguments: Some(String::new()),
        parent_cwd: Some("/".into()),
        parent_flags: Some("execve rootcwd clone".into()),
        parent_start_time: Some(ns("2023-07-05T19:14:27.704703805Z")),
        parent_parent_exec_id: Some("a2luZC1jb250cm9sLXBsYW5lOjQwNzk1NjE2MTU0NzA2OjEyNTc4Mw==".into()),
        parent_uid: Some(0),
        parent_auid: Some(4294967295),
        container_id: Some("55936e548de63f77ceb595d64966dd8e267b391ff0ef63b26c17eb8c2f6510be".into()),
        container_runtime: Some("containerd".into()),
        container_pid: Some(19),
        parent_container_pid: Some(13),
        pod_namespace: Some("default".into()),
        pod_name: Some("xwing".into()),
        container_name: Some("spaceship".into()),
        image_name: Some("docker.io/tgraf/netperf:latest".into()),
        image_id: Some("docker.io/tgraf/netperf@sha256:8e86f744bfea165fd4ce68caa05abc96500f40130b857773186401926af7e9e6".into()),
        pod_labels: vec![
            "app.kubernetes.io/name=xwing".into(),
            "class=xwing".into(),
            "org=alliance".into(),
        ],
        container_start_time: Some(ns("2023-07-05T18:45:16Z")),
        ..Event::default()
    };
    ev.old_uid = 0;
    ev.new_gid = 0;
    ev
}

/// Every field of `want` is in `got` with the same value; `skip` names
/// fields credtrail does not produce.
fn assert_subset(want: &Value, got: &Value, path: &str, skip: &[&str]) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                let p = format!("{path}.{k}");
                let gv = g.get(k).unwrap_or_else(|| panic!("missing {p}"));
                assert_subset(wv, gv, &p, skip);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}");
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                assert_subset(wv, gv, &format!("{path}[{i}]"), skip);
            }
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

#[test]
fn matches_the_guide_field_by_field() {
    let want: Value =
        serde_json::from_str(include_str!("../data/tetragon-guide-setgid.json")).unwrap();
    let got = output::tetragon(&guide_event());
    // refcnt is Tetragon's internal cache reference count; credtrail has none.
    assert_subset(&want, &got, "", &["refcnt"]);
    // Key order of the objects the guide shows.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let guide_process: Vec<String> = keys(&want["process_kprobe"]["process"])
        .into_iter()
        .filter(|k| k != "refcnt")
        .collect();
    let ours: Vec<String> = keys(&got["process_kprobe"]["process"])
        .into_iter()
        .filter(|k| guide_process.contains(k))
        .collect();
    assert_eq!(ours, guide_process);
    assert_eq!(
        keys(&got).into_iter().collect::<Vec<_>>(),
        vec!["process_kprobe", "node_name", "time"]
    );
    // credtrail's additions: the return value and both credential sets.
    let k = &got["process_kprobe"];
    assert_eq!(k["return"]["int_arg"], 0);
    assert_eq!(k["process"]["process_credentials"]["uid"], 0);
    assert!(k["new_process_credentials"].is_object());
}

#[test]
fn tetragon_omits_zero_scalars_but_keeps_ids() {
    let ev = Event {
        syscall: "setuid".into(),
        arg0: -1,
        pid: 0,
        ..Event::default()
    };
    let v = output::tetragon(&ev);
    let p = &v["process_kprobe"]["process"];
    assert_eq!(p["pid"], 0);
    assert_eq!(p["uid"], 0);
    assert_eq!(p["auid"], 0);
    assert_eq!(p["tid"], 0);
    assert!(p.get("cwd").is_none() && p.get("binary").is_none() && p.get("pod").is_none());
    assert!(v["process_kprobe"].get("parent").is_none());
    assert_eq!(
        v["process_kprobe"]["args"][0]["int_arg"], -1,
        "unchanged prints -1"
    );
}

#[test]
fn capset_args_are_hex_masks_as_tetragon_prints_kernel_cap_t() {
    let ev = Event {
        syscall: "capset".into(),
        arg0: (1 << 13) | 0b11,
        arg1: 1 << 13,
        arg2: 0,
        ..Event::default()
    };
    let v = output::tetragon(&ev);
    let args = &v["process_kprobe"]["args"];
    assert_eq!(args[0]["cap_effective_arg"], "0000000000002003");
    assert_eq!(args[1]["cap_permitted_arg"], "0000000000002000");
    assert_eq!(args[2]["cap_inheritable_arg"], "0000000000000000");
}

#[test]
fn securebits_are_tetragon_enum_names_and_big_args_int64_strings() {
    let mut ev = Event {
        syscall: "io_uring_submit".into(),
        arg0: 18,
        arg1: 0x1_0000_5eed,
        old_securebits: 0x13,
        ..Event::default()
    };
    ev.ret = 0;
    let v = output::tetragon(&ev);
    // The request hook is a tracepoint: its fields user_data (u64) and
    // opcode, in the format's order.
    let t = &v["process_tracepoint"];
    assert_eq!(
        t["process"]["process_credentials"]["securebits"],
        serde_json::json!(["SecBitNoRoot", "SecBitNoRootLocked", "SecBitKeepCaps"])
    );
    assert_eq!(
        (&t["subsys"], &t["event"]),
        (&"io_uring".into(), &"io_uring_submit_req".into())
    );
    assert_eq!(t["args"][0]["size_arg"], "4294991597");
    assert_eq!(t["args"][1]["int_arg"], 18);
    assert_eq!(t["policy_name"], "credtrail-credentials");
    assert_eq!(t["action"], "KPROBE_ACTION_POST");
    assert!(v.get("process_kprobe").is_none() && t.get("return").is_none());
    // A call's argument beyond int32 is an int64 string.
    let ev = Event {
        syscall: "prctl".into(),
        arg0: 47,
        arg1: 0x1_0000_5eed,
        ..Event::default()
    };
    let k = &output::tetragon(&ev)["process_kprobe"];
    assert_eq!(k["args"][0]["int_arg"], 47);
    assert_eq!(k["args"][1]["long_arg"], "4294991597");
    assert_eq!(k["return_action"], "KPROBE_ACTION_POST");
}
