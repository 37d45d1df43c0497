use std::path::Path;
use std::process::Command;

use clap::Parser;
use credtrail_capture::manifest::FORMAT_VERSION;
use credtrail_query::cli::{Cli, run};

/// Runs credtrail-query with `args` after the program name; returns
/// (stdout, stderr, error line).
fn query(args: &[&str]) -> (String, String, Option<String>) {
    let cli = Cli::try_parse_from(std::iter::once("credtrail-query").chain(args.iter().copied()))
        .unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let e = run(cli, &mut out, &mut err).err().map(|e| e.to_string());
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        e,
    )
}

pub(crate) fn ok(args: &[&str]) -> String {
    let (out, _, e) = query(args);
    assert_eq!(e, None, "{args:?}");
    out
}

/// The su exec in the xwing fixture (`tree` and `timeline` start there).
pub(crate) fn xwing_su_exec_id() -> String {
    let out = ok(&[
        "../fixtures/k8s-xwing-su",
        "--sql",
        "SELECT DISTINCT exec_id FROM events WHERE binary = '/bin/su'",
        "--format",
        "csv",
    ]);
    out.lines().nth(1).unwrap().to_owned()
}

/// Snapshot names of `built_in_questions_over_the_fixtures`.
pub const QUESTIONS: [&str; 9] = [
    "summary",
    "became_root",
    "caps",
    "caps_xwing_pod",
    "groups",
    "failed",
    "timeline_su",
    "tree_su",
    "summary_syscall_filter",
];

#[test]
fn built_in_questions_over_the_fixtures() {
    let id = xwing_su_exec_id();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("summary", vec!["../fixtures", "summary", "--format", "csv"]),
        (
            "became_root",
            vec!["../fixtures", "became-root", "--format", "csv"],
        ),
        ("caps", vec!["../fixtures", "caps", "--format", "csv"]),
        (
            "caps_xwing_pod",
            vec![
                "../fixtures",
                "caps",
                "--pod",
                "default/xwing",
                "--format",
                "csv",
            ],
        ),
        ("groups", vec!["../fixtures", "groups", "--format", "csv"]),
        ("failed", vec!["../fixtures", "failed", "--format", "csv"]),
        (
            "timeline_su",
            vec![
                "../fixtures",
                "timeline",
                "--exec-id",
                &id,
                "--format",
                "csv",
            ],
        ),
        (
            "tree_su",
            vec!["../fixtures", "tree", &id, "--format", "json"],
        ),
        (
            "summary_syscall_filter",
            vec![
                "../fixtures",
                "summary",
                "--syscall",
                "setuid",
                "--node",
                "kind-control-plane",
                "--format",
                "csv",
            ],
        ),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), QUESTIONS);
    for (name, args) in cases {
        let out = ok(&args);
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn tree_walks_to_the_container_shell() {
    let id = xwing_su_exec_id();
    let out = ok(&["../fixtures", "tree", &id, "--format", "ndjson"]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["binary"], "/bin/su");
    assert_eq!(rows[0]["arguments"], "root");
    assert_eq!(rows[1]["binary"], "/bin/bash");
    assert!(rows.len() >= 3, "{rows:#?}");
}

#[test]
fn setxid_broadcast_is_one_logical_change() {
    // The broadcast fixture: four threads, one logical setuid(5001).
    let out = ok(&[
        "../fixtures",
        "caps",
        "--syscall",
        "setuid",
        "--binary",
        "credtrail-workload",
        "--format",
        "ndjson",
    ]);
    let row: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["threads"], 4);
    assert_eq!(row["calls"], 4);
}

#[test]
fn errors_say_what_is_wrong() {
    let (_, _, e) = query(&["../fixtures", "--sql", "SELEC syscall FROM events"]);
    let e = e.unwrap();
    assert!(
        e.contains("SQL error") && e.contains("Line: 1, Column: 1"),
        "{e}"
    );

    let (_, _, e) = query(&["../fixtures", "--sql", "SELECT nope FROM lifecycle"]);
    let e = e.unwrap();
    assert!(
        e.contains("unknown column \"nope\"; lifecycle has: time,") && e.contains("filename"),
        "{e}"
    );

    let (_, _, e) = query(&["/nonexistent/captures", "summary"]);
    assert_eq!(
        e.unwrap(),
        "no credtrail capture found under /nonexistent/captures (looked for manifest.json up to 6 folders deep)"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node=a/date=2026-11-29/cap");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!(
            r#"{{"format": "credtrail-capture", "format_version": {}}}"#,
            FORMAT_VERSION + 1
        ),
    )
    .unwrap();
    let (_, _, e) = query(&[tmp.path().to_str().unwrap(), "summary"]);
    let e = e.unwrap();
    assert!(
        e.contains(&format!("format version {}", FORMAT_VERSION + 1))
            && e.contains(&format!("versions 1 to {FORMAT_VERSION}")),
        "{e}"
    );
}

