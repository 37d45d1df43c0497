//! Capture format: written, read, sealed, recovered, signed; no root.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use credtrail_capture::CaptureError;
use credtrail_capture::fs::Dir;
use credtrail_capture::manifest::{CaptureState, Discarded, FORMAT_VERSION, Manifest};
use credtrail_capture::model::{Event, ProcessRow};
use credtrail_capture::{self as capture, Capture, CaptureWriter, Rotation, Table};
use credtrail_testkit::samples::{end, event, manifest};

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
    // What Spark and other Java engines read with default settings: no
    // unsigned integers, microsecond timestamps, `time`'s nanoseconds kept.
    assert_eq!(ty("time"), "Timestamp(µs, \"UTC\")");
    assert_eq!(ty("time_ns"), "Int64");
    assert_eq!(ty("ktime_ns"), "Int64");
    assert_eq!(ty("arg1"), "Int64");
    assert_eq!(ty("old_uid"), "Int64");
    assert_eq!(ty("old_cap_effective"), "Int64");
    assert_eq!(ty("changed"), "Boolean");
    assert_eq!(ty("syscall"), "Utf8");
    assert_eq!(ty("start_time"), "Timestamp(µs, \"UTC\")");
    assert_eq!(ty("container_start_time"), "Timestamp(µs, \"UTC\")");
    assert!(schema.field_with_name("start_time").unwrap().is_nullable());
    assert!(
        ty("groups").starts_with("List(non-null Int64"),
        "{}",
        ty("groups")
    );
    for f in schema.fields() {
        let t = f.data_type().to_string();
        assert!(!t.contains("UInt") && !t.contains("ns"), "{f:?}");
    }
    let meta = builder.metadata().file_metadata();
    let kv = meta.key_value_metadata().unwrap();
    assert!(kv.iter().any(|k| k.key == "credtrail.format_version"
        && k.value.as_deref() == Some(FORMAT_VERSION.to_string().as_str())));
    let compression = builder.metadata().row_group(0).column(0).compression();
    assert!(
        format!("{compression:?}").starts_with("ZSTD"),
        "{compression:?}"
    );
    // Column order is the struct's, and equals the JSON keys (where `time`
    // has its nanoseconds: the file's `time_ns`, right after `time`).
    assert_eq!(schema.fields()[1].name(), "time_ns");
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "time_ns")
        .collect();
    assert_eq!(
        names,
        Event::fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    );
}

#[test]
fn manifest_round_trips_and_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = manifest();
    m.write(&Dir::open(tmp.path()).unwrap(), None).unwrap();
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
        text.contains("version 99") && text.contains(&format!("versions 1 to {FORMAT_VERSION}")),
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
        let part: Vec<Event> =
            capture::decode_segment(&path, std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(part.len() as u64, seg.rows);
        let (bytes, sha) =
            capture::hash_open_file(&path, std::fs::File::open(&path).unwrap()).unwrap();
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

/// Pushes events `from..to` to `w`.
fn push_events(w: &mut CaptureWriter, from: u64, to: u64) -> Vec<Event> {
    (from..to)
        .map(|i| {
            let e = event(i);
            w.push(&e).unwrap();
            e
        })
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_killed_writer_is_recovered_up_to_its_last_checkpoint() {
    // Durable checkpoints (the default) and `--no-fsync` ones recover alike.
    for no_fsync in [false, true] {
        killed_writer_is_recovered(no_fsync);
    }
}

fn killed_writer_is_recovered(no_fsync: bool) {
    use credtrail_capture::Retention;
    use credtrail_capture::recover::recover;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let retention = Retention {
        no_fsync,
        ..Retention::default()
    };
    let mut w =
        CaptureWriter::create_with(&dir, manifest(), Rotation::default(), retention, None).unwrap();
    let durable = push_events(&mut w, 0, 300);
    std::thread::sleep(capture::FLUSH_INTERVAL);
    w.tick().unwrap();
    // After the checkpoint: never flushed, so lost with the process.
    push_events(&mut w, 300, 400);
    // While the writer lives, recovery keeps its hands off.
    let busy = recover(&dir, None).unwrap_err().to_string();
    assert!(busy.contains("locked by a running recorder"), "{busy}");
    drop(w); // the crash: no seal, no footer, no final manifest
    // A half-written row group past the checkpoint, as a crash leaves it.
    let open = dir.join("events/part-00000.parquet.open");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&open)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 777]).unwrap();
    drop(f);
    assert!(dir.join("events/part-00000.parquet.open.ckpt").exists());

    let r = recover(&dir, None).unwrap();
    assert!(r.changed && r.problems.is_empty(), "{:?}", r.problems);
    let m = &r.manifest;
    assert_eq!(m.state, CaptureState::Recovered);
    assert_eq!(
        m.settings.get("no_fsync"),
        no_fsync.then_some(&serde_json::Value::Bool(true))
    );
    let rec = m.recovery.as_ref().unwrap();
    assert_eq!(rec.segments, ["events/part-00000.parquet"]);
    assert_eq!(rec.rows, 300);
    assert!(rec.last_checkpoint_ktime_ns > 0);
    assert_eq!(m.counters.events_written, 300);
    assert!(m.check_chain().is_empty(), "{:?}", m.check_chain());
    let cap = Capture::open(&dir).unwrap();
    assert_eq!(cap.events().unwrap(), durable);
    assert!(cap.manifest.segments[0].recovered);
    // Nothing open or checkpointed is left; a second run changes nothing.
    assert_eq!(names_in(&dir.join("events")), ["part-00000.parquet"]);
    assert!(!recover(&dir, None).unwrap().changed);
}

