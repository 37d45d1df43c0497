//! A fleet of captures read by Spark (pyspark from PyPI, on Debian's Java;
//! scripts/setup installs both) in local-cluster mode, with Spark's default
//! settings: every table opens, no column arrives as an unsigned decimal or
//! an unreadable nanosecond timestamp, and Spark's answers equal
//! credtrail-query's.

use std::process::Command;

use credtrail_testkit::{fixture, query_bin, replay_bin, serial};

/// (node folder, fixture): five nodes, older captures rewritten in the
/// current format by `credtrail-replay --out`; among them privilege raises
/// on the host and in namespaces, capability changes and refused calls.
const FLEET: [(&str, &str); 5] = [
    ("node-a", "k8s-xwing-su"),
    ("node-b", "podman-rootless-setuid"),
    ("node-c", "setpriv-reuid-regid-clear-groups"),
    ("node-d", "unshare-map-root-user"),
    ("node-e", "setuid-eperm"),
];

fn pyspark_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import pyspark"])
        .status();
    if probe.is_ok_and(|s| s.success()) && Command::new("java").arg("-version").output().is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("pyspark or java is missing under CI (scripts/setup installs them)");
    }
    eprintln!("SKIPPED Spark test: python3 -m pip install pyspark, and a Java runtime");
    false
}

/// The built-in questions docs/spark/ writes in Spark SQL.
const QUESTIONS: [&str; 4] = ["summary", "became-root", "caps", "failed"];

fn spark_sql_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/spark")
}

