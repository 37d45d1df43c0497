//! Capture format tests: no root, no kernel.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use credtrail_recorder::capture::{self, Capture, CaptureWriter, Rotation, Table};
use credtrail_recorder::error::CaptureError;
use credtrail_recorder::event::Event;
use credtrail_recorder::manifest::{self, CaptureState, Counters, Manifest};
use credtrail_recorder::output::{self, PrintFormat};
use credtrail_recorder::process::ProcessRow;

const RECORD: &str = env!("CARGO_BIN_EXE_credtrail-record");

fn manifest() -> Manifest {
    Manifest {
        format: manifest::FORMAT_NAME.into(),
        format_version: manifest::FORMAT_VERSION,
        credtrail_version: "test".into(),
        state: CaptureState::Recording,
        node_name: "node-a".into(),
        kernel_release: "6.18.0".into(),
        boot_id: "b00t".into(),
        realtime_offset_ns: 1_700_000_000_000_000_000,
        start: manifest::Instant {
            time: "2023-11-14T22:13:20Z".into(),
            ktime_ns: 1,
        },
        end: None,
        hooks: vec!["syscalls/sys_enter_setuid".into()],
        settings: Default::default(),
        counters: Counters::default(),
        segments: vec![],
        error: None,
        recovery: None,
        chain_head: None,
    }
}

/// An event with a distinctive value in every column.
fn event(i: u64) -> Event {
    Event {
        time: 1_700_000_000_000_000_000 + i as i64,
        ktime_ns: 1_000 + i,
        seq: i + 1,
        node_name: "node-a".into(),
        pid: 4242,
        tid: 4243 + i as u32,
        ppid: 1,
        comm: "su".into(),
        syscall: if i % 2 == 0 { "setresuid" } else { "setgroups" }.into(),
        arg0: 1001,
        arg1: -1,
        arg2: i64::MAX,
        groups: (i % 2 == 1).then(|| vec![1, 2, 3]),
        ret: -1,
        changed: true,
        old_uid: 1000,
        old_euid: 1001,
        old_suid: 1002,
        old_fsuid: 1003,
        old_gid: 2000,
        old_egid: 2001,
        old_sgid: 2002,
        old_fsgid: 2003,
        old_cap_effective: u64::MAX,
        old_cap_permitted: 0x1ff_ffff_ffff,
        old_cap_inheritable: 3,
        old_cap_bounding: 4,
        old_cap_ambient: 5,
        old_securebits: 6,
        old_groups: vec![10, 20],
        new_uid: 0,
        new_euid: 1,
        new_suid: 2,
        new_fsuid: 3,
        new_gid: 4,
        new_egid: 5,
        new_sgid: 6,
        new_fsgid: 7,
        new_cap_effective: 8,
        new_cap_permitted: 9,
        new_cap_inheritable: 10,
        new_cap_bounding: 11,
        new_cap_ambient: 12,
        new_securebits: 13,
        new_groups: vec![],
        auid: u32::MAX,
        sessionid: 77,
        cgroup_id: 1 << 40,
        pid_ns: 4026531836,
        ns_pid: 12,
        event_flags: vec!["args_fault".into()],
        exec_id: Some("bm9kZS1hOjE6NDI0Mg==".into()),
        parent_exec_id: Some("bm9kZS1hOjE6MQ==".into()),
        binary: Some("/bin/su".into()),
        arguments: Some("root".into()),
        cwd: Some("/".into()),
        flags: Some("execve rootcwd clone".into()),
        start_time: Some(1_699_999_999_000_000_000),
        process_uid: Some(0),
        parent_pid: Some(1),
        parent_binary: Some("/bin/bash".into()),
        parent_arguments: None,
        parent_cwd: Some("/".into()),
        parent_flags: Some("procFS rootcwd".into()),
        parent_start_time: None,
        parent_parent_exec_id: Some("bm9kZS1hOjE6MA==".into()),
        parent_uid: Some(0),
        parent_auid: Some(u32::MAX),
        container_id: (i % 3 == 0).then(|| "a".repeat(64)),
        container_runtime: Some("containerd".into()),
        container_pid: Some(19),
        parent_container_pid: Some(13),
        pod_namespace: Some("default".into()),
        pod_name: Some("xwing".into()),
        pod_uid: None,
        container_name: Some("spaceship".into()),
        image_name: Some("docker.io/tgraf/netperf:latest".into()),
        image_id: None,
        pod_labels: vec!["class=xwing".into(), "org=alliance".into()],
        container_start_time: None,
    }
}