#[test]
fn hive_layouts_and_lossy_captures() {
    // captures/node=a/date=d/<capture>: found, and a capture with drops is
    // flagged on the answer.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("node=fixture-node/date=2026-11-29/su-like");
    copy_dir(Path::new("../fixtures/su-like"), &dest);
    let manifest = dest.join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    v["counters"]["ringbuf_full"] = 3.into();
    std::fs::write(&manifest, serde_json::to_vec(&v).unwrap()).unwrap();
    let (out, err, e) = query(&[
        tmp.path().to_str().unwrap(),
        "--sql",
        "SELECT count(*) AS n FROM events",
        "--format",
        "csv",
    ]);
    assert_eq!(e, None);
    assert_eq!(out, "n\n1\n");
    assert!(err.contains("lost 3 events"), "{err}");
}

/// --node and --since/--until leave out whole captures by their folder,
/// node and start..end, before a segment of theirs is read; `node` is the
/// folder's name.
#[test]
fn node_and_time_filters_leave_captures_unread() {
    use credtrail_capture::manifest::Manifest;
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("node=kind-control-plane/k8s-xwing-su");
    let b = tmp.path().join("node=fixture-node/setuid-eperm");
    copy_dir(Path::new("../fixtures/k8s-xwing-su"), &a);
    copy_dir(Path::new("../fixtures/setuid-eperm"), &b);
    // A segment of b made unreadable: left out, it is never opened.
    let seg = Manifest::read(&b).unwrap().segments[0].file.clone();
    std::fs::write(b.join(&seg), b"not parquet").unwrap();
    let root = tmp.path().to_str().unwrap();
    let sql = "SELECT node, count(*) AS n FROM events GROUP BY node";
    let (out, err, e) = query(&[
        root,
        "--node",
        "kind-control-plane",
        "--sql",
        sql,
        "--format",
        "csv",
    ]);
    assert_eq!(e, None, "{err}");
    assert_eq!(out, "node,n\nkind-control-plane,9\n");
    assert!(err.contains("1 of 2 captures left out"), "{err}");
    // Without the filter the altered segment is found.
    let (_, _, e) = query(&[root, "--sql", sql]);
    assert!(e.unwrap().contains(&seg), "the altered segment is named");
    // No capture on that node: SQL counts nothing (the capture read for
    // the columns gives no row), and no warning speaks of it.
    let (out, err, e) = query(&[
        a.to_str().unwrap(),
        "--node",
        "nosuch",
        "--sql",
        "SELECT count(*) AS n FROM events",
        "--format",
        "csv",
    ]);
    assert_eq!(e, None, "{err}");
    assert_eq!(out, "n\n0\n");
    assert!(err.contains("1 of 1 captures left out"), "{err}");
    // A range after the capture ended: an empty answer with its columns.
    let (out, _, e) = query(&[
        a.to_str().unwrap(),
        "--since",
        "2100-01-01T00:00:00Z",
        "became-root",
        "--format",
        "csv",
    ]);
    assert_eq!(e, None);
    assert!(
        out.starts_with("time,node_name,") && out.lines().count() == 1,
        "{out}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The same aggregate from DuckDB (installed from PyPI by scripts/setup)
/// over the same Parquet files: captures are readable by analysts' tools.
#[test]
fn duckdb_agrees() {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("python3 with duckdb is missing under CI (scripts/setup installs it)");
        }
        eprintln!("SKIPPED duckdb interop test: python3 -m pip install duckdb");
        return;
    }
    let sql = "SELECT syscall, count(*) AS n, sum(CASE WHEN ret < 0 THEN 1 ELSE 0 END) AS failed, count(DISTINCT pid) AS pids FROM events GROUP BY syscall ORDER BY syscall";
    let ours = ok(&["../fixtures", "--sql", sql, "--format", "csv"]);
    let script = format!(
        "import duckdb, sys\n\
         con = duckdb.connect()\n\
         con.execute(\"CREATE VIEW events AS SELECT * FROM read_parquet('../fixtures/*/events/*.parquet')\")\n\
         rows = con.execute(\"{sql}\").fetchall()\n\
         print('syscall,n,failed,pids')\n\
         for r in rows: print(','.join(str(x) for x in r))\n"
    );
    assert_eq!(credtrail_testkit::duckdb(&script), ours);
}

