use std::path::Path;

use credtrail_capture::Capture;
use credtrail_pipeline::print::PrintFormat;

pub const FORMATS: [(&str, PrintFormat); 4] = [
    ("json", PrintFormat::Json),
    ("compact", PrintFormat::Compact),
    ("tetragon", PrintFormat::Tetragon),
    ("tetragon-compact", PrintFormat::TetragonCompact),
];

pub fn replay_to_string(dir: &Path, format: PrintFormat) -> String {
    let cap = Capture::open(dir).unwrap();
    let mut out = Vec::new();
    credtrail_replay::replay(&cap, Some((format, &mut out)), None, None).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn every_fixture_in_every_format() {
    insta::glob!("../../fixtures", "*/manifest.json", |path| {
        let dir = path.parent().unwrap();
        for (name, format) in FORMATS {
            let text = replay_to_string(dir, format);
            assert!(!text.is_empty(), "{} has no events", dir.display());
            insta::with_settings!({ omit_expression => true }, {
                insta::assert_snapshot!(name, text);
            });
        }
    });
}

#[test]
fn replay_is_deterministic() {
    // No clock, /proc, host name or hash order may leak into the output.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/k8s-xwing-su");
    for (_, format) in FORMATS {
        let a = replay_to_string(&dir, format);
        let b = std::thread::spawn({
            let dir = dir.clone();
            move || replay_to_string(&dir, format)
        })
        .join()
        .unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn every_fixture_verifies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("manifest.json").exists() {
            continue;
        }
        let v = credtrail_replay::verify(&dir, Default::default()).unwrap();
        assert!(v.problems.is_empty(), "{}: {:?}", dir.display(), v.problems);
        assert!(v.events > 0);
        n += 1;
    }
    assert!(n >= 9, "fixtures found: {n}");
}

/// A snapshot no test asserts any more is an error, not clutter.
#[test]
fn no_unreferenced_snapshots() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("it/snapshots");
    let fixtures: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("manifest.json").exists())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
    let mut expected: Vec<String> = fixtures
        .iter()
        .flat_map(|f| {
            FORMATS
                .iter()
                .map(move |(fmt, _)| format!("it__golden__{fmt}@{f}__manifest.json.snap"))
        })
        .collect();
    expected.extend(
        crate::help::BINARIES
            .iter()
            .map(|b| format!("it__help__{b}.snap")),
    );
    expected.extend(
        crate::query::QUESTIONS
            .iter()
            .map(|q| format!("it__query__{q}.snap")),
    );
    expected.extend(crate::tables::snapshots());
    expected.extend(
        crate::report::SNAPSHOTS
            .iter()
            .map(|s| format!("it__report__{s}.snap")),
    );
    for entry in std::fs::read_dir(&here).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".snap.new") {
            continue; // pending review, never committed
        }
        assert!(
            expected.contains(&name),
            "unreferenced snapshot it/snapshots/{name}: delete it (or restore its test)"
        );
    }
}

/// The k8s-xwing-su fixture, printed as Tetragon JSON, is the guide's event
/// in every field the guide shows, except what a real recording must change.
#[test]
fn xwing_fixture_matches_the_tetragon_guide() {
    use serde_json::Value;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide: Value = serde_json::from_str(
        &std::fs::read_to_string(
            root.join("../crates/pipeline/tests/data/tetragon-guide-setgid.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let text = replay_to_string(
        &root.join("../fixtures/k8s-xwing-su"),
        PrintFormat::Tetragon,
    );
    let ours: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| {
            v["process_kprobe"]["process"]["binary"] == "/bin/su"
                && v["process_kprobe"]["function_name"] == "__x64_sys_setgid"
        })
        .expect("su's setgid in the xwing fixture");
    // Times, ids and pids differ in any real recording; Tetragon's refcnt
    // (its cache reference count) has no credtrail equivalent.
    const CHANGES: [&str; 8] = [
        "exec_id",
        "parent_exec_id",
        "pid",
        "tid",
        "start_time",
        "time",
        "docker",
        "refcnt",
    ];
    fn walk(want: &Value, got: &Value, path: &str, diffs: &mut Vec<String>) {
        match want {
            Value::Object(w) => {
                for (k, wv) in w {
                    let p = format!("{path}.{k}");
                    if CHANGES.contains(&k.as_str()) || p.ends_with("container.id") {
                        continue;
                    }
                    match got.get(k) {
                        Some(gv) => walk(wv, gv, &p, diffs),
                        None => diffs.push(format!("missing {p}")),
                    }
                }
            }
            Value::Array(w) => {
                for (i, wv) in w.iter().enumerate() {
                    walk(wv, &got[i], &format!("{path}[{i}]"), diffs);
                }
            }
            _ if want != got => diffs.push(format!("{path}: guide {want}, ours {got}")),
            _ => {}
        }
    }
    let mut diffs = Vec::new();
    walk(&guide, &ours, "", &mut diffs);
    assert!(diffs.is_empty(), "{diffs:#?}");
    // The container id keeps the guide's runtime prefix; only the hex differs.
    let id = ours["process_kprobe"]["process"]["pod"]["container"]["id"]
        .as_str()
        .unwrap();
    assert!(id.starts_with("containerd://") && id.len() == "containerd://".len() + 64);
}