fn end() -> manifest::Instant {
    manifest::Instant {
        time: "2023-11-14T22:13:21Z".into(),
        ktime_ns: 2,
    }
}

#[test]
fn every_event_column_round_trips_through_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    let events: Vec<Event> = (0..10).map(event).collect();
    for e in &events {
        w.push(e).unwrap();
    }
    let procs = vec![ProcessRow {
        pid: 1,
        cmdline: vec!["/sbin/init".into(), "splash".into()],
        cgroups: vec!["0::/init.scope".into()],
        groups: vec![4, 24],
        cap_effective: u64::MAX,
        ..ProcessRow::default()
    }];
    w.write_processes(&procs).unwrap();
    let m = w.finish(end()).unwrap();
    assert_eq!(m.state, CaptureState::Sealed);
    assert_eq!(m.counters.events_written, 10);

    let cap = Capture::open(&dir).unwrap();
    assert_eq!(cap.manifest, m);
    assert_eq!(cap.events().unwrap(), events);
    assert_eq!(cap.processes().unwrap(), procs);

    // Column types a Parquet reader sees.
    let seg = cap.manifest.segments_of("events").next().unwrap();
    let file = std::fs::File::open(dir.join(&seg.file)).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema();
    let ty = |name: &str| {
        schema
            .field_with_name(name)
            .unwrap()
            .data_type()
            .to_string()
    };
    assert_eq!(ty("time"), "Timestamp(ns, \"UTC\")");
    assert_eq!(ty("ktime_ns"), "UInt64");
    assert_eq!(ty("arg1"), "Int64");
    assert_eq!(ty("old_uid"), "UInt32");
    assert_eq!(ty("old_cap_effective"), "UInt64");
    assert_eq!(ty("changed"), "Boolean");
    assert_eq!(ty("syscall"), "Utf8");
    assert_eq!(ty("start_time"), "Timestamp(ns, \"UTC\")");
    assert!(schema.field_with_name("start_time").unwrap().is_nullable());
    assert!(ty("groups").starts_with("List("), "{}", ty("groups"));
    let meta = builder.metadata().file_metadata();
    let kv = meta.key_value_metadata().unwrap();
    assert!(
        kv.iter()
            .any(|k| k.key == "credtrail.format_version" && k.value.as_deref() == Some("2"))
    );
    let compression = builder.metadata().row_group(0).column(0).compression();
    assert!(
        format!("{compression:?}").starts_with("ZSTD"),
        "{compression:?}"
    );
    // Column order is the struct's, and equals the JSON keys.
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let json: serde_json::Value =
        serde_json::from_str(&String::from_utf8(json_line(&events[0])).unwrap()).unwrap();
    let keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, names);
    assert_eq!(
        names,
        Event::fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    );
}

fn json_line(ev: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    output::print_event(&mut out, PrintFormat::Json, ev).unwrap();
    out
}

#[test]
fn json_line_is_flat_with_rfc3339_time() {
    let line = String::from_utf8(json_line(&event(0))).unwrap();
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["time"], "2023-11-14T22:13:20.000000000Z");
    assert_eq!(v["syscall"], "setresuid");
    assert_eq!(v["arg1"], -1);
    assert_eq!(v["old_cap_effective"], u64::MAX);
    assert_eq!(v["groups"], serde_json::Value::Null);
    assert!(
        v.as_object().unwrap().values().all(|v| !v.is_object()),
        "flat"
    );
}

#[test]
fn compact_line_shows_what_changed_and_the_outcome() {
    let mut e = event(0);
    e.set_new_creds(e.old_creds());
    e.new_uid = 0;
    e.new_euid = 0;
    e.ret = 0;
    e.event_flags.clear();
    let line = output::compact(&e);
    assert_eq!(
        line,
        "22:13:20.000000000 setresuid  pid 4242/4243 (su) /bin/su pod default/xwing/spaceship  setresuid(1001, -1, 9223372036854775807)  uid 1000→0 euid 1001→0  ok"
    );
    e.set_new_creds(e.old_creds());
    e.ret = -1;
    assert!(output::compact(&e).ends_with("(no change)  EPERM"));
}

