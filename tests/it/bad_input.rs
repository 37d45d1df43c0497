use std::path::{Path, PathBuf};

use credtrail_capture::fs::Dir;
use credtrail_capture::hash_open_file;
use credtrail_capture::manifest::{FORMAT_VERSION, Manifest};
use credtrail_pipeline::print::PrintFormat;
use credtrail_replay::Cli;
use credtrail_testkit::{copy_fixture, edit_manifest, fixture};

/// Replays `dir` expecting failure: returns the one error line.
fn replay_error(dir: &Path) -> String {
    let cli = Cli {
        captures: vec![dir.to_owned()],
        print: None,
        out: None,
        verify: false,
        pubkey: None,
        expect_head: None,
        policy: Vec::new(),
        policy_warn: false,
        stable: false,
        inspect: false,
        recover: false,
        sign_key: None,
        endpoint: None,
        memory_limit: None,
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let e = credtrail_replay::run(cli, &mut out, &mut err).expect_err("must fail");
    let line = format!("{e:#}");
    assert!(!line.contains('\n'), "one line: {line}");
    line
}

fn verify_problems(dir: &Path) -> Vec<String> {
    credtrail_replay::verify(dir, Default::default())
        .unwrap()
        .problems
}

fn events_segment(dir: &Path) -> PathBuf {
    dir.join("events/part-00000.parquet")
}

#[test]
fn truncated_segment() {
    let (_t, dir) = copy_fixture("su-like");
    let seg = events_segment(&dir);
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
    let e = replay_error(&dir);
    assert!(
        e.contains("events/part-00000.parquet is") && e.contains("truncated"),
        "{e}"
    );
    assert_eq!(verify_problems(&dir).len(), 1);
}

#[test]
fn flipped_byte_is_a_checksum_mismatch() {
    let (_t, dir) = copy_fixture("su-like");
    let seg = events_segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let e = replay_error(&dir);
    assert!(
        e.contains("events/part-00000.parquet sha256") && e.contains("altered"),
        "{e}"
    );
    let problems = verify_problems(&dir);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("sha256"));
}

#[test]
fn removed_segment_is_detected() {
    let (_t, dir) = copy_fixture("su-like");
    std::fs::remove_file(dir.join("lifecycle/part-00000.parquet")).unwrap();
    let e = replay_error(&dir);
    assert!(e.contains("lifecycle/part-00000.parquet"), "{e}");
    assert!(!verify_problems(&dir).is_empty());
}

#[test]
fn unlisted_segment_is_detected_by_verify() {
    let (_t, dir) = copy_fixture("su-like");
    std::fs::copy(events_segment(&dir), dir.join("events/part-00007.parquet")).unwrap();
    let problems = verify_problems(&dir);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("part-00007.parquet: not listed")),
        "{problems:?}"
    );
}

#[test]
fn manifest_that_is_not_json() {
    let (_t, dir) = copy_fixture("su-like");
    std::fs::write(
        dir.join("manifest.json"),
        b"{\"format\": \"credtrail-capture\", oops",
    )
    .unwrap();
    let e = replay_error(&dir);
    assert!(
        e.contains("manifest.json is not valid manifest JSON"),
        "{e}"
    );
}

/// A table the manifest lists no segment of reads as empty (a recorder
/// killed before the table's first row leaves such a capture); here the
/// record was removed, and --verify names the file it no longer lists.
#[test]
fn a_table_without_segments_reads_as_empty() {
    let (_t, dir) = copy_fixture("su-like");
    edit_manifest(&dir, |v| {
        v["segments"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["table"] != "containers");
    });
    let cli = Cli {
        captures: vec![dir.clone()],
        print: Some(PrintFormat::Compact),
        out: None,
        verify: false,
        pubkey: None,
        expect_head: None,
        policy: Vec::new(),
        policy_warn: false,
        stable: false,
        inspect: false,
        recover: false,
        sign_key: None,
        endpoint: None,
        memory_limit: None,
    };
    let mut out = Vec::new();
    assert!(credtrail_replay::run(cli, &mut out, &mut Vec::new()).unwrap());
    // su-like ran in no container: the same output as the whole fixture.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        crate::golden::replay_to_string(&fixture("su-like"), PrintFormat::Compact)
    );
    let p = verify_problems(&dir);
    assert!(
        p.iter()
            .any(|p| p.ends_with("containers/part-00000.parquet: not listed in the manifest")),
        "{p:?}"
    );
}

#[test]
fn newer_format_version_names_both_versions() {
    let (_t, dir) = copy_fixture("su-like");
    let newer = FORMAT_VERSION + 1;
    edit_manifest(&dir, |v| v["format_version"] = newer.into());
    let e = replay_error(&dir);
    assert!(
        e.contains(&format!("format version {newer}"))
            && e.contains(&format!("versions 1 to {FORMAT_VERSION}")),
        "{e}"
    );
}