/// A reader that went away, as `| head` does after its lines.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn a_closed_pipe_is_recognised_in_every_format() {
    // The binaries exit 0 silently on exactly these errors.
    for format in ["table", "csv", "json", "ndjson"] {
        let cli = Cli::try_parse_from([
            "credtrail-query",
            "../fixtures/su-like",
            "summary",
            "--format",
            format,
        ])
        .unwrap();
        let e = run(cli, &mut ClosedPipe, &mut Vec::new()).expect_err(format);
        assert!(credtrail_cli::is_broken_pipe(&e.into()), "{format}");
    }
    // Other failures stay failures.
    let cli = Cli::try_parse_from(["credtrail-query", "/nonexistent", "summary"]).unwrap();
    let e = run(cli, &mut ClosedPipe, &mut Vec::new()).unwrap_err();
    assert!(!credtrail_cli::is_broken_pipe(&e.into()));
}

#[test]
fn summary_in_pieces_is_the_same_answer() {
    // Two copies of one capture: the same pids in both pieces. Merging the
    // pieces must add events but count each pid once, and equal the
    // one-piece answer.
    use credtrail_query::questions::{Filters, summary_in_pieces};
    let tmp = tempfile::tempdir().unwrap();
    for copy in ["a", "b"] {
        copy_dir(
            Path::new("../fixtures/setxid-broadcast-4-threads"),
            &tmp.path().join(copy),
        );
    }
    let one = credtrail_query::discover(&[tmp.path().join("a")], Default::default()).unwrap();
    let two = credtrail_query::discover(&[tmp.path().to_owned()], Default::default()).unwrap();
    assert_eq!(
        credtrail_query::table_pieces(&two, "events", 1)
            .unwrap()
            .len(),
        2
    );
    let f = Filters::default();
    let single = summary_in_pieces(&one, &f, u64::MAX).unwrap();
    let whole = summary_in_pieces(&two, &f, u64::MAX).unwrap();
    let split = summary_in_pieces(&two, &f, 1).unwrap();
    assert!(whole.equals_missing(&split), "{whole} vs {split}");
    assert_eq!(single.height(), split.height());
    let column = |df: &polars::prelude::DataFrame, name: &str| -> Vec<u64> {
        df.column(name)
            .unwrap()
            .cast(&polars::prelude::DataType::UInt64)
            .unwrap()
            .u64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    };
    let doubled: Vec<u64> = column(&single, "events").iter().map(|n| n * 2).collect();
    assert_eq!(column(&split, "events"), doubled);
    assert_eq!(column(&split, "processes"), column(&single, "processes"));
}

/// A capture of one process: forked with euid 1000, setuid to 1001, and at
/// exit holding `exit_euid`.
fn crafted_capture(dir: &Path, exit_euid: u32) {
    crafted_capture_with(dir, exit_euid, &[]);
}

