//! Terminal tables: each question's table at 80 and 160 columns, `-o wide`,
//! a narrow terminal, limits, and colour and the pager only at a terminal
//! (a real pseudo-terminal through util-linux `script`).

use std::process::Command;

use credtrail_testkit::query_bin;
use unicode_width::UnicodeWidthStr;

use crate::query::{ok, xwing_su_exec_id};

/// Widths every question's table is snapshotted at.
const WIDTHS: [usize; 2] = [80, 160];
/// Snapshots besides the per-question ones.
const OTHERS: [&str; 2] = ["table_became_root_wide", "table_became_root_70"];

/// Snapshot names of this module (`golden::no_unreferenced_snapshots`).
pub fn snapshots() -> Vec<String> {
    let names = questions("").into_iter().map(|q| q.0);
    let mut v: Vec<String> = names
        .flat_map(|n| WIDTHS.map(|w| format!("it__tables__table_{n}_{w}.snap")))
        .collect();
    v.extend(OTHERS.map(|o| format!("it__tables__{o}.snap")));
    v
}

/// (snapshot name, arguments, the headers that answer the question).
fn questions(su: &str) -> Vec<(&'static str, Vec<String>, &'static [&'static str])> {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (
            "summary",
            args(&["../fixtures", "summary"]),
            &["SYSCALL", "RESULT", "BINARY", "EVENTS"],
        ),
        (
            "became_root",
            args(&["../fixtures", "became-root"]),
            &["TIME (UTC)", "BINARY", "CALL", "CHANGE"],
        ),
        (
            "caps",
            args(&["../fixtures", "caps"]),
            &["TIME (UTC)", "BINARY", "CALL", "CHANGE"],
        ),
        (
            "groups",
            args(&["../fixtures", "groups"]),
            &["TIME (UTC)", "BINARY", "CALL", "CHANGE"],
        ),
        (
            "failed",
            args(&["../fixtures", "failed"]),
            &["TIME (UTC)", "BINARY", "CALL", "ERROR"],
        ),
        (
            "timeline",
            args(&["../fixtures", "timeline", "--exec-id", su]),
            &["TIME (UTC)", "KIND", "BINARY", "DETAIL"],
        ),
        (
            "unexplained",
            args(&["../fixtures", "unexplained"]),
            &["TIME (UTC)", "BINARY", "CHANGE"],
        ),
        (
            "tree",
            args(&["../fixtures", "tree", su]),
            &["DEPTH", "PID", "BINARY", "UNEXPLAINED"],
        ),
    ]
}

#[test]
fn every_question_has_a_table_at_80_and_160_columns() {
    let su = xwing_su_exec_id();
    for (name, args, answer) in questions(&su) {
        for width in WIDTHS {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            let w = width.to_string();
            a.extend(["--width", &w]);
            let out = ok(&a);
            let header = out.lines().next().unwrap();
            for h in answer {
                assert!(header.contains(h), "{name} at {width}: {h} missing: {out}");
            }
            assert!(!out.contains("shape:") && !out.contains("---"), "{out}");
            for line in out.lines() {
                assert!(line.width() <= width, "{name} at {width}: {line:?}");
            }
            insta::assert_snapshot!(format!("table_{name}_{width}"), out);
        }
    }
}

#[test]
fn wide_shows_every_column_and_narrow_keeps_the_answer() {
    let wide = ok(&["../fixtures", "became-root", "-o", "wide", "--width", "80"]);
    let header = wide.lines().next().unwrap();
    for h in [
        "ARGUMENTS",
        "CAPTURE",
        "SCOPE",
        "OLD_EUID",
        "NEW_FSUID",
        "ARG0",
    ] {
        assert!(header.contains(h), "{h}: {header}");
    }
    assert_eq!(
        wide,
        ok(&["../fixtures", "became-root", "--wide", "--width", "80"])
    );
    insta::assert_snapshot!(OTHERS[0], wide);

    let narrow = ok(&["../fixtures", "became-root", "--width", "70"]);
    let header = narrow.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["TIME", "(UTC)", "BINARY", "CALL", "CHANGE"],
        "{narrow}"
    );
    assert!(
        narrow.contains("…-workload"),
        "paths keep their end: {narrow}"
    );
    assert!(narrow.contains("euid 65534→0"), "{narrow}");
    for line in narrow.lines() {
        assert!(line.width() <= 70, "{line:?}");
    }
    insta::assert_snapshot!(OTHERS[1], narrow);
}