#[test]
fn edited_counters_fail_verification() {
    let (_t, dir) = copy_fixture("su-like");
    edit_manifest(&dir, |v| v["counters"]["events_written"] = 999.into());
    let problems = verify_problems(&dir);
    assert!(
        problems.iter().any(|p| p.contains("999 events written")),
        "{problems:?}"
    );
}

#[test]
fn column_of_the_wrong_type() {
    use arrow::array::RecordBatch;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let (_t, dir) = copy_fixture("su-like");
    let seg = events_segment(&dir);
    let file = std::fs::File::open(&seg).unwrap();
    let batches: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    // `pid` as text: what a careless tool rewriting the file might do.
    let schema = batches[0].schema();
    let idx = schema.index_of("pid").unwrap();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[idx] = Field::new("pid", DataType::Utf8, false);
    let new_schema = Arc::new(Schema::new(fields));
    let out = std::fs::File::create(&seg).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(out, new_schema.clone(), None).unwrap();
    for b in &batches {
        let mut cols = b.columns().to_vec();
        cols[idx] = arrow::compute::cast(&cols[idx], &DataType::Utf8).unwrap();
        w.write(&RecordBatch::try_new(new_schema.clone(), cols).unwrap())
            .unwrap();
    }
    w.close().unwrap();
    // Keep the checksum consistent, so the type check itself must catch it.
    let (bytes, sha) = hash_open_file(&seg, std::fs::File::open(&seg).unwrap()).unwrap();
    edit_manifest(&dir, |v| {
        for s in v["segments"].as_array_mut().unwrap() {
            if s["file"] == "events/part-00000.parquet" {
                s["bytes"] = bytes.into();
                s["sha256"] = sha.clone().into();
            }
        }
    });
    Manifest::read(&dir).unwrap();
    let e = replay_error(&dir);
    assert!(
        e.contains("events/part-00000.parquet") && e.contains("columns do not match"),
        "{e}"
    );
}

#[test]
fn not_a_capture_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let e = replay_error(tmp.path());
    assert!(e.contains("manifest.json"), "{e}");
}

/// A format-2 (hash-chained) copy of a fixture, re-enriched by replay.
fn chained_capture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    let cap = credtrail_capture::Capture::open(&fixture(name)).unwrap();
    credtrail_replay::replay(&cap, None, Some(&dir), None).unwrap();
    (tmp, dir)
}