/// After a power cut the live checkpoint (page cache, not synced) may be on
/// disk while the data it covers is not: recovery falls back to the durable
/// checkpoint, whose data was synced before it was written.
#[test]
fn a_live_checkpoint_whose_data_is_gone_falls_back_to_the_durable_one() {
    use credtrail_capture::recover::recover;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    let first = push_events(&mut w, 0, 200);
    std::thread::sleep(capture::FLUSH_INTERVAL);
    w.tick().unwrap();
    let events = dir.join("events");
    let open = events.join("part-00000.parquet.open");
    // The syncer wrote the durable copy once the data was synced.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !events.join("part-00000.parquet.open.ckpt").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no durable checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let synced = std::fs::metadata(&open).unwrap().len();
    let durable = std::fs::read(events.join("part-00000.parquet.open.ckpt")).unwrap();
    push_events(&mut w, 200, 300);
    std::thread::sleep(capture::FLUSH_INTERVAL);
    w.tick().unwrap();
    drop(w);
    // As a power cut leaves it: the live checkpoint of the second flush,
    // the durable one of the first, and the data of the first only.
    std::fs::write(events.join("part-00000.parquet.open.ckpt"), &durable).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&open).unwrap();
    f.set_len(synced).unwrap();
    drop(f);
    let live = std::fs::read(events.join("part-00000.parquet.open.ckpt.live")).unwrap();
    assert_ne!(live, durable, "the live checkpoint covers the second flush");

    let r = recover(&dir, None).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.manifest.recovery.as_ref().unwrap().rows, 200);
    assert_eq!(Capture::open(&dir).unwrap().events().unwrap(), first);
    assert_eq!(names_in(&events), ["part-00000.parquet"]);
}

