//! Hostile captures and hostile processes, each attack exactly as an
//! attacker would make it, against the real binaries: nothing outside the
//! capture is touched, verification cannot be downgraded, no raw escape
//! reaches a terminal, memory stays bounded, and every refusal is one
//! error line with a non-zero exit.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use credtrail_capture::fs::Dir;
use credtrail_capture::hash_open_file;
use credtrail_capture::manifest::Manifest;

use credtrail_testkit::{
    Recorder, bpf_available, query_bin, record_bin, replay_bin, serial, workload_bin,
};
use credtrail_testkit::{copy_fixture, crashed_capture, edit_manifest, one_error_line};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

/// A victim file outside any capture, with known content.
fn victim(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let p = dir.join(name);
    let content = format!("victim {name}: must survive\n")
        .repeat(50)
        .into_bytes();
    std::fs::write(&p, &content).unwrap();
    (p, content)
}

fn sha_and_len(path: &Path) -> (u64, String) {
    hash_open_file(path, std::fs::File::open(path).unwrap()).unwrap()
}

/// A format-2 (hash-chained) copy of a fixture, made by `replay --out`.
fn chained(fixture: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("chained");
    let o = run(
        replay_bin(),
        &[
            credtrail_testkit::fixture(fixture).to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (tmp, out)
}

#[test]
fn recover_touches_nothing_a_manifest_or_a_link_points_outside() {
    let outside = tempfile::tempdir().unwrap();
    let (abs, abs_content) = victim(outside.path(), "abs-victim");
    std::fs::create_dir(outside.path().join("d")).unwrap();
    let (rel, rel_content) = victim(&outside.path().join("d"), "victim");

    // Evicted records naming files outside: the hash chain not even fixed.
    let (_t, dir) = copy_fixture("su-like");
    let rel_name = format!(
        "../../{}/d/victim",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    edit_manifest(&dir, |v| {
        v["state"] = "recording".into();
        let segs = v["segments"].as_array_mut().unwrap();
        for file in [abs.to_str().unwrap(), rel_name.as_str()] {
            let mut s = segs[1].clone();
            s["file"] = file.into();
            s["evicted"] = true.into();
            segs.push(s);
        }
    });
    let line = one_error_line(&run(record_bin(), &["recover", dir.to_str().unwrap()]));
    assert!(line.contains("refusing to touch it"), "{line}");
    assert_eq!(std::fs::read(&abs).unwrap(), abs_content);
    assert_eq!(std::fs::read(&rel).unwrap(), rel_content);

    // An open segment that is a hard link to a file outside.
    let tmp = tempfile::tempdir_in(outside.path()).unwrap();
    let dir = crashed_capture(tmp.path());
    let open = dir.join("events/part-00000.parquet.open");
    let linked = outside.path().join("linked-victim");
    std::fs::copy(&open, &linked).unwrap();
    let before = std::fs::read(&linked).unwrap();
    std::fs::remove_file(&open).unwrap();
    std::fs::hard_link(&linked, &open).unwrap();
    let line = one_error_line(&run(record_bin(), &["recover", dir.to_str().unwrap()]));
    assert!(line.contains("hard links"), "{line}");
    assert_eq!(std::fs::read(&linked).unwrap(), before);
    assert!(open.exists(), "left in place");

    // A table folder that is a symlink to another directory.
    let dir = crashed_capture(&tmp.path().join("second"));
    let elsewhere = outside.path().join("elsewhere");
    std::fs::rename(dir.join("events"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("events")).unwrap();
    let names = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.clone(), std::fs::read(p).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before = names(&elsewhere);
    let line = one_error_line(&run(record_bin(), &["recover", dir.to_str().unwrap()]));
    assert!(line.contains("symbolic link"), "{line}");
    assert_eq!(names(&elsewhere), before);
}

#[test]
fn verification_cannot_be_downgraded() {
    let (_t, dir) = chained("su-like");
    let m = Manifest::read(&dir).unwrap();
    let head = m.chain_head.clone().unwrap();
    let d = dir.to_str().unwrap();
    let o = run(replay_bin(), &["--verify", "--expect-head", &head, d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Delete a segment, fix the counters, lower the version, keep the head.
    let gone = m.segments.iter().find(|s| s.table == "lifecycle").unwrap();
    std::fs::remove_file(dir.join(&gone.file)).unwrap();
    edit_manifest(&dir, |v| {
        v["format_version"] = 1.into();
        v["segments"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["table"] != "lifecycle");
        v["counters"]["lifecycle_written"] = 0.into();
    });
    let o = run(replay_bin(), &["--verify", "--expect-head", &head, d]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("version was lowered"), "{stderr}");
    assert!(
        stderr.contains("--expect-head cannot be checked"),
        "{stderr}"
    );
    // The same with every chain field stripped: a plain format-1 manifest
    // cannot stand for a chained head either.
    edit_manifest(&dir, |v| {
        v.as_object_mut().unwrap().remove("chain_head");
        for s in v["segments"].as_array_mut().unwrap() {
            s.as_object_mut().unwrap().remove("chain");
        }
    });
    let o = run(replay_bin(), &["--verify", "--expect-head", &head, d]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--expect-head cannot be checked"),
        "{stderr}"
    );

    // A signed capture verified without --pubkey says the signature was
    // not checked, on the OK line itself.
    let (_t2, dir) = chained("setgroups");
    let key = credtrail_capture::manifest::SigningKey::from_bytes(&[7u8; 32]);
    let mut m = Manifest::read(&dir).unwrap();
    m.write(&Dir::open(&dir).unwrap(), Some(&key)).unwrap();
    let o = run(replay_bin(), &["--verify", dir.to_str().unwrap()]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(out.contains("signature NOT checked"), "{out}");
    assert!(
        err.contains("the signature was NOT checked (pass --pubkey"),
        "{err}"
    );
}

/// Points the events segment record of `dir` at `file`, with the size and
/// sha256 of `target` (an attacker recomputes them).
fn point_events_at(dir: &Path, file: &str, target: &Path) {
    let (bytes, sha) = sha_and_len(target);
    edit_manifest(dir, |v| {
        for s in v["segments"].as_array_mut().unwrap() {
            if s["table"] == "events" {
                s["file"] = file.into();
                s["bytes"] = bytes.into();
                s["sha256"] = sha.clone().into();
            }
        }
    });
}

/// Every reader of `dir` refuses it with one line that discloses nothing
/// of `secret_file` (neither its size nor its sha256).
#[track_caller]
fn every_reader_refuses(dir: &Path, secret_file: &Path, expect: &str) {
    let (bytes, sha) = sha_and_len(secret_file);
    let d = dir.to_str().unwrap();
    for (bin, args) in [
        (replay_bin(), vec![d]),
        (replay_bin(), vec!["--verify", d]),
        (query_bin(), vec![d, "summary"]),
        (record_bin(), vec!["inspect", d]),
    ] {
        let o = run(bin, &args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.status.success(), "{bin} {args:?}: {all}");
        assert!(all.contains(expect), "{bin} {args:?}: {all}");
        assert!(
            !all.contains(&sha) && !all.contains(&format!("is {bytes} bytes")),
            "{bin} {args:?} disclosed the file: {all}"
        );
    }
}

#[test]
fn readers_never_leave_the_capture() {
    let outside = tempfile::tempdir().unwrap();
    // A file an attacker wants read: here a copy of a real segment, so that
    // even a reader trusting the record would decode it.
    let secret = outside.path().join("secret.parquet");
    std::fs::copy(
        credtrail_testkit::fixture("setgroups").join("events/part-00000.parquet"),
        &secret,
    )
    .unwrap();

    let (_t, dir) = copy_fixture("su-like");
    point_events_at(&dir, secret.to_str().unwrap(), &secret);
    every_reader_refuses(&dir, &secret, "refusing to touch it");

    let (_t, dir) = copy_fixture("su-like");
    let up = format!(
        "events/../../../{}/secret.parquet",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    point_events_at(&dir, &up, &secret);
    every_reader_refuses(&dir, &secret, "refusing to touch it");

    // A segment file that is a symlink to it, record made to match.
    let (_t, dir) = copy_fixture("su-like");
    let seg = dir.join("events/part-00000.parquet");
    std::fs::remove_file(&seg).unwrap();
    std::os::unix::fs::symlink(&secret, &seg).unwrap();
    point_events_at(&dir, "events/part-00000.parquet", &secret);
    every_reader_refuses(&dir, &secret, "symbolic link");

    // Another capture's file in place of this one's, the record left: query
    // checks the checksum before it reads.
    let (_t, dir) = copy_fixture("su-like");
    std::fs::copy(&secret, dir.join("events/part-00000.parquet")).unwrap();
    let d = dir.to_str().unwrap();
    let line = one_error_line(&run(query_bin(), &[d, "summary"]));
    assert!(line.contains("the manifest says"), "{line}");
    // --no-verify is the stated way to skip that check.
    let o = run(
        query_bin(),
        &[d, "summary", "--no-verify", "--format", "csv"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A capture path with a wildcard is a path, not a pattern.
    let holder = tempfile::tempdir().unwrap();
    credtrail_testkit::copy_fixture_to("su-like", &holder.path().join("cap"));
    let pattern = holder.path().join("*");
    let line = one_error_line(&run(query_bin(), &[pattern.to_str().unwrap(), "summary"]));
    assert!(line.contains("no credtrail capture found"), "{line}");
}

/// A Parquet file of one text column `column`, 200 rows that all point at
/// one dictionary value of 8 MiB: a few KB on disk, 1.6 GiB once decoded
/// (in one record batch, under Arrow's 2 GiB offset limit). Written with the
/// thrift structures of the format itself, as an attacker would, since no
/// well-behaved writer makes such a file.
pub fn dictionary_bomb(column: &str) -> Vec<u8> {
    use polars_parquet_format::*;
    const ROWS: i32 = 200;
    const VALUE: usize = 8 << 20;
    let mut file = b"PAR1".to_vec();
    let mut dict = (VALUE as u32).to_le_bytes().to_vec();
    dict.resize(4 + VALUE, b'A');
    let dict_offset = file.len() as i64;
    page(&mut file, PageType::DICTIONARY_PAGE, &dict, |h| {
        h.dictionary_page_header = Some(DictionaryPageHeader::new(1, Encoding::PLAIN, None));
    });
    // Bit width 1, then one RLE run of ROWS zeros: header ROWS << 1 as a
    // varint (one byte up to 63 rows, two here), then the value 0.
    let run = (ROWS as u32) << 1;
    let data = [1u8, (run as u8 & 0x7f) | 0x80, (run >> 7) as u8, 0x00];
    let data_offset = file.len() as i64;
    page(&mut file, PageType::DATA_PAGE, &data, |h| {
        h.data_page_header = Some(DataPageHeader::new(
            ROWS,
            Encoding::RLE_DICTIONARY,
            Encoding::RLE,
            Encoding::RLE,
            None,
        ));
    });
    let decoded = (dict.len() + data.len()) as i64;
    let mut meta = ColumnMetaData::new(
        Type::BYTE_ARRAY,
        vec![Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY],
        vec![column.to_owned()],
        CompressionCodec::ZSTD,
        i64::from(ROWS),
        decoded,
        file.len() as i64 - dict_offset,
        None,
        data_offset,
        None,
        dict_offset,
        None,
        None,
        None,
        None,
        None,
    );
    meta.dictionary_page_offset = Some(dict_offset);
    let mut root = SchemaElement::new(
        None,
        None,
        None,
        "schema".into(),
        1,
        None,
        None,
        None,
        None,
        None,
    );
    root.num_children = Some(1);
    let mut leaf = root.clone();
    (leaf.name, leaf.num_children) = (column.into(), None);
    leaf.type_ = Some(Type::BYTE_ARRAY);
    leaf.repetition_type = Some(FieldRepetitionType::REQUIRED);
    leaf.converted_type = Some(ConvertedType::UTF8);
    let chunk = ColumnChunk::new(None, dict_offset, meta, None, None, None, None, None, None);
    let group = RowGroup::new(
        vec![chunk],
        decoded,
        i64::from(ROWS),
        None,
        None,
        None,
        None,
    );
    let footer = FileMetaData::new(
        1,
        vec![root, leaf],
        i64::from(ROWS),
        vec![group],
        None,
        None,
        None,
        None,
        None,
    );
    let footer = thrift(|p| footer.write_to_out_protocol(p));
    file.extend(&footer);
    file.extend((footer.len() as u32).to_le_bytes());
    file.extend(b"PAR1");
    file
}

type Thrift<'a> = polars_parquet_format::thrift::protocol::TCompactOutputProtocol<&'a mut Vec<u8>>;

/// Bytes of one thrift structure, as `write` puts them.
fn thrift<T>(
    write: impl FnOnce(&mut Thrift) -> polars_parquet_format::thrift::Result<T>,
) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut polars_parquet_format::thrift::protocol::TCompactOutputProtocol::new(&mut out))
        .unwrap();
    out
}

/// Appends a page of `body`, zstd-compressed, with its header (`fill` adds
/// the header of its type).
fn page(
    file: &mut Vec<u8>,
    type_: polars_parquet_format::PageType,
    body: &[u8],
    fill: impl FnOnce(&mut polars_parquet_format::PageHeader),
) {
    let z = zstd::bulk::compress(body, 3).unwrap();
    let mut header = polars_parquet_format::PageHeader::new(
        type_,
        body.len() as i32,
        z.len() as i32,
        None,
        None,
        None,
        None,
        None,
    );
    fill(&mut header);
    file.extend(thrift(|p| header.write_to_out_protocol(p)));
    file.extend(z);
}

/// Runs `bin args` with at most 1 GiB of address space (each tool runs
/// its ordinary work in that; the bomb wants 1.6 GiB at once).
fn run_limited(bin: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn a_decompression_bomb_is_refused_before_it_is_decoded() {
    let bomb = dictionary_bomb("arguments");
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let (_t, dir) = copy_fixture("su-like");
    let seg = dir.join("events/part-00000.parquet");
    std::fs::write(&seg, &bomb).unwrap();
    point_events_at(&dir, "events/part-00000.parquet", &seg);
    edit_manifest(&dir, |v| {
        for s in v["segments"].as_array_mut().unwrap() {
            if s["table"] == "events" {
                s["rows"] = 200.into();
            }
        }
    });
    let d = dir.to_str().unwrap();
    for (bin, args) in [
        (replay_bin(), vec![d, "--print", "compact"]),
        (replay_bin(), vec!["--verify", d]),
        (record_bin(), vec!["inspect", d]),
        (
            query_bin(),
            vec![
                d,
                "--sql",
                "SELECT count(*) FROM events WHERE arguments <> ''",
            ],
        ),
    ] {
        let o = run_limited(bin, &args);
        let all = String::from_utf8_lossy(&o.stderr).into_owned();
        if bin == replay_bin() && args[0] == "--verify" {
            // --verify lists it as a problem.
            assert_eq!(o.status.code(), Some(1), "{all}");
            assert!(all.contains("a dictionary value of 8388608 bytes"), "{all}");
            continue;
        }
        let line = one_error_line(&o);
        assert!(
            line.contains("a dictionary value of 8388608 bytes")
                && line.contains("refusing to decode"),
            "{bin} {args:?}: {line}"
        );
    }
}

#[test]
fn a_precreated_out_directory_is_refused() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // A world-writable parent, as /tmp is, where a user made the directory
    // in advance.
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = parent.path().join("incident");
    let st = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "mkdir"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), 65534);
    let o = run(
        record_bin(),
        &["--out", out.to_str().unwrap(), "--duration", "1"],
    );
    let line = one_error_line(&o);
    assert!(
        line.contains("is owned by uid 65534") || line.contains("made by uid 65534"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written"
    );

    // Ours, but writable by others.
    let open = parent.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = one_error_line(&run(
        record_bin(),
        &["--out", open.to_str().unwrap(), "--duration", "1"],
    ));
    assert!(line.contains("writable by nobody else"), "{line}");
}

/// The bytes a terminal acts on: ESC, BEL, and the 8-bit CSI/OSC.
fn assert_no_raw_escapes(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !bytes.iter().any(|b| *b == 0x1b || *b == 0x07) && !text.contains('\u{9b}'),
        "{what} printed a raw escape: {text:?}"
    );
}

#[test]
fn no_raw_escape_reaches_a_terminal() {
    // Manifest fields, read by inspect and the warnings of every reader.
    let (_t, dir) = copy_fixture("su-like");
    edit_manifest(&dir, |v| {
        v["node_name"] = "node\u{1b}]0;owned\u{7}\u{1b}[2J".into();
        v["state"] = "failed".into();
        v["error"] = "disk \u{1b}]8;;http://evil.example/\u{7}full\u{1b}]8;;\u{7}".into();
    });
    let d = dir.to_str().unwrap();
    let o = run(record_bin(), &["inspect", d, "--print", "compact"]);
    assert!(o.status.success());
    assert_no_raw_escapes("inspect", &[o.stdout, o.stderr].concat());
    assert!(
        String::from_utf8_lossy(&run(record_bin(), &["inspect", d]).stderr)
            .contains("node\\e]0;owned\\x07\\e[2J")
    );
    let o = run(query_bin(), &[d, "summary"]);
    assert!(o.status.success());
    assert_no_raw_escapes("query summary", &[o.stdout, o.stderr].concat());

    if !bpf_available() {
        return;
    }
    let _serial = serial();
    // A binary whose name and arguments are escape sequences, live.
    let tmp = tempfile::tempdir().unwrap();
    let evil = tmp.path().join("\u{1b}]0;T\u{7}\u{1b}[2Jx");
    std::fs::copy(workload_bin(), &evil).unwrap();
    let rec = Recorder::start(false, &["--print", "compact"]);
    let o = Command::new(&evil)
        .args(["storm", "--threads", "1", "--seconds", "1", "--rate", "4"])
        .arg("--tag=\u{1b}]8;;http://evil.example/\u{7}click\u{1b}]8;;\u{7}")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (live, stderr, cap, _keep) = rec.stop();
    assert_no_raw_escapes("credtrail-record --print compact", live.as_bytes());
    assert_no_raw_escapes("credtrail-record's log", stderr.as_bytes());
    assert!(live.contains("\\e]0;T\\x07\\e[2Jx"), "{live}");
    let d = cap.dir.to_str().unwrap();
    for (bin, args) in [
        (record_bin(), vec!["inspect", d, "--print", "compact"]),
        (replay_bin(), vec![d, "--print", "compact"]),
        (query_bin(), vec![d, "timeline"]),
        (query_bin(), vec![d, "became-root"]),
        (query_bin(), vec![d, "summary"]),
        (
            query_bin(),
            vec![d, "--sql", "SELECT binary, arguments, exec_id FROM events"],
        ),
    ] {
        // Every column shown, so that the name is on screen.
        let o = Command::new(bin)
            .args(&args)
            .env("COLUMNS", "2000")
            .env("POLARS_FMT_MAX_COLS", "100")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("\\e]"),
            "{args:?}: the name is shown, escaped: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert_no_raw_escapes(&format!("{args:?}"), &[o.stdout, o.stderr].concat());
    }
}

#[test]
fn smaller_hostile_inputs() {
    // inspect on a manifest sha256 shorter than 16 bytes, and multibyte.
    for sha in ["abc", "ééééééééééééééééé"] {
        let (_t, dir) = copy_fixture("su-like");
        edit_manifest(&dir, |v| v["segments"][0]["sha256"] = sha.into());
        let o = run(record_bin(), &["inspect", dir.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(101), "inspect panicked");
    }

    // query --out onto a symlink: the link is replaced, its target kept,
    // the answer is 0600.
    let (_t, dir) = copy_fixture("su-like");
    let outside = tempfile::tempdir().unwrap();
    let (target, content) = victim(outside.path(), "answer-victim");
    let out = outside.path().join("answer.csv");
    std::os::unix::fs::symlink(&target, &out).unwrap();
    let o = run(
        query_bin(),
        &[
            dir.to_str().unwrap(),
            "summary",
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&target).unwrap(), content);
    let meta = std::fs::symlink_metadata(&out).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o777, 0o600);

    // A manifest of 184,049 records, 64 MiB: refused at once by every
    // reader, not read record by record.
    let (_t, dir) = copy_fixture("su-like");
    edit_manifest(&dir, |v| {
        let segs = v["segments"].as_array_mut().unwrap();
        let template = segs[1].clone();
        for i in 0..184_049u32 {
            let mut s = template.clone();
            s["file"] = format!("events/part-{:05}.parquet", i + 1).into();
            s["sha256"] = format!("{i:064x}").into();
            segs.push(s);
        }
    });
    assert!(std::fs::metadata(dir.join("manifest.json")).unwrap().len() > 40 << 20);
    let d = dir.to_str().unwrap();
    for (bin, args) in [
        (replay_bin(), vec![d]),
        (query_bin(), vec![d, "summary"]),
        (record_bin(), vec!["inspect", d]),
    ] {
        let line = one_error_line(&run(bin, &args));
        assert!(
            line.contains("lists 184050 events segments, but events/ holds 1"),
            "{line}"
        );
    }
    let o = run(replay_bin(), &["--verify", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lists 184050 events segments"));
}

/// The bomb kept among the fuzzers' regression inputs is this one.
#[test]
fn the_stored_bomb_is_the_crafted_one() {
    let stored = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/regressions/bounds/dictionary-bomb.parquet"
    ))
    .unwrap();
    assert!(stored == dictionary_bomb("arguments"));
}
