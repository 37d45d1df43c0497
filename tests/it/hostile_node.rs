//! A hostile user on the node and hostile captures, each attack as it was
//! made against the real binaries: a re-exec loop, a forged lifecycle
//! table, folders made by another user and a faked running recorder,
//! segments that claim millions of rows, a query bigger than the memory
//! budget, devices and FIFOs as policies, hidden characters in every output
//! format, counters no recorder could write.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use credtrail_capture::fs::Dir;
use credtrail_capture::manifest::{CaptureState, Manifest};
use credtrail_capture::model::{Event, ProcEvent};
use credtrail_capture::{CaptureWriter, Rotation};
use credtrail_testkit::samples::{end, event, manifest};
use credtrail_testkit::{
    Recorder, bpf_available, edit_manifest, fixture, one_error_line, output_in_memory_cgroup,
    query_bin, record_bin, replay_bin, serial, shared_bin, workload_bin,
};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

/// `credtrail-record status ROOT` while `lock` holds its flock (then
/// ended): it must not report a recorder.
#[track_caller]
fn status_while_locked(lock: &mut std::process::Child, root: &std::path::Path) -> Output {
    std::thread::sleep(Duration::from_millis(300));
    let o = run(record_bin(), &["status", root.to_str().unwrap()]);
    let _ = lock.kill();
    let _ = lock.wait();
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    o
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cmd` as uid and gid 65534, from `/` (a checkout may be private).
fn as_nobody(cmd: &mut Command) -> &mut Command {
    cmd.uid(65534).gid(65534).current_dir("/")
}

/// A hash-chained capture in this build's format (`replay --out`).
fn current(fx: &str, root: &Path) -> PathBuf {
    let out = root.join(fx);
    ok(&run(
        replay_bin(),
        &[
            fixture(fx).to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    out
}

/// Replaces the file of the first segment of `table` with `bytes` and
/// lists it as an attacker would: size, sha256 and rows to match, and the
/// chain linked again, so that only the readers' own bounds stand.
fn plant(dir: &Path, table: &str, bytes: &[u8], rows: u64) {
    let mut m = Manifest::read(dir).unwrap();
    let seg = m.segments.iter_mut().find(|s| s.table == table).unwrap();
    std::fs::write(dir.join(&seg.file), bytes).unwrap();
    let (len, sha) = credtrail_capture::hash_open_file(
        &dir.join(&seg.file),
        std::fs::File::open(dir.join(&seg.file)).unwrap(),
    )
    .unwrap();
    (seg.bytes, seg.sha256, seg.rows) = (len, sha, rows);
    for s in &mut m.segments {
        s.chain = None;
    }
    m.write(&Dir::open(dir).unwrap(), None).unwrap();
}

/// `batch`'s first row repeated: `groups` row groups of `rows` rows.
fn repeated(batch: &arrow::record_batch::RecordBatch, groups: usize, rows: usize) -> Vec<u8> {
    use arrow::array::UInt32Array;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let step = 65_536.min(rows);
    let chunk =
        arrow::compute::take_record_batch(batch, &UInt32Array::from(vec![0u32; step])).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
        .set_max_row_group_row_count(Some(rows))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
    for _ in 0..groups {
        for _ in 0..rows / step {
            w.write(&chunk).unwrap();
        }
        w.flush().unwrap();
    }
    w.into_inner().unwrap()
}

#[test]
fn a_reexec_loop_by_any_user_leaves_the_recorder_and_every_reader_standing() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(false, &[]);
    // As nobody: one process replacing itself 25,000 times.
    let o = as_nobody(Command::new(shared_bin(workload_bin())).args(["reexec", "--left", "25000"]))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&ok(&o).into_bytes()).unwrap();
    let pid = report["pid"].as_u64().unwrap() as u32;
    assert!(
        rec.child.id() > 0 && std::fs::metadata(format!("/proc/{}", rec.child.id())).is_ok(),
        "the recorder survived the loop"
    );
    let (_, _, cap, _tmp) = rec.stop();
    assert_eq!(cap.manifest.state, CaptureState::Sealed);
    let execs: Vec<ProcEvent> = cap
        .read::<ProcEvent>()
        .unwrap()
        .into_iter()
        .filter(|p| p.pid == pid && p.kind == "exec")
        .collect();
    assert!(execs.len() >= 25_000, "{} execs recorded", execs.len());
    let last = execs.last().unwrap();
    let exec_id =
        credtrail_pipeline::enrich::exec_id(&cap.manifest.node_name, last.ktime_ns, last.pid);
    let d = cap.dir.to_str().unwrap();
    let tree = ok(&run(query_bin(), &[d, "tree", &exec_id, "--format", "csv"]));
    assert!(tree.contains("more ancestors, not kept"), "{tree}");
    assert!(tree.lines().count() < 40, "a bounded ancestry: {tree}");
    ok(&run(replay_bin(), &["--verify", d]));
    ok(&run(replay_bin(), &[d, "--print", "compact"]));
    ok(&run(query_bin(), &[d, "unexplained"]));
    let page = cap.dir.with_extension("html");
    ok(&run(
        query_bin(),
        &[d, "report", "--out", page.to_str().unwrap()],
    ));
}

#[test]
fn a_forged_lifecycle_of_500000_execs_is_read_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("forged");
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    for i in 0..500_000u64 {
        w.push_lifecycle(&ProcEvent {
            kind: "exec".into(),
            pid: 4242,
            tid: 4242,
            ppid: 1,
            ktime_ns: 100 + i,
            seq: i + 1,
            node_name: "node-a".into(),
            filename: "/proc/self/exe".into(),
            args: vec!["x".into()],
            cwd: "/".into(),
            ..ProcEvent::default()
        })
        .unwrap();
    }
    // A raise at the end, so that the report draws the process's tree.
    let mut e: Event = event(0);
    (e.ktime_ns, e.seq, e.syscall, e.ret) = (600_000, 600_000, "setuid".into(), 0);
    (e.arg0, e.new_euid, e.old_euid) = (0, 0, 1000);
    w.push(&e).unwrap();
    w.finish(end()).unwrap();
    let d = dir.to_str().unwrap();
    let page = tmp.path().join("report.html");
    let exec_id = credtrail_pipeline::enrich::exec_id("node-a", 500_099, 4242);
    for args in [
        vec![replay_bin(), d, "--print", "compact"],
        vec![replay_bin(), "--verify", d],
        vec![query_bin(), d, "unexplained"],
        vec![query_bin(), d, "tree", &exec_id],
        vec![query_bin(), d, "report", "--out", page.to_str().unwrap()],
    ] {
        // Within 1 GiB, never killed; --verify says the forged event's
        // enrichment is not what the lifecycle makes (exit 1), and that is
        // all it says.
        let (o, _) = output_in_memory_cgroup(Command::new(args[0]).args(&args[1..]), 1 << 30);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.signal(), None, "{args:?} was killed: {err}");
        if args[1] == "--verify" {
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(err.contains("stored enrichment differs"), "{err}");
        } else {
            ok(&o);
        }
    }
}

/// A folder made by nobody, mode `mode`, under a sticky world-writable one
/// (as /tmp is).
fn foreign(root: &Path, name: &str, mode: u32) -> PathBuf {
    let p = root.join(name);
    let st = as_nobody(Command::new("mkdir").arg(&p)).status().unwrap();
    assert!(st.success());
    let st = as_nobody(Command::new("chmod").arg(format!("{mode:o}")).arg(&p))
        .status()
        .unwrap();
    assert!(st.success());
    p
}

fn sticky_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    t
}

#[test]
fn folders_another_user_made_are_refused_and_a_faked_recorder_is_not_running() {
    // A cut into another user's node folder: refused, nothing written.
    let src = tempfile::tempdir().unwrap();
    let running = current("su-like", src.path());
    let root = sticky_root();
    let node = foreign(root.path(), "node=x", 0o777);
    let line = one_error_line(&run(
        record_bin(),
        &[
            "cut",
            running.to_str().unwrap(),
            node.join("incident").to_str().unwrap(),
        ],
    ));
    assert!(line.contains("owned by uid 65534"), "{line}");
    assert_eq!(std::fs::read_dir(&node).unwrap().count(), 0);

    // status over a fake: a manifest in state `recording`, its folder
    // locked by nobody's process.
    let root = sticky_root();
    let node = foreign(root.path(), "node=n1", 0o755);
    let fake = node.join("20261206T000000Z");
    let st = Command::new("cp")
        .arg("-r")
        .arg(&running)
        .arg(&fake)
        .status()
        .unwrap();
    assert!(st.success());
    edit_manifest(&fake, |v| v["state"] = "recording".into());
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&fake)
        .status()
        .unwrap();
    assert!(st.success());
    let mut lock = as_nobody(Command::new("flock").arg(&fake).args(["sleep", "60"]))
        .spawn()
        .unwrap();
    let o = status_while_locked(&mut lock, root.path());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("running on"));

    // Ours and private, in state `recording`, with a `.recorder` naming a
    // live process (pid 1, its real start time), and its lock held by
    // another: the lock holder is not the pid named, so not running.
    let root = tempfile::tempdir().unwrap();
    let cap = root.path().join("node=n1/20261206T000000Z");
    std::fs::create_dir_all(cap.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-r")
        .arg(&running)
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(&cap, std::fs::Permissions::from_mode(0o700)).unwrap();
    edit_manifest(&cap, |v| v["state"] = "recording".into());
    let start = credtrail_capture::host::process_start_ticks(1).unwrap();
    std::fs::write(
        cap.join(".recorder"),
        format!("1 {start} {}\n", credtrail_capture::host::boot_id()),
    )
    .unwrap();
    let mut lock = Command::new("flock")
        .arg(&cap)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let o = status_while_locked(&mut lock, root.path());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no recorder on"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // The recorder into another user's node folder, or ours left open.
    let root = sticky_root();
    foreign(root.path(), "node=n1", 0o777);
    let r = root.path().to_str().unwrap();
    let line = one_error_line(&run(
        record_bin(),
        &["--out-root", r, "--node-name", "n1", "--duration", "1"],
    ));
    assert!(line.contains("owned by uid 65534"), "{line}");
    let open = root.path().join("node=n2");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = one_error_line(&run(
        record_bin(),
        &["--out-root", r, "--node-name", "n2", "--duration", "1"],
    ));
    assert!(line.contains("writable by nobody else"), "{line}");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}

#[test]
fn segments_that_claim_millions_of_rows_are_refused_before_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    // A `captures` segment of 4 row groups x 1,048,576 rows, listed to
    // match: --verify refuses it, and never prints OK.
    let dir = current("su-like", tmp.path());
    let m = Manifest::read(&dir).unwrap();
    let row = credtrail_capture::status::CaptureRow::of(&m, 0, true);
    let bomb = repeated(&row.to_batch(), 4, 1 << 20);
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    plant(&dir, "captures", &bomb, 4 << 20);
    let (o, _) = output_in_memory_cgroup(
        Command::new(replay_bin()).args(["--verify", dir.to_str().unwrap()]),
        512 << 20,
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("OK"));
    let line = one_error_line(&o);
    assert!(line.contains("row groups (at most 1)"), "{line}");

    // An events segment of 20 row groups x 16,000 rows of 16 KB arguments
    // (5 GB decoded, 1.6 MB stored), listed to match: each chunk is within
    // its bound, so the query reads it, and stops at its memory budget
    // with one line.
    let dir = current("su-like", &tmp.path().join("b"));
    let seg = Manifest::read(&dir)
        .unwrap()
        .segments_of("events")
        .next()
        .unwrap()
        .file
        .clone();
    let file = std::fs::File::open(dir.join(&seg)).unwrap();
    let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batch = reader.next().unwrap().unwrap().slice(0, 1);
    let idx = batch.schema().index_of("arguments").unwrap();
    let mut columns = batch.columns().to_vec();
    let long = arrow::array::StringArray::from(vec!["a".repeat(16_000)]);
    columns[idx] = arrow::compute::cast(&long, batch.column(idx).data_type()).unwrap();
    let batch = arrow::record_batch::RecordBatch::try_new(batch.schema(), columns).unwrap();
    let bomb = repeated(&batch, 20, 16_000);
    plant(&dir, "events", &bomb, 20 * 16_000);
    // In a 1.5 GiB cgroup: the budget, not the kernel, ends it.
    let (o, _) = output_in_memory_cgroup(
        Command::new(query_bin()).args([
            dir.to_str().unwrap(),
            "--memory-limit",
            "1G",
            "--sql",
            "SELECT arguments FROM events",
            "--format",
            "csv",
        ]),
        3 << 29,
    );
    let line = one_error_line(&o);
    assert!(
        line.contains("budget of 1.0 GiB") && line.contains("--memory-limit"),
        "{line}"
    );
}

#[test]
fn policies_are_read_bounded_and_only_from_regular_files() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("policy.fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let fx = fixture("su-like");
    for policy in [Path::new("/dev/zero"), fifo.as_path()] {
        let mut child = Command::new(replay_bin())
            .arg(&fx)
            .arg("--policy")
            .arg(policy)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{}: still reading after 20 s", policy.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let line = one_error_line(&child.wait_with_output().unwrap());
        assert!(line.contains("not a regular file"), "{line}");
    }
}

/// The bytes that act on a terminal or hide text: ESC, BEL, C1, bidi
/// controls and zero-width characters.
fn assert_nothing_hidden(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad = text
        .chars()
        .find(|c| *c == '\u{1b}' || *c == '\u{7}' || credtrail_cli::term::hidden(*c));
    assert_eq!(bad, None, "{what}: {text:?}");
}

#[test]
fn every_output_format_shows_what_hides_and_keeps_data_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("evil");
    let name = "\u{1b}]0;T\u{7}/usr/bin/su\u{200b}do\u{202e}";
    let mut w = CaptureWriter::create(&dir, manifest(), Rotation::default()).unwrap();
    let mut e = event(0);
    e.binary = Some(name.into());
    w.push(&e).unwrap();
    w.finish(end()).unwrap();
    let d = dir.to_str().unwrap();
    let sql = "SELECT binary FROM events";
    for format in ["csv", "json", "ndjson", "table"] {
        let o = Command::new(query_bin())
            .args([d, "--sql", sql, "--format", format])
            .env("COLUMNS", "2000")
            .output()
            .unwrap();
        let out = ok(&o);
        assert_nothing_hidden(format, out.as_bytes());
        match format {
            "json" | "ndjson" => {
                let first = if format == "json" {
                    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
                } else {
                    serde_json::from_str(out.lines().next().unwrap()).unwrap()
                };
                assert_eq!(first["binary"], name, "{format}: the data stays exact");
            }
            _ => assert!(out.contains("su\\u{200b}do\\u{202e}"), "{format}: {out}"),
        }
    }
}

#[test]
fn counters_no_recorder_could_write_are_reported_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = current("su-like", tmp.path());
    edit_manifest(&dir, |v| v["counters"]["ringbuf_full"] = u64::MAX.into());
    let d = dir.to_str().unwrap();
    let o = run(query_bin(), &[d, "summary"]);
    assert_ne!(o.status.code(), Some(101), "no panic");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("counters are corrupt"), "{err}");
    let o = run(replay_bin(), &["--verify", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("counters are corrupt"));
    let o = run(record_bin(), &["inspect", d]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("CORRUPT"));
}

#[test]
fn a_flight_captures_evictions_are_named_by_keep() {
    use credtrail_capture::Retention;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flight");
    let mut w = CaptureWriter::create_with(
        &dir,
        manifest(),
        Rotation::default(),
        Retention {
            keep: Some(Duration::from_nanos(1)),
            ..Retention::default()
        },
        None,
    )
    .unwrap();
    for round in 0..4u64 {
        w.push(&event(round)).unwrap();
        if w.seal_now().unwrap() {
            w.write_processes(&[]).unwrap();
        }
    }
    let m = w.finish(end()).unwrap();
    assert!(
        m.segments
            .iter()
            .any(|s| s.evicted && s.table == "captures"),
        "a set's captures row goes with its set"
    );
    let o = run(replay_bin(), &["--verify", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("evicted by --keep"), "{err}");
}