#[test]
fn a_corrupt_checkpoint_sets_the_segment_aside_without_panicking() {
    use credtrail_capture::recover::recover;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    push_events(&mut w, 0, 50);
    std::thread::sleep(capture::FLUSH_INTERVAL);
    w.tick().unwrap();
    drop(w);
    // Both copies, the live one and the durable one.
    let mut bytes = Vec::new();
    for name in [
        "part-00000.parquet.open.ckpt",
        "part-00000.parquet.open.ckpt.live",
    ] {
        let ck = dir.join("events").join(name);
        bytes = std::fs::read(&ck).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&ck, &bytes).unwrap();
    }
    let r = recover(&dir, None).unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(
        r.problems[0].contains("checksum mismatch"),
        "{:?}",
        r.problems
    );
    let rec = r.manifest.recovery.as_ref().unwrap();
    assert_eq!(rec.rows, 0);
    // The 50 rows the manifest had counted are accounted for as lost.
    let [Discarded::Segment(d)] = &rec.discarded[..] else {
        panic!("{:?}", rec.discarded)
    };
    assert_eq!(
        (
            d.file.as_str(),
            d.table.as_str(),
            d.rows_at_least,
            d.held_data
        ),
        ("events/part-00000.parquet.discarded", "events", 50, true)
    );
    assert!(d.reason.contains("checksum mismatch"), "{}", d.reason);
    assert_eq!(rec.events_lost_at_least, 50);
    assert_eq!(r.manifest.counters.events_written, 0);
    // The bytes are kept, under a name no reader picks up; the table reads
    // as empty from a new empty segment.
    assert_eq!(
        names_in(&dir.join("events")),
        ["part-00000.parquet.discarded", "part-00001.parquet"]
    );
    assert!(r.manifest.check_chain().is_empty());
    // Every checkpoint byte string decodes or errors, never panics.
    use credtrail_capture::checkpoint::Checkpoint;
    for n in 0..bytes.len().min(200) {
        let _ = Checkpoint::decode(&bytes[..n]);
    }
}

/// Killed before the first checkpoint: the open segment is an empty file,
/// set aside as such (no problem, nothing lost), and every table is listed
/// afterwards, empty, so that every reader takes the capture.
#[test]
fn a_segment_killed_before_its_first_flush_is_set_aside_as_empty() {
    use credtrail_capture::recover::recover;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    push_events(&mut w, 0, 10);
    drop(w);
    let r = recover(&dir, None).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let rec = r.manifest.recovery.as_ref().unwrap();
    let [Discarded::Segment(d)] = &rec.discarded[..] else {
        panic!("{:?}", rec.discarded)
    };
    assert_eq!((d.rows_at_least, d.held_data), (0, false), "{d:?}");
    assert_eq!(rec.events_lost_at_least, 0);
    for table in capture::TABLES {
        assert_eq!(
            r.manifest.segments_of(table).count(),
            1,
            "{table}: {:?}",
            r.manifest.segments
        );
    }
    assert!(r.manifest.check_chain().is_empty());
    let cap = Capture::open(&dir).unwrap();
    assert!(cap.events().unwrap().is_empty());
    assert!(cap.lifecycle().unwrap().is_empty());
    // The empty segment takes the next free number, beside the one set aside.
    assert_eq!(
        names_in(&dir.join("events")),
        ["part-00000.parquet.discarded", "part-00001.parquet"]
    );
}

#[test]
fn the_hash_chain_detects_edited_removed_and_reordered_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let rotation = Rotation {
        max_age: Duration::from_secs(3600),
        max_bytes: 4096,
    };
    let mut w = CaptureWriter::create(&dir, manifest(), rotation).unwrap();
    for round in 0..3 {
        push_events(&mut w, round * 1000, round * 1000 + 300);
        std::thread::sleep(capture::FLUSH_INTERVAL);
        w.tick().unwrap();
    }
    let m = w.finish(end()).unwrap();
    assert!(m.segments.len() >= 4, "{:?}", m.segments);
    assert!(m.check_chain().is_empty());
    assert!(m.segments.iter().all(|s| s.chain.is_some()));

    let broken = |edit: &dyn Fn(&mut Manifest)| {
        let mut t = m.clone();
        edit(&mut t);
        t.check_chain()
    };
    let p = broken(&|t| t.segments[1].rows += 1);
    assert!(p[0].contains("hash chain broken"), "{p:?}");
    assert!(
        !broken(&|t| {
            t.segments.remove(1);
        })
        .is_empty()
    );
    assert!(!broken(&|t| t.segments.swap(1, 2)).is_empty());
    assert!(!broken(&|t| t.node_name = "elsewhere".into()).is_empty());
    let p = broken(&|t| t.counters.ringbuf_full = 7);
    assert!(p[0].contains("chain head differs"), "{p:?}");
    assert!(!broken(&|t| t.state = CaptureState::Recovered).is_empty());
    // Lowering the version to format 1 (which has no chain) is seen; a
    // genuine format-1 manifest, without links, has no chain to check.
    let p = broken(&|t| t.format_version = 1);
    assert!(p[0].contains("version was lowered"), "{p:?}");
    assert!(
        broken(&|t| {
            t.format_version = 1;
            t.chain_head = None;
            t.segments.iter_mut().for_each(|s| s.chain = None);
        })
        .is_empty()
    );
}

