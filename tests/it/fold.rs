//! Root: a capture with folded rows (a storm over its share) reads the same
//! everywhere: live equals replay, replay marks each folded row with its
//! count, and credtrail-query and DuckDB count calls, not rows.

use std::time::Duration;

use credtrail_pipeline::print::PrintFormat;
use credtrail_testkit::{Recorder, bpf_available, serial, storm};

#[test]
fn folded_rows_are_calls_live_on_replay_in_query_and_in_duckdb() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let rec = Recorder::start(
        false,
        &["--ring-buffer-mib", "1", "--print", "compact", "--no-cri"],
    );
    let out = storm(1, 2, 0).output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issued = report["calls"].as_u64().unwrap();
    let pid = report["pid"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (live, _, cap, _tmp) = rec.stop();
    let c = &cap.manifest.counters;
    assert!(c.folded_rows > 0, "the storm was folded: {c:?}");
    assert_eq!(c.lost(), 0, "{c:?}");

    // Live equals replay, folded rows marked with their count.
    let replayed = crate::golden::replay_to_string(&cap.dir, PrintFormat::Compact);
    assert_eq!(live, replayed, "live and replay differ");
    let marked = replayed
        .lines()
        .filter(|l| l.contains(&format!("pid {pid}")) && l.contains(" ×"))
        .count() as u64;
    assert_eq!(marked, c.folded_rows, "one marked line per folded row");
    // Tetragon's output: one line per row.
    let tetragon = crate::golden::replay_to_string(&cap.dir, PrintFormat::Tetragon);
    assert_eq!(tetragon.lines().count() as u64, c.events_written);

    // credtrail-query counts calls: summary's events, and SQL.
    let dir = cap.dir.to_str().unwrap();
    let summary = crate::query::ok(&[dir, "summary", "--format", "csv"]);
    let storm_line = summary
        .lines()
        .find(|l| l.contains("setresuid") && l.contains("credtrail-workload"))
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(
        storm_line.contains(&format!(",{issued},")),
        "summary counts the storm's {issued} calls: {storm_line}"
    );
    let sql = format!(
        "SELECT sum(coalesce(repeat_count, 1)) AS calls FROM events WHERE pid = {pid} AND syscall = 'setresuid'"
    );
    let ours = crate::query::ok(&[dir, "--sql", &sql, "--format", "csv"]);
    assert_eq!(ours, format!("calls\n{issued}\n"));

    // DuckDB reads repeat_count and sums to the calls issued.
    let script = format!(
        "import duckdb\n\
         con = duckdb.connect()\n\
         r = con.execute(\"SELECT sum(coalesce(repeat_count, 1)), count(*) FILTER (WHERE repeat_count IS NOT NULL) FROM read_parquet('{dir}/events/*.parquet') WHERE pid = {pid} AND syscall = 'setresuid'\").fetchone()\n\
         print(r[0], r[1])\n"
    );
    assert_eq!(
        credtrail_testkit::duckdb(&script).trim(),
        format!("{issued} {}", c.folded_rows)
    );
}
