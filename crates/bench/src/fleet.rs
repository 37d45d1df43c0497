//! `credtrail-bench fleet`: a fleet of simulated nodes (one generated
//! capture each, in the fleet layout) asked `became-root` by credtrail-query
//! from a local folder and from a local S3 server (moto), and by Spark
//! (local-cluster, docs/spark/became-root.sql); and a one-hour time range:
//! captures and files read against those in the fleet.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use credtrail_capture::manifest::{FORMAT_VERSION, Manifest};
use credtrail_testkit::MotoS3;

use crate::measure::{proc_status, vm_hwm};
use crate::query::{Shape, generate_shaped};

const HOUR_NS: i64 = 3_600_000_000_000;
const TABLE_HEAD: &str = "| question | engine | source | wall s | peak RSS MiB | rows | captures read | files read |\n|---|---|---|---|---|---|---|---|\n";
/// The fleet's first capture starts here (2026-12-01T00:00:00Z); the others
/// follow evenly over the next 24 hours, each an hour long.
const DAY_START_NS: i64 = 1_796_083_200_000_000_000;

fn node_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("node=node-{i:04}")).join("capture")
}

/// Generates the fleet unless the same one is there.
fn ensure_fleet(root: &Path, nodes: usize, events: u64) -> anyhow::Result<()> {
    let same = (0..nodes).all(|i| {
        Manifest::read(&node_dir(root, i)).is_ok_and(|m| {
            m.format_version == FORMAT_VERSION && m.counters.events_written == events
        })
    }) && !node_dir(root, nodes).exists();
    if same {
        return Ok(());
    }
    if root.exists() {
        std::fs::remove_dir_all(root)
            .with_context(|| format!("cannot remove {}", root.display()))?;
    }
    eprintln!(
        "generating {nodes} nodes x {events} events into {}",
        root.display()
    );
    for i in 0..nodes {
        let shape = Shape {
            node: format!("node-{i:04}"),
            realtime_offset_ns: DAY_START_NS + i as i64 * (24 * HOUR_NS / nodes as i64),
            step_ns: (HOUR_NS as u64) / events.max(1),
            // About one privilege raise per thousand calls.
            raise_every: Some(997),
        };
        generate_shaped(&node_dir(root, i), events, &shape)?;
    }
    Ok(())
}

/// Wall time and the peak of the summed RSS of a process and all its
/// descendants (Spark's JVMs are children of its Python driver).
fn measure_tree(cmd: &mut Command) -> anyhow::Result<(Duration, u64, String)> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let pid = child.id();
    let mut peak = 0;
    // Drain stdout and stderr while polling, so a chatty child never blocks.
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || read_all(out));
    let err = std::thread::spawn(move || read_all(err));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let tree: u64 = descendants(pid)
            .into_iter()
            .chain([pid])
            .map(|p| {
                proc_status(p, "VmRSS:")
                    .and_then(|v| v.parse::<u64>().ok())
                    .map_or(0, |kib| kib * 1024)
            })
            .sum();
        peak = peak.max(tree).max(vm_hwm(pid));
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if !status.success() {
        bail!("{cmd:?} failed: {err}");
    }
    Ok((wall, peak, format!("{out}\n{err}")))
}

fn read_all(mut r: impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// Every process whose ancestry reaches `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(pp) = proc_status(p, "PPid:").and_then(|v| v.parse::<u32>().ok()) {
            parent_of.push((p, pp));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out.remove(0);
    out
}

/// Rows of a CSV answer (header aside).
fn rows(out: &str) -> usize {
    out.lines()
        .filter(|l| !l.is_empty() && !l.starts_with("credtrail-query:"))
        .count()
        .saturating_sub(1)
}

const SPARK: &str = r#"
import sys, time
from pyspark.sql import SparkSession
root, sql_file = sys.argv[1], sys.argv[2]
s = (SparkSession.builder.master("local-cluster[2,1,1024]")
     .config("spark.ui.enabled", "false").appName("credtrail-bench").getOrCreate())