/// Runs `credtrail-replay --verify` with extra flags: (ok, stdout, stderr).
fn verify_cli(dir: &Path, pubkey: Option<&Path>, head: Option<&str>) -> (bool, String, String) {
    let cli = Cli {
        captures: vec![dir.to_owned()],
        print: None,
        out: None,
        verify: true,
        pubkey: pubkey.map(Path::to_owned),
        expect_head: head.map(str::to_owned),
        policy: Vec::new(),
        policy_warn: false,
        stable: false,
        inspect: false,
        recover: false,
        sign_key: None,
        endpoint: None,
        memory_limit: None,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let ok = credtrail_replay::run(cli, &mut out, &mut err).unwrap();
    (
        ok,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn tampering_with_a_chained_capture_is_detected() {
    let (_t, dir) = chained_capture("setxid-broadcast-4-threads");
    let m = Manifest::read(&dir).unwrap();
    let head = m.chain_head.clone().unwrap();
    let (ok, out, err) = verify_cli(&dir, None, Some(&head));
    assert!(ok, "{out}{err}");
    assert!(out.contains(&head), "the head is shown: {out}");

    // Editing the final state (a counter) breaks the head.
    let (_t2, d) = chained_capture("setxid-broadcast-4-threads");
    edit_manifest(&d, |v| v["counters"]["ringbuf_full"] = 0.into());
    edit_manifest(&d, |v| v["counters"]["ringbuf_full"] = 5.into());
    let (ok, _, err) = verify_cli(&d, None, None);
    assert!(!ok && err.contains("chain head differs"), "{err}");

    // Removing a segment (record and file) breaks the chain after it.
    let (_t3, d) = chained_capture("setxid-broadcast-4-threads");
    let mut removed = String::new();
    edit_manifest(&d, |v| {
        let segs = v["segments"].as_array_mut().unwrap();
        let i = segs.iter().position(|s| s["table"] == "lifecycle").unwrap();
        removed = segs.remove(i)["file"].as_str().unwrap().to_owned();
    });
    std::fs::remove_file(d.join(&removed)).unwrap();
    let (ok, _, err) = verify_cli(&d, None, None);
    assert!(!ok && err.contains("hash chain broken"), "{err}");

    // An attacker who recomputes the whole chain still fails the head the
    // recorder printed.
    let (_t4, d) = chained_capture("setxid-broadcast-4-threads");
    let mut m = Manifest::read(&d).unwrap();
    m.kernel_release = "5.4.0-innocent".into();
    for s in &mut m.segments {
        s.chain = None;
    }
    m.write(&Dir::open(&d).unwrap(), None).unwrap();
    let (ok, _, err) = verify_cli(&d, None, None);
    assert!(
        !err.contains("hash chain") && !err.contains("chain head"),
        "a consistent rewrite passes the chain alone: {err}"
    );
    // The Parquet `captures` row still holds what was recorded.
    assert!(
        !ok && err.contains("differs from the manifest's final state"),
        "{err}"
    );
    let (ok, _, err) = verify_cli(&d, None, Some(&head));
    assert!(!ok && err.contains("is not the expected"), "{err}");
}

#[test]
fn a_signed_capture_verifies_and_an_edited_one_does_not() {
    use credtrail_capture::sign;
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = (tmp.path().join("k.pem"), tmp.path().join("p.pem"));
    let run = |args: &[&std::ffi::OsStr]| {
        assert!(
            std::process::Command::new("openssl")
                .args(args)
                .status()
                .unwrap()
                .success()
        )
    };
    run(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "ed25519".as_ref(),
        "-out".as_ref(),
        key.as_os_str(),
    ]);
    run(&[
        "pkey".as_ref(),
        "-pubout".as_ref(),
        "-in".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        pubkey.as_os_str(),
    ]);
    let (_t, dir) = chained_capture("su-like");
    let mut m = Manifest::read(&dir).unwrap();
    m.write(
        &Dir::open(&dir).unwrap(),
        Some(&sign::load_signing_key(&key).unwrap()),
    )
    .unwrap();
    let (ok, out, err) = verify_cli(&dir, Some(&pubkey), None);
    assert!(ok, "{out}{err}");
    // Rewritten consistently (chain recomputed) but without the key.
    m.kernel_release = "5.4.0-elsewhere".into();
    for s in &mut m.segments {
        s.chain = None;
    }
    m.write(&Dir::open(&dir).unwrap(), None).unwrap();
    let (ok, _, err) = verify_cli(&dir, Some(&pubkey), None);
    assert!(!ok && err.contains("signature does not match"), "{err}");
    // A key file that is not a key: one clear error.
    let cli_err = credtrail_replay::run(
        Cli {
            captures: vec![dir.clone()],
            print: None,
            out: None,
            verify: true,
            pubkey: Some(dir.join("manifest.json")),
            expect_head: None,
            policy: Vec::new(),
            policy_warn: false,
            stable: false,
            inspect: false,
            recover: false,
            sign_key: None,
            endpoint: None,
            memory_limit: None,
        },
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(format!("{cli_err:#}").contains("not an ed25519 public key"));
}

#[test]
fn a_crafted_segment_is_one_error_line_in_replay_and_query() {
    // Found by the `segment` fuzzer: metadata that makes both Parquet
    // readers (parquet-rs, polars) panic. Checksums are made to match, as
    // an attacker planting a capture would.
    let crafted = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/segment/crash-343aceb71e4dd17c03499aba9f781935d923a210");
    let (_t, dir) = copy_fixture("su-like");
    std::fs::copy(&crafted, events_segment(&dir)).unwrap();
    let (bytes, sha) = hash_open_file(
        &events_segment(&dir),
        std::fs::File::open(events_segment(&dir)).unwrap(),
    )
    .unwrap();
    edit_manifest(&dir, |v| {
        for s in v["segments"].as_array_mut().unwrap() {
            if s["file"] == "events/part-00000.parquet" {
                s["bytes"] = bytes.into();
                s["sha256"] = sha.clone().into();
            }
        }
    });
    // Refused from its footer by the decoding bounds, before a decoder
    // sees it (the panic guard behind them is tested by the fuzz
    // regressions).
    let e = replay_error(&dir);
    assert!(
        e.contains("events/part-00000.parquet") && e.contains("refusing to decode it"),
        "{e}"
    );

    use clap::Parser as _;
    let cli = credtrail_query::cli::Cli::try_parse_from([
        "credtrail-query",
        dir.to_str().unwrap(),
        "summary",
    ])
    .unwrap();
    let e = credtrail_cli::run_guarded(|| {
        credtrail_query::cli::run(cli, &mut Vec::new(), &mut Vec::new()).map_err(Into::into)
    })
    .unwrap_err()
    .to_string();
    assert!(
        !e.contains('\n') && e.contains("refusing to decode it"),
        "{e}"
    );
}