#[test]
fn max_capture_bytes_keeps_the_newest_segments_and_counts_the_rest() {
    use credtrail_capture::Retention;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let budget = 96 << 10;
    let mut w = CaptureWriter::create_with(
        &dir,
        manifest(),
        Rotation::default(),
        Retention {
            max_capture_bytes: Some(budget),
            ..Retention::default()
        },
        None,
    )
    .unwrap();
    let mut all = Vec::new();
    for round in 0..12u64 {
        all.extend(push_events(&mut w, round * 10_000, round * 10_000 + 3000));
        std::thread::sleep(capture::FLUSH_INTERVAL);
        if w.tick().unwrap() {
            w.write_processes(&[]).unwrap();
        }
    }
    let m = w.finish(end()).unwrap();
    let evicted: Vec<_> = m.segments.iter().filter(|s| s.evicted).collect();
    assert!(!evicted.is_empty(), "{:?}", m.segments);
    for s in &evicted {
        assert!(!dir.join(&s.file).exists(), "{} still on disk", s.file);
    }
    let evicted_rows: u64 = evicted
        .iter()
        .filter(|s| s.table == "events")
        .map(|s| s.rows)
        .sum();
    assert_eq!(m.counters.events_evicted, evicted_rows);
    assert_eq!(m.counters.events_written, all.len() as u64);
    let on_disk = m.kept_bytes();
    assert!(on_disk <= budget, "{on_disk} bytes kept, budget {budget}");
    assert_eq!(m.settings["max_capture_bytes"], budget);
    assert!(m.check_chain().is_empty());
    // What is left is the newest events, complete and in order.
    let kept = Capture::open(&dir).unwrap().events().unwrap();
    assert_eq!(kept.len() as u64, all.len() as u64 - evicted_rows);
    assert_eq!(kept[..], all[all.len() - kept.len()..]);
}

#[test]
fn manifests_are_signed_with_an_openssl_ed25519_key() {
    use credtrail_capture::sign;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key.pem");
    let pubkey = tmp.path().join("pub.pem");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key));
    ok(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pubkey));
    let dir = tmp.path().join("cap");
    let signing = sign::load_signing_key(&key).unwrap();
    let mut w = CaptureWriter::create_with(
        &dir,
        manifest(),
        Rotation::default(),
        Default::default(),
        Some(signing),
    )
    .unwrap();
    push_events(&mut w, 0, 10);
    w.finish(end()).unwrap();
    let verifying = sign::load_verifying_key(&pubkey).unwrap();
    sign::verify_manifest_signature(&Dir::open(&dir).unwrap(), &verifying).unwrap();
    // OpenSSL agrees: the signature is plain ed25519 over the file's bytes.
    ok(Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(&pubkey)
        .arg("-in")
        .arg(dir.join("manifest.json"))
        .arg("-sigfile")
        .arg(dir.join("manifest.json.sig")));
    // One changed byte in the manifest and the signature fails.
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("node-a", "node-b", 1)).unwrap();
    let e = sign::verify_manifest_signature(&Dir::open(&dir).unwrap(), &verifying).unwrap_err();
    assert!(e.contains("signature does not match"), "{e}");
    // Keys that are not ed25519 PEM are refused with the fix.
    let e = sign::load_signing_key(&pubkey).unwrap_err().to_string();
    assert!(e.contains("openssl genpkey -algorithm ed25519"), "{e}");
}

/// A capture kept within 96 KiB through 80 sets of 500 events, so that
/// its evicted records fold; `first` is written before them (metadata,
/// never evicted). Returns its manifest and every event pushed.
fn folded_capture(dir: &Path, first: impl FnOnce(&mut CaptureWriter)) -> (Manifest, Vec<Event>) {
    use credtrail_capture::Retention;
    let mut w = CaptureWriter::create_with(
        dir,
        manifest(),
        Rotation::default(),
        Retention {
            max_capture_bytes: Some(96 << 10),
            ..Retention::default()
        },
        None,
    )
    .unwrap();
    first(&mut w);
    let mut all = Vec::new();
    for round in 0..80u64 {
        all.extend(push_events(&mut w, round * 1000, round * 1000 + 500));
        if w.seal_now().unwrap() {
            w.write_processes(&[]).unwrap();
        }
    }
    (w.finish(end()).unwrap(), all)
}