/// [`crafted_capture`] with subjective rows (check, subjective euid) after
/// the setuid, as the recorder writes them: before the objective
/// credentials (euid 1001), after the subjective ones.
fn crafted_capture_with(dir: &Path, exit_euid: u32, subjective: &[(i64, u32)]) {
    use credtrail_capture::model::lifecycle::ProcEvent;
    use credtrail_capture::model::{Creds, Event};
    use credtrail_capture::{CaptureWriter, Rotation};
    use credtrail_testkit::samples;
    let creds = |euid| Creds {
        uid: 1000,
        euid,
        suid: 1000,
        fsuid: euid,
        ..Creds::default()
    };
    let base = samples::manifest().realtime_offset_ns;
    let proc = |seq: u64, kind: &str, euid| {
        let mut p = ProcEvent {
            time: base + 10 * seq as i64,
            ktime_ns: 10 * seq,
            seq,
            node_name: "node-a".into(),
            kind: kind.into(),
            pid: 77,
            tid: 77,
            comm: "crafted".into(),
            ..ProcEvent::default()
        };
        p.set_creds(creds(euid));
        p
    };
    let mut ev = Event {
        time: base + 20,
        ktime_ns: 20,
        seq: 2,
        node_name: "node-a".into(),
        pid: 77,
        tid: 77,
        comm: "crafted".into(),
        syscall: "setresuid".into(),
        abi: "x64".into(),
        arg0: -1,
        arg1: 1001,
        arg2: -1,
        changed: true,
        ..Event::default()
    };
    ev.set_old_creds(creds(1000));
    ev.set_new_creds(creds(1001));
    let mut w = CaptureWriter::create(dir, samples::manifest(), Rotation::default()).unwrap();
    w.push_lifecycle(&proc(1, "fork", 1000)).unwrap();
    w.push(&ev).unwrap();
    for (i, &(check, euid)) in subjective.iter().enumerate() {
        let mut row = Event {
            time: base + 21 + i as i64,
            ktime_ns: 21 + i as u64,
            seq: 3 + i as u64,
            syscall: "unexplained".into(),
            option: Some(credtrail_capture::model::options::subjective_option(check)),
            arg0: check,
            arg1: 21 + i as i64,
            arg2: 2,
            event_flags: vec!["subjective".into()],
            ..ev.clone()
        };
        row.set_old_creds(creds(1001));
        row.set_new_creds(creds(euid));
        w.push(&row).unwrap();
    }
    let exit_seq = 3 + subjective.len() as u64;
    w.push_lifecycle(&proc(exit_seq, "exit", exit_euid))
        .unwrap();
    w.finish(samples::end()).unwrap();
}