s.sparkContext.setLogLevel("ERROR")
t0 = time.time()
for t in ["events", "user_namespaces"]:
    s.read.option("basePath", root).parquet(f"{root}/node=*/*/{t}/*.parquet").createOrReplaceTempView(t)
n = s.sql(open(sql_file).read()).count()
print(f"rows {n} query_s {time.time() - t0:.2f}")
s.stop()
"#;

/// What every measurement of one fleet needs.
struct Fleet<'a> {
    root: &'a Path,
    nodes: usize,
    /// Segments and manifests in the whole fleet.
    files: usize,
    query: PathBuf,
}

/// One line of the results table.
struct Row<'a> {
    question: &'a str,
    engine: &'a str,
    source: &'a str,
    wall: Duration,
    rss: u64,
    rows: usize,
    captures: String,
    files: String,
}

impl Row<'_> {
    fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} |\n",
            self.question,
            self.engine,
            self.source,
            self.wall.as_secs_f64(),
            mib(self.rss),
            self.rows,
            self.captures,
            self.files
        )
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

pub(crate) fn bench_fleet(root: &Path, nodes: usize, events: u64) -> anyhow::Result<String> {
    ensure_fleet(root, nodes, events)?;
    let here = std::env::current_exe()?;
    let fleet = Fleet {
        root,
        nodes,
        files: fleet_files(root, nodes),
        query: here.with_file_name("credtrail-query"),
    };
    let mut md = summary(&fleet, events);
    let (line, local_rows) = local_all(&fleet)?;
    md += &line;
    let (since_s, until_s) = middle_hour();
    md += &local_hour(&fleet, &since_s, &until_s)?;
    let ship = here.with_file_name("credtrail-ship");
    md += &s3_section(&fleet, &ship, &since_s, &until_s)?;
    let (line, n) = spark(&fleet)?;
    md += &line;
    if n != local_rows {
        bail!("Spark found {n} privilege raises, credtrail-query {local_rows}");
    }
    Ok(md)
}

/// Segments and manifests of every node.
fn fleet_files(root: &Path, nodes: usize) -> usize {
    (0..nodes)
        .map(|i| Manifest::read(&node_dir(root, i)).map_or(0, |m| m.segments.len() + 1))
        .sum()
}

/// The section's opening sentence and the table head.
fn summary(f: &Fleet, events: u64) -> String {
    let (nodes, files) = (f.nodes, f.files);
    let bytes: u64 = (0..nodes)
        .map(|i| Manifest::read(&node_dir(f.root, i)).map_or(0, |m| m.kept_bytes()))
        .sum();
    format!(
        "Fleet: {nodes} simulated nodes, one generated capture each of {events} events (an hour long; starts spread evenly over 24 hours), {} events, {files} files (segments and manifests), {:.0} MiB. One run each.\n\n{TABLE_HEAD}",
        nodes as u64 * events,
        mib(bytes)
    )
}

/// Local folder: the row and the rows found (Spark must find as many).
fn local_all(f: &Fleet) -> anyhow::Result<(String, usize)> {
    let mut c = Command::new(&f.query);
    c.arg(f.root).args(["became-root", "--format", "csv"]);
    let (t, rss, out) = measure_tree(&mut c)?;
    let local_rows = rows(&out);
    let row = Row {
        question: "became-root",
        engine: "credtrail-query",
        source: "local folder",
        wall: t,
        rss,
        rows: local_rows,
        captures: f.nodes.to_string(),
        files: f.files.to_string(),
    };
    Ok((row.markdown(), local_rows))
}