#[test]
fn manifest_round_trips_and_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = manifest();
    m.write(tmp.path(), None).unwrap();
    assert_eq!(Manifest::read(tmp.path()).unwrap(), m);

    let path = tmp.path().join("manifest.json");
    let err = Manifest::parse(&path, b"{not json").unwrap_err();
    assert!(matches!(err, CaptureError::Manifest { .. }));
    assert!(
        err.to_string()
            .contains("manifest.json is not valid manifest JSON"),
        "{err}"
    );

    let newer = serde_json::json!({"format": "credtrail-capture", "format_version": 99});
    let err = Manifest::parse(&path, newer.to_string().as_bytes()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("version 99") && text.contains("versions 1 to 2"),
        "{text}"
    );

    let foreign = serde_json::json!({"name": "something else"});
    let err = Manifest::parse(&path, foreign.to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
}

#[test]
fn rotation_by_size_produces_complete_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let rotation = Rotation {
        max_age: Duration::from_secs(3600),
        max_bytes: 4096,
    };
    let mut w = CaptureWriter::create(&dir, manifest(), rotation).unwrap();
    let mut all = Vec::new();
    for round in 0..5u64 {
        for i in 0..200 {
            let e = event(round * 1000 + i);
            w.push(&e).unwrap();
            all.push(e);
        }
        // Rows reach the file on the (forced) flush; then size triggers rotation.
        std::thread::sleep(capture::FLUSH_INTERVAL);
        w.tick().unwrap();
    }
    let m = w.finish(end()).unwrap();
    let segs: Vec<_> = m.segments_of("events").collect();
    assert!(segs.len() >= 3, "{segs:?}");
    let mut rows = 0;
    for (i, seg) in segs.iter().enumerate() {
        assert_eq!(seg.file, format!("events/part-{i:05}.parquet"));
        // Each segment reads alone, and its checksum and size match.
        let path = dir.join(&seg.file);
        let part = capture::read_segment::<Event>(&path).unwrap();
        assert_eq!(part.len() as u64, seg.rows);
        let (bytes, sha) = capture::hash_file(&path).unwrap();
        assert_eq!((bytes, sha.as_str()), (seg.bytes, seg.sha256.as_str()));
        assert_eq!(
            seg.first_ktime_ns,
            part.iter().map(|e| e.ktime_ns).min().unwrap()
        );
        rows += part.len();
    }
    assert_eq!(rows, all.len());
    assert_eq!(Capture::open(&dir).unwrap().events().unwrap(), all);
    // No open (unsealed) segment remains.
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".parquet"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_empty_session_still_has_an_events_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    let m = w.finish(end()).unwrap();
    assert_eq!(m.segments_of("events").count(), 1);
    assert!(Capture::open(&dir).unwrap().events().unwrap().is_empty());
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Runs credtrail-record with `--out` and expects one clear error line.
fn record_error(out: &Path) -> String {
    let o = Command::new(RECORD)
        .arg("--out")
        .arg(out)
        .args(["--duration", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_owned()
}

#[test]
fn refuses_bad_output_directories_without_touching_them() {
    let tmp = tempfile::tempdir().unwrap();

    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"keep me").unwrap();
    let err = record_error(&file);
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert!(matches!(
        CaptureWriter::create(&file, manifest(), Rotation::default()),
        Err(CaptureError::NotADirectory { .. })
    ));

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let before = snapshot(&foreign);
    let err = record_error(&foreign);
    assert!(err.contains("not a credtrail capture"), "{err}");
    assert_eq!(snapshot(&foreign), before);

    let existing = tmp.path().join("existing");
    let w = CaptureWriter::create(&existing, manifest(), Rotation::default()).unwrap();
    w.finish(end()).unwrap();
    let before = snapshot(&existing);
    let err = record_error(&existing);
    assert!(err.contains("already holds a credtrail capture"), "{err}");
    assert_eq!(snapshot(&existing), before);

    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&foreign, &link).unwrap();
    let err = record_error(&link);
    assert!(err.contains("symbolic link"), "{err}");

    // Not writable: a path below a regular file can never be created.
    let err = record_error(&file.join("sub"));
    assert!(err.contains("a-file"), "{err}");
}

#[test]
fn inspect_names_the_broken_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    for i in 0..50 {
        w.push(&event(i)).unwrap();
    }
    let m = w.finish(end()).unwrap();
    let seg = dir.join(&m.segments_of("events").next().unwrap().file);
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
    let o = Command::new(RECORD)
        .arg("inspect")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("credtrail-record: error:") && last.contains("part-00000.parquet"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
