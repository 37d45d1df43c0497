use std::path::{Path, PathBuf};

use credtrail_recorder::capture::hash_file;
use credtrail_recorder::manifest::Manifest;
use credtrail_replay::Cli;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// A private copy of a fixture to damage.
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy(&fixture(name), &dir);
    (tmp, dir)
}

/// Replays `dir` expecting failure: returns the one error line.
fn replay_error(dir: &Path) -> String {
    let cli = Cli {
        captures: vec![dir.to_owned()],
        print: None,
        out: None,
        verify: false,
        pubkey: None,
        expect_head: None,
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let e = credtrail_replay::run(cli, &mut out, &mut err).expect_err("must fail");
    let line = format!("{e:#}");
    assert!(!line.contains('\n'), "one line: {line}");
    line
}

fn verify_problems(dir: &Path) -> Vec<String> {
    credtrail_replay::verify(dir, None).unwrap().problems
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

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn missing_table() {
    let (_t, dir) = copy_fixture("su-like");
    edit_manifest(&dir, |v| {
        v["segments"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["table"] != "containers");
    });
    let e = replay_error(&dir);
    assert!(
        e.contains("manifest.json lists no containers segments"),
        "{e}"
    );
}

#[test]
fn newer_format_version_names_both_versions() {
    let (_t, dir) = copy_fixture("su-like");
    edit_manifest(&dir, |v| v["format_version"] = 7.into());
    let e = replay_error(&dir);
    assert!(
        e.contains("format version 7") && e.contains("versions 1 to 1"),
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
    let (bytes, sha) = hash_file(&seg).unwrap();
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