fn query(args: &[&str]) -> String {
    let o = Command::new(query_bin()).args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

const SPARK: &str = r#"
import json, sys
from pyspark.sql import SparkSession
root, sql, questions_dir, questions, tables = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
s = (SparkSession.builder.master("local-cluster[2,1,1024]")
     .config("spark.ui.enabled", "false").appName("credtrail-fleet").getOrCreate())
s.sparkContext.setLogLevel("ERROR")
schemas = {}
for t in tables:
    df = s.read.option("basePath", root).parquet(f"{root}/node=*/*/{t}/*.parquet")
    df.createOrReplaceTempView(t)
    schemas[t] = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    df.count()
per_node = [[r[0], r[1]] for r in s.sql(
    "SELECT node, count(*) FROM events GROUP BY node ORDER BY node").collect()]
# Each capture's last word, from the Parquet files alone.
status = [[str(x) for x in r] for r in s.sql(
    "SELECT node, state, events_written, events_lost FROM captures WHERE final_row "
    "ORDER BY node").collect()]
rows = [[str(x) for x in r] for r in s.sql(sql).collect()]
# docs/spark/QUESTION.sql, as docs/fleet.md tells Spark users to run them.
answers = {}
for q in questions.split(","):
    text = open(f"{questions_dir}/{q}.sql").read()
    answers[q] = [r.asDict() for r in s.sql(text).collect()]
print(json.dumps({"schemas": schemas, "per_node": per_node, "status": status, "rows": rows,
                  "answers": answers}, default=str))
s.stop()
"#;

#[test]
fn spark_reads_a_fleet_with_default_settings_and_agrees_with_credtrail_query() {
    if !pyspark_ready() {
        return;
    }
    // Spark's JVMs take both cores for ~25 s: the recorders' timing tests
    // (a killed recorder loses at most a second) must not share them.
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    for (node, fx) in FLEET {
        let dir = root.join(format!("node={node}")).join(fx);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let o = Command::new(replay_bin())
            .arg(fixture(fx))
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let sql = "SELECT syscall, count(*) AS n, sum(CASE WHEN ret < 0 THEN 1 ELSE 0 END) AS failed, \
               count(DISTINCT pid) AS pids, max(new_cap_effective) AS caps, min(time_ns) AS first \
               FROM events GROUP BY syscall ORDER BY syscall";
    let o = Command::new("python3")
        .args(["-c", SPARK, root.to_str().unwrap(), sql])
        .arg(spark_sql_dir())
        .arg(QUESTIONS.join(","))
        .args(credtrail_capture::TABLES)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    // Types Spark gives with its defaults: no decimals for unsigned
    // columns, timestamps for times, the node from the folder.
    for (table, cols) in v["schemas"].as_object().unwrap() {
        for (name, ty) in cols.as_object().unwrap() {
            let ty = ty.as_str().unwrap();
            assert!(!ty.contains("decimal"), "{table}.{name}: {ty}");
        }
        assert_eq!(cols["node"], "string", "{table}");
    }
    let events = &v["schemas"]["events"];
    for (name, ty) in [
        ("time", "timestamp"),
        ("start_time", "timestamp"),
        ("container_start_time", "timestamp"),
        ("time_ns", "bigint"),
        ("pid", "bigint"),
        ("old_euid", "bigint"),
        ("old_cap_effective", "bigint"),
        ("groups", "array<bigint>"),
    ] {
        assert_eq!(events[name], ty, "events.{name}");
    }
    let captures = &v["schemas"]["captures"];
    for (name, ty) in [
        ("start_time", "timestamp"),
        ("final_row", "boolean"),
        ("ringbuf_full", "bigint"),
        ("state", "string"),
    ] {
        assert_eq!(captures[name], ty, "captures.{name}");
    }

    // Each node's rows, and the aggregate over the fleet, as
    // credtrail-query has them.
    for (i, (node, _)) in FLEET.iter().enumerate() {
        let dir = root.join(format!("node={node}"));
        let n = query(&[
            dir.to_str().unwrap(),
            "--sql",
            "SELECT count(*) AS n FROM events",
            "--format",
            "csv",
        ]);
        let n = n.lines().nth(1).unwrap().parse::<u64>().unwrap();
        assert_eq!(v["per_node"][i], serde_json::json!([node, n]));
        let m = credtrail_capture::manifest::Manifest::read(&dir.join(FLEET[i].1)).unwrap();
        assert_eq!(
            v["status"][i],
            serde_json::json!([
                node,
                "sealed",
                m.counters.events_written.to_string(),
                m.counters.lost().to_string()
            ])
        );
    }
    let ours = query(&[root.to_str().unwrap(), "--sql", sql, "--format", "csv"]);
    let spark: Vec<String> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let ours: Vec<&str> = ours.lines().skip(1).collect();
    assert_eq!(spark, ours);
    assert!(ours.len() >= 5, "{ours:?}");

    // Each built-in question in Spark SQL gives credtrail-query's answer,
    // row for row, in the same order (every column but the time, which
    // each prints its own way, and the capture, a path or a file: URI).
    for q in QUESTIONS {
        let ours: Vec<serde_json::Value> =
            query(&[root.to_str().unwrap(), q, "--format", "ndjson"])
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let theirs = v["answers"][q].as_array().unwrap();
        assert_eq!(theirs.len(), ours.len(), "{q}: {theirs:#?}\n{ours:#?}");
        assert!(!ours.is_empty(), "{q} has no rows over the fleet");
        for (t, o) in theirs.iter().zip(&ours) {
            let o = o.as_object().unwrap();
            for (col, want) in o {
                if col == "time" || col == "capture" {
                    continue;
                }
                assert_eq!(&t[col], want, "{q}.{col}: spark {t}\nours {o:?}");
            }
        }
    }
}

/// The capability names caps.sql spells out are the recorder's.
#[test]
fn caps_sql_names_every_capability_as_credtrail_does() {
    let sql = std::fs::read_to_string(spark_sql_dir().join("caps.sql")).unwrap();
    let names: Vec<String> = (0..41)
        .map(|b| format!("'{}'", credtrail_capture::model::creds::cap_name(b)))
        .collect();
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("array({})", names.join(", "))),
        "{flat}"
    );
    assert!(!flat.contains(&format!(
        "'{}'",
        credtrail_capture::model::creds::cap_name(41)
    )));
}