#[test]
fn a_flight_recorders_evicted_records_fold_and_the_chain_still_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cap");
    let (m, all) = folded_capture(&dir, |_| {});
    let (records, evicted) = m.record_counts();
    assert!(
        m.segments.iter().any(|s| s.folded.is_some()),
        "{} records, {evicted} evicted",
        records
    );
    assert!(
        (m.segments.len() as u64) < records / 2,
        "{} records listed for {records}",
        m.segments.len()
    );
    assert!(m.check_chain().is_empty(), "{:?}", m.check_chain());
    assert_eq!(m.recomputed_head(), m.chain_head);
    assert_eq!(m.counters.events_written, all.len() as u64);
    assert_eq!(m.rows_in("events"), all.len() as u64);
    let kept = Capture::open(&dir).unwrap().events().unwrap();
    assert_eq!(
        kept.len() as u64,
        all.len() as u64 - m.counters.events_evicted
    );
    assert_eq!(kept[..], all[all.len() - kept.len()..]);
    // A fold's counts are part of the head: editing one is seen.
    let mut edited = m.clone();
    let stub = edited
        .segments
        .iter_mut()
        .find(|s| s.folded.is_some())
        .unwrap();
    *stub
        .folded
        .as_mut()
        .unwrap()
        .rows
        .entry("events".into())
        .or_default() += 1;
    assert!(!edited.check_chain().is_empty());
}

/// A flight capture whose first record is live metadata (a user namespace,
/// never evicted) followed by folded evictions: editing any record in turn,
/// as an attacker would (its sha256 changed and its own link recomputed, or
/// a fold's fields), changes the recomputed head, and so does re-linking
/// every later record and fold as well.
#[test]
fn editing_any_record_of_a_folded_capture_changes_the_head() {
    use credtrail_capture::model::userns::UsernsRow;
    let tmp = tempfile::tempdir().unwrap();
    let (m, _) = folded_capture(&tmp.path().join("cap"), |w| {
        w.push_user_namespace(&UsernsRow {
            userns: 4026532999,
            level: 1,
            ..Default::default()
        })
        .unwrap();
    });
    let head = m.recomputed_head().expect("an intact chain");
    assert_eq!(Some(&head), m.chain_head.as_ref());
    let first_fold = m.segments.iter().position(|s| s.folded.is_some()).unwrap();
    assert!(
        m.segments[..first_fold]
            .iter()
            .any(|s| s.table == "user_namespaces"),
        "a live record precedes the folds"
    );
    // Folded again and again as evictions go on: one stub, its runs merged.
    let (records, _) = m.record_counts();
    assert!(records > m.segments.len() as u64 + 64, "{records} records");

    // The link before record i, as a verifier computes it.
    let link_before = |m: &Manifest, i: usize| match i {
        0 => m.genesis(),
        _ => m.segments[i - 1].chain.clone().unwrap(),
    };
    for i in 0..m.segments.len() {
        for relink_after in [false, true] {
            let mut e = m.clone();
            if e.segments[i].folded.is_some() {
                e.segments[i].last_ktime_ns += 1;
            } else {
                let prev = link_before(&e, i);
                e.segments[i].sha256 = "0".repeat(64);
                e.segments[i].chain = Some(Manifest::link(&prev, &e.segments[i]));
            }
            if relink_after {
                for j in i + 1..e.segments.len() {
                    let prev = link_before(&e, j);
                    match e.segments[j].folded.as_mut() {
                        Some(f) => f.chain_in = Some(prev),
                        None => {
                            let link = Manifest::link(&prev, &e.segments[j]);
                            e.segments[j].chain = Some(link);
                        }
                    }
                }
            }
            assert_ne!(
                e.recomputed_head().as_ref(),
                Some(&head),
                "record {i} ({}) edited, later ones re-linked: {relink_after}",
                e.segments[i].file
            );
        }
    }
}