#[test]
fn subjective_overrides_are_judged_and_leave_the_objective_history_alone() {
    let tmp = tempfile::tempdir().unwrap();
    // Root's subjective credentials at a return to user space, and at a
    // sweep (where a legitimate override may be open); the objective ones
    // stay 1001 to the exit.
    crafted_capture_with(tmp.path(), 1001, &[(7, 0), (2, 0)]);
    let out = ok(&[
        tmp.path().to_str().unwrap(),
        "unexplained",
        "--format",
        "csv",
    ]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3, "two live rows, no offline one: {out}");
    let header: Vec<&str> = rows[0].split(',').collect();
    let cell = |row: usize, name: &str| {
        rows[row]
            .split(',')
            .nth(header.iter().position(|h| *h == name).unwrap())
            .unwrap()
    };
    for row in [1, 2] {
        assert_eq!(cell(row, "found"), "live", "{out}");
        assert_eq!(cell(row, "change"), "euid 1001→0 fsuid 1001→0", "{out}");
    }
    assert_eq!(cell(1, "noticed_by"), "subjective at return to user");
    assert_eq!(
        cell(2, "noticed_by"),
        "subjective at sweep (inconclusive: an override may be open there)"
    );
    // Replay prints the mark; no window ("unchanged at") is claimed.
    let o = Command::new(credtrail_testkit::replay_bin())
        .arg(tmp.path())
        .args(["--print", "compact"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("return to user"))
        .expect(&text);
    assert!(
        line.contains("unexplained(subjective at return to user)"),
        "{line}"
    );
    assert!(!line.contains("unchanged at"), "{line}");
}

#[test]
fn unexplained_changes_are_found_offline_in_any_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let (changed, consistent) = (tmp.path().join("changed"), tmp.path().join("consistent"));
    crafted_capture(&changed, 0);
    crafted_capture(&consistent, 1001);
    let csv = |dir: &Path| ok(&[dir.to_str().unwrap(), "unexplained", "--format", "csv"]);
    let out = csv(&changed);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 2, "{out}");
    let header: Vec<&str> = rows[0].split(',').collect();
    let row: Vec<&str> = rows[1].split(',').collect();
    let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(cell("pid"), "77");
    assert_eq!(cell("change"), "euid 1001→0 fsuid 1001→0");
    assert_eq!(cell("noticed_by"), "exit");
    assert_eq!(cell("found"), "offline");
    assert_eq!(cell("last_seen"), "2023-11-14T22:13:20.000000020Z");
    assert_eq!(cell("time"), "2023-11-14T22:13:20.000000030Z");
    // Nothing to report in a consistent capture, nor in any fixture
    // recorded with every path hooked (format 3).
    assert_eq!(csv(&consistent).lines().count(), 1, "{}", csv(&consistent));
    for f in [
        "ia32-int80",
        "prctl-ambient-securebits-nnp",
        "unshare-map-root-user",
        "io-uring-personality",
        "podman-rootless-setuid",
    ] {
        let fx = credtrail_testkit::fixture(f);
        assert_eq!(csv(&fx).lines().count(), 1, "{f}: {}", csv(&fx));
    }
    // Format 1 hooked no prctl: runc's bounding-set drops and keepcaps in
    // the xwing container are changes no row of that capture explains.
    let out = csv(&credtrail_testkit::fixture("k8s-xwing-su"));
    let found: Vec<(&str, &str)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[9], c[10])
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "securebits 0→16 capbnd 0x1fffeffffff→0x800405fb",
                "before setgroups"
            ),
            ("securebits 16→0", "before capset"),
        ],
        "{out}"
    );
    assert!(out.contains("default/xwing") && out.contains("/usr/bin/runc"));
    // The live detector's rows, with the process identity.
    let fx = credtrail_testkit::fixture("unexplained-ia32");
    let out = csv(&fx);
    assert!(out.lines().count() >= 2, "{out}");
    assert!(
        out.lines()
            .skip(1)
            .all(|l| l.contains(",live,") && l.contains("credtrail-workload")),
        "{out}"
    );
    // The same filters as every question, from the same predicate.
    let rows_with = |extra: &[&str]| {
        let mut args = vec![fx.to_str().unwrap(), "unexplained", "--format", "csv"];
        args.extend_from_slice(extra);
        ok(&args).lines().count() - 1
    };
    let all = out.lines().count() - 1;
    assert_eq!(rows_with(&["--binary", "credtrail-workload"]), all);
    assert_eq!(rows_with(&["--syscall", "unexplained"]), all);
    assert_eq!(rows_with(&["--binary", "su"]), 0);
    assert_eq!(rows_with(&["--syscall", "setuid"]), 0);
    assert_eq!(rows_with(&["--container", "spaceship"]), 0);
    assert_eq!(rows_with(&["--since", "2099-01-01T00:00:00Z"]), 0);
    // `tree` marks the process whose credentials changed, not its parents.
    let exec_id = out.lines().nth(1).unwrap().rsplit(',').nth(1).unwrap();
    let tree = ok(&[fx.to_str().unwrap(), "tree", exec_id, "--format", "csv"]);
    let marks: Vec<&str> = tree
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    assert!(marks.len() >= 2 && marks[0] == "true", "{tree}");
    assert!(marks[1..].iter().all(|m| *m == "false"), "{tree}");
}