/// One hour in the middle of the day, as RFC 3339 bounds.
fn middle_hour() -> (String, String) {
    let since = DAY_START_NS + 12 * HOUR_NS;
    let rfc = |ns: i64| {
        chrono::DateTime::from_timestamp_nanos(ns)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    (rfc(since), rfc(since + HOUR_NS))
}

/// One hour in the middle of the day: only overlapping captures are read.
fn local_hour(f: &Fleet, since_s: &str, until_s: &str) -> anyhow::Result<String> {
    let (nodes, files) = (f.nodes, f.files);
    let mut c = Command::new(&f.query);
    c.arg(f.root).args([
        "became-root",
        "--format",
        "csv",
        "--since",
        since_s,
        "--until",
        until_s,
    ]);
    let (t, rss, out) = measure_tree(&mut c)?;
    let left_out: usize = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("credtrail-query: ")?
                .split(" of ")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let read = nodes - left_out;
    let per = files / nodes.max(1);
    let row = Row {
        question: &format!("became-root {since_s}..{until_s}"),
        engine: "credtrail-query",
        source: "local folder",
        wall: t,
        rss,
        rows: rows(&out),
        captures: format!("{read} of {nodes}"),
        files: format!("{} of {files}", read * per),
    };
    Ok(row.markdown())
}

/// The same fleet in a local S3 server: shipping it, then both questions.
fn s3_section(f: &Fleet, ship: &Path, since_s: &str, until_s: &str) -> anyhow::Result<String> {
    let nodes = f.nodes;
    let s3 = MotoS3::start("fleet");
    let shipped = ship_fleet(f, ship, &s3)?;
    let mut md = format!(
        "\nShipping: {nodes} `credtrail-ship` runs (one per node, each checking its capture, uploading and checking every object) into moto on 127.0.0.1 took {:.1} s ({:.0} ms a node).\n\n",
        shipped.as_secs_f64(),
        shipped.as_secs_f64() * 1000.0 / nodes.max(1) as f64
    );
    md += TABLE_HEAD;
    md += &s3_row(f, &s3, &["became-root", "--format", "csv"], "became-root")?;
    md += &s3_row(
        f,
        &s3,
        &[
            "became-root",
            "--format",
            "csv",
            "--since",
            since_s,
            "--until",
            until_s,
        ],
        &format!("became-root {since_s}..{until_s}"),
    )?;
    // The S3 server stops here, before Spark runs.
    drop(s3);
    Ok(md)
}

/// Ships every node's capture into `s3`, one run each; the time it took.
fn ship_fleet(f: &Fleet, ship: &Path, s3: &MotoS3) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    for i in 0..f.nodes {
        let mut c = Command::new(ship);
        c.arg(node_dir(f.root, i)).arg("s3://fleet/fleet");
        let o = s3.env(&mut c).output()?;
        if !o.status.success() {
            bail!(
                "credtrail-ship failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    Ok(t0.elapsed())
}

/// One credtrail-query question over the shipped fleet, as a table row.
fn s3_row(f: &Fleet, s3: &MotoS3, args: &[&str], label: &str) -> anyhow::Result<String> {
    let (nodes, files) = (f.nodes, f.files);
    let mut c = Command::new(&f.query);
    c.arg("s3://fleet/fleet").args(args);
    let (t, rss, out) = measure_tree(s3.env(&mut c))?;
    // "s3://…: read N captures (K objects, B bytes); M left out …"
    let note = out
        .lines()
        .find(|l| l.contains(": read "))
        .unwrap_or_default();
    let num = |after: &str| -> usize {
        note.split(after)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(0)
    };
    Ok(format!(
        "| {label} | credtrail-query | S3 (moto) | {:.2} | {:.0} | {} | {} of {nodes} | {} of {files} |\n",
        t.as_secs_f64(),
        mib(rss),
        rows(&out),
        num(": read "),
        num("captures (")
    ))
}

/// Spark over the local folder, docs/spark/became-root.sql: the row and
/// the rows it found.
fn spark(f: &Fleet) -> anyhow::Result<(String, usize)> {
    let nodes = f.nodes;
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/spark/became-root.sql");
    let mut c = Command::new("python3");
    c.args(["-c", SPARK]).arg(f.root).arg(&sql);
    let (t, rss, out) = measure_tree(&mut c)?;
    let line = out
        .lines()
        .find(|l| l.starts_with("rows "))
        .unwrap_or_default();
    let n: usize = line
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let q: f64 = line
        .split(' ')
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let md = format!(
        "| became-root | Spark 4 local-cluster[2,1,1024] | local folder | {:.2} (query alone {q:.2}) | {:.0} (driver and executors) | {n} | {nodes} | all |\n",
        t.as_secs_f64(),
        mib(rss)
    );
    Ok((md, n))
}