#[test]
fn long_answers_are_cut_with_a_line_saying_how_to_see_all() {
    let out = ok(&["../fixtures", "timeline", "--width", "160"]);
    let rows = out.lines().count() - 3; // header, count, "showing" line
    assert_eq!(rows, 50, "{out}");
    let total: usize = ok(&["../fixtures", "timeline", "-o", "csv"])
        .lines()
        .count()
        - 1;
    assert!(total > 50);
    let last = out.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "showing the first 50 of {} events: --limit N or --all shows more, -o csv every column",
            credtrail_cli::term::table::thousands(total)
        )
    );
    let all = ok(&["../fixtures", "timeline", "--all", "--width", "160"]);
    assert_eq!(all.lines().count(), total + 2);
    let some = ok(&["../fixtures", "timeline", "--limit", "3"]);
    assert_eq!(some.lines().count(), 3 + 3);
    // A query's own LIMIT is its answer: not cut again, no "showing" line.
    let sql = ok(&[
        "../fixtures",
        "--sql",
        "SELECT pid FROM events ORDER BY seq LIMIT 60",
    ]);
    assert_eq!(sql.lines().count(), 60 + 2, "{sql}");
    assert_eq!(sql.lines().last(), Some("60 rows in 15 captures"));
}

/// Runs credtrail-query under a pseudo-terminal (`script`), with `env`.
fn at_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("script");
    // stderr (progress, warnings) away: `script` merges it into the output.
    cmd.args([
        "-qec",
        &format!("{} {args} 2>/dev/null", query_bin()),
        "/dev/null",
    ])
    .env_remove("NO_COLOR")
    .env_remove("PAGER")
    .env_remove("CREDTRAIL_PAGER")
    .env("COLUMNS", "160");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("util-linux script runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn colour_and_pager_only_at_a_terminal() {
    // A pipe: neither colour nor pager, whatever PAGER says.
    let piped = Command::new(query_bin())
        .args(["../fixtures", "became-root"])
        .env_remove("NO_COLOR")
        .env("PAGER", "sed s/^/PAGED:/")
        .output()
        .unwrap();
    let piped = String::from_utf8(piped.stdout).unwrap();
    assert!(piped.starts_with("TIME (UTC)"), "{piped}");
    assert!(
        !piped.contains('\x1b') && !piped.contains("PAGED:"),
        "{piped}"
    );

    // A terminal: privilege raises in bold red, through the pager.
    let tty = at_terminal("../fixtures became-root", &[("PAGER", "sed s/^/PAGED:/")]);
    assert!(tty.contains("PAGED:\x1b[1mTIME (UTC)"), "{tty:?}");
    assert!(tty.contains("\x1b[1;31m2026-"), "{tty:?}");
    // NO_COLOR, --color never, --no-pager.
    for (args, env) in [
        (
            "../fixtures became-root --no-pager",
            vec![("NO_COLOR", "1")],
        ),
        ("../fixtures became-root --no-pager --color never", vec![]),
    ] {
        let out = at_terminal(args, &env);
        assert!(out.contains("TIME (UTC)"), "{out:?}");
        assert!(!out.contains("\x1b["), "{args}: {out:?}");
    }
    let forced = Command::new(query_bin())
        .args(["../fixtures", "failed", "--color", "always"])
        .output()
        .unwrap();
    let forced = String::from_utf8(forced.stdout).unwrap();
    assert!(
        forced.contains("\x1b[33m2026-"),
        "refusals in yellow: {forced:?}"
    );
}