/// DuckDB and pyarrow (both from PyPI, installed by scripts/setup) open
/// every table of a capture written now with no option at all, and count
/// the rows credtrail-query counts; the `captures` table's last row says
/// what the manifest says.
#[test]
fn duckdb_and_pyarrow_read_every_table_with_no_option() {
    use credtrail_capture::TABLES;
    use credtrail_capture::manifest::Manifest;
    let probe = Command::new("python3")
        .args(["-c", "import duckdb, pyarrow"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "python3 with duckdb and pyarrow is missing under CI (scripts/setup installs them)"
            );
        }
        eprintln!("SKIPPED interop test: python3 -m pip install duckdb pyarrow");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    let o = Command::new(credtrail_testkit::replay_bin())
        .arg(credtrail_testkit::fixture("k8s-xwing-su"))
        .arg("--out")
        .arg(&cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = "import duckdb, pyarrow.parquet as pq, json, sys\n\
         cap, tables = sys.argv[1], sys.argv[2:]\n\
         con = duckdb.connect()\n\
         out = {}\n\
         for t in tables:\n\
         \x20   d = con.execute(f\"SELECT count(*) FROM read_parquet('{cap}/{t}/*.parquet')\").fetchone()[0]\n\
         \x20   out[t] = [d, pq.read_table(f'{cap}/{t}').num_rows]\n\
         last = con.execute(f\"SELECT state, final_row, events_written, ringbuf_full, capture_id, node_name FROM read_parquet('{cap}/captures/*.parquet') ORDER BY segment_set DESC LIMIT 1\").fetchone()\n\
         out['last'] = [str(x) for x in last]\n\
         print(json.dumps(out))\n";
    let o = Command::new("python3")
        .args(["-c", script, cap.to_str().unwrap()])
        .args(TABLES)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cap_s = cap.to_str().unwrap();
    for t in TABLES {
        let sql = format!("SELECT count(*) AS n FROM {t}");
        let ours = ok(&[cap_s, "--sql", &sql, "--format", "csv"]);
        let n: u64 = ours.lines().nth(1).unwrap().parse().unwrap();
        assert_eq!(v[t], serde_json::json!([n, n]), "{t}");
    }
    assert_eq!(v["captures"][0], 1, "one final row: {v}");
    let m = Manifest::read(&cap).unwrap();
    let id = credtrail_capture::status::capture_id(&m);
    assert_eq!(
        v["last"],
        serde_json::json!([
            "sealed",
            "True",
            m.counters.events_written.to_string(),
            m.counters.ringbuf_full.to_string(),
            id,
            m.node_name
        ])
    );
    assert!(m.counters.events_written > 0);
}

/// Long work shows progress on stderr when it is a terminal (here a pty
/// from util-linux `script`), and nothing at all when it is a pipe.
#[test]
fn progress_on_a_terminal_only() {
    let replay = credtrail_testkit::replay_bin();
    let query = credtrail_testkit::query_bin();
    let fixtures = credtrail_testkit::fixture("");
    let xwing = credtrail_testkit::fixture("k8s-xwing-su");
    let cases = [
        (format!("{replay} --verify {}", xwing.display()), "checking"),
        (
            format!("{query} {} summary --format csv", fixtures.display()),
            "checking captures",
        ),
    ];
    for (cmd, label) in cases {
        // In a pipe: the answer and nothing drawn.
        let o = Command::new("sh").args(["-c", &cmd]).output().unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains(label) && !err.contains('\u{1b}') && !err.contains('\r'),
            "{cmd}: {err:?}"
        );
        // On a terminal: drawn, then cleared.
        let o = Command::new("script")
            .args(["-qec", &format!("{cmd} > /dev/null"), "/dev/null"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}");
        let tty = String::from_utf8_lossy(&o.stdout);
        assert!(
            tty.contains(label) && tty.contains("\u{1b}[2K"),
            "{cmd}: {tty:?}"
        );
    }
}

#[test]
fn expect_checks_what_a_recording_may_and_may_not_do() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("expect.yaml");
    std::fs::write(
        &file,
        "expect:\n\
         - name: every setresuid succeeds\n  never: { syscall: setresuid, result: failed }\n\
         - name: never becomes uid 4242\n  never: { becomes: { uid: 4242 } }\n\
         - name: ends as 4242 with no capabilities\n  at_exit: { uid: 4242, euid: 4242, capabilities: none }\n",
    )
    .unwrap();
    let (out, _, e) = query(&["../fixtures/su-like", "expect", file.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ok    every setresuid succeeds", "{out}");
    assert_eq!(lines[1], "FAIL  never becomes uid 4242 (1)", "{out}");
    assert!(
        lines[2].contains("setresuid(4242, 4242, 4242)") && lines[2].contains("uid 0→4242"),
        "{out}"
    );
    assert_eq!(lines[3], "ok    ends as 4242 with no capabilities", "{out}");
    assert_eq!(
        e.as_deref(),
        Some(
            format!(
                "1 of 3 expectation(s) broken ({}); the rows that broke each are listed above",
                file.display()
            )
            .as_str()
        )
    );
    // A misspelt capability is one line naming the rule.
    std::fs::write(
        &file,
        "expect:\n- name: no admin\n  never: { gains_capability: CAP_SYS_ADMN }\n",
    )
    .unwrap();
    let (_, _, e) = query(&["../fixtures/su-like", "expect", file.to_str().unwrap()]);
    assert!(
        e.unwrap()
            .contains("expectation \"no admin\": unknown capability \"CAP_SYS_ADMN\""),
    );
}
