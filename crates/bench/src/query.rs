//! `credtrail-bench query`: credtrail-query against DuckDB over a large
//! generated capture, the same rows checked first.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use credtrail_capture::manifest::{self, Manifest};
use credtrail_capture::model::{ContainerRow, Event, Syscall};
use credtrail_capture::{CaptureWriter, Rotation};

use crate::measure::{measure, stats};

/// A small deterministic generator (xorshift), so every run builds the same capture.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Reuses the generated capture only when today's writer would write the
/// same: same format version, same number of events.
pub(crate) fn ensure_capture(dir: &Path, n: u64) -> anyhow::Result<()> {
    if let Ok(m) = Manifest::read(dir) {
        if m.format_version == manifest::FORMAT_VERSION && m.counters.events_written == n {
            return Ok(());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    generate(dir, n)
}

/// How a generated capture is laid out in time and who becomes root.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub node: String,
    /// Wall clock at boot-clock 0, ns: when the capture's first event is
    /// (plus one second).
    pub realtime_offset_ns: i64,
    /// Boot-clock ns between events.
    pub step_ns: u64,
    /// Every this many events a setuid(0) from uid 1000 that succeeds (a
    /// host privilege raise), if any.
    pub raise_every: Option<u64>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            node: "bench-node".into(),
            realtime_offset_ns: 1_764_000_000_000_000_000,
            step_ns: 1_000,
            raise_every: None,
        }
    }
}

/// Writes `n` synthetic events: 2,000 processes of 40 binaries in 60 pods on
/// one node, a realistic mix of syscalls and 3% refused calls.
fn generate(dir: &Path, n: u64) -> anyhow::Result<()> {
    eprintln!("generating {n} events into {}", dir.display());
    generate_shaped(dir, n, &Shape::default())
}

/// [`generate`] as `shape` says.
pub(crate) fn generate_shaped(dir: &Path, n: u64, shape: &Shape) -> anyhow::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut m = Manifest::new(&shape.node, shape.realtime_offset_ns, 1_000_000_000);
    m.kernel_release = "synthetic".into();
    m.boot_id = "synthetic".into();
    let mut w = CaptureWriter::create(dir, m.clone(), Rotation::default())?;
    w.write_processes(&[])?;
    let pods: Vec<(String, String)> = (0..60)
        .map(|i| {
            (
                format!("{:064x}", 0xc0ffee_u64 * (i + 1)),
                format!("app-{i}"),
            )
        })
        .collect();
    for (i, (id, name)) in pods.iter().enumerate() {
        w.push_container(&ContainerRow {
            first_seen_ktime_ns: 1_000_000_000 + i as u64,
            container_id: id.clone(),
            runtime: "containerd".into(),
            pod_namespace: Some("default".into()),
            pod_name: Some(name.clone()),
            container_name: Some("main".into()),
            ..ContainerRow::default()
        })?;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ev = Event {
        node_name: shape.node.clone(),
        comm: "worker".into(),
        ..Event::default()
    };
    for i in 0..n {
        let pid = 1000 + rng.below(2000) as u32;
        let pod = &pods[(pid % 60) as usize];
        ev.ktime_ns = 1_000_000_000 + i * shape.step_ns;
        ev.time = m.realtime_offset_ns + ev.ktime_ns as i64;
        ev.seq = i + 1;
        ev.pid = pid;
        ev.tid = pid;
        ev.ppid = 1;
        // The ten hooked calls (not execve), as the recorder names them.
        ev.syscall = Syscall::ALL[rng.below(10) as usize].name().into();
        let uid = 1000 + rng.below(50) as u32;
        ev.arg0 = uid as i64;
        ev.arg1 = -1;
        ev.ret = if rng.below(100) < 3 { -1 } else { 0 };
        ev.old_uid = uid;
        // setfsuid/setfsgid report a refusal only as an unchanged id.
        ev.new_fsuid = if ev.ret == 0 { uid } else { 0 };
        ev.new_fsgid = ev.new_fsuid;
        ev.old_euid = if rng.below(20) == 0 { 1000 } else { 0 };
        ev.new_euid = if ev.ret == 0 { uid } else { ev.old_euid };
        ev.old_cap_effective = 0x1ff_ffff_ffff;
        ev.new_cap_effective = if ev.new_euid == 0 { 0x1ff_ffff_ffff } else { 0 };
        if shape.raise_every.is_some_and(|k| i % k == k - 1) {
            ev.syscall = Syscall::Setuid.name().into();
            (ev.arg0, ev.ret, ev.old_uid, ev.old_euid, ev.old_fsuid) = (0, 0, 1000, 1000, 1000);
            (ev.new_uid, ev.new_euid, ev.new_fsuid) = (0, 0, 0);
        } else {
            (ev.old_fsuid, ev.new_uid) = (0, 0);
        }
        ev.changed = ev.old_euid != ev.new_euid;
        ev.binary = Some(format!("/usr/bin/tool-{}", pid % 40));
        ev.exec_id = Some(format!("exec-{pid}"));
        ev.container_id = Some(pod.0.clone());
        ev.pod_namespace = Some("default".into());
        ev.pod_name = Some(pod.1.clone());
        w.push(&ev)?;
        if i % 1_000_000 == 999_999 {
            w.tick()?;
        }
    }
    let end = manifest::Instant::at(1_000_000_000 + n * shape.step_ns, shape.realtime_offset_ns);
    w.finish(end)?;
    Ok(())
}

/// A timing means nothing if the tools disagree: both must print the same
/// rows (credtrail-query's CSV header aside), in the same order.
fn same_rows(name: &str, ours: &mut Command, theirs: &mut Command) -> anyhow::Result<()> {
    let run = |c: &mut Command| -> anyhow::Result<Vec<String>> {
        let out = c.output().with_context(|| format!("cannot run {c:?}"))?;
        if !out.status.success() {
            bail!("{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    };
    let a = run(ours)?;
    let b = run(theirs)?;
    if a.get(1..) != Some(&b[..]) {
        bail!(
            "{name}: credtrail-query and DuckDB disagree ({} vs {} rows; first: {:?} vs {:?})",
            a.len().saturating_sub(1),
            b.len(),
            a.get(1),
            b.first()
        );
    }
    eprintln!("{name}: both tools print the same {} rows", b.len());
    Ok(())
}

pub(crate) fn bench_query(dir: &Path, runs: usize) -> anyhow::Result<String> {
    let here = std::env::current_exe()?;
    let query = here.with_file_name("credtrail-query");
    let glob = format!("{}/events/*.parquet", dir.display());
    let sql = "SELECT syscall, pod_name, count(*) AS n, count(DISTINCT pid) AS pids FROM events GROUP BY syscall, pod_name ORDER BY n DESC, syscall, pod_name";
    // DuckDB's equivalent of `summary` (crates/query/src/questions.rs):
    // the same result rule (setfsuid/setfsgid refusals included), pod label
    // and order, so both tools must print the same rows (checked below).
    let summary_sql = "SELECT node_name, syscall, CASE WHEN ret < 0 OR (arg0 <> -1 AND ((syscall = 'setfsuid' AND new_fsuid <> arg0) OR (syscall = 'setfsgid' AND new_fsgid <> arg0))) THEN 'failed' ELSE 'ok' END AS result, CASE WHEN pod_name IS NOT NULL THEN concat_ws('/', pod_namespace, pod_name) ELSE substr(container_id, 1, 12) END AS pod, \"binary\", count(*) AS events, count(DISTINCT pid) AS processes FROM events GROUP BY ALL ORDER BY events DESC, node_name, syscall, result, pod, \"binary\" NULLS LAST";
    // Prints the rows as CSV without a header, nulls empty, as polars does.
    // No progress bar: on a slow first run DuckDB drew one into the output
    // the rows are compared by.
    let duck = |q: &str| {
        let script = format!(
            "import duckdb\ncon = duckdb.connect()\ncon.execute(\"SET enable_progress_bar = false\")\ncon.execute(\"CREATE VIEW events AS SELECT * FROM read_parquet('{glob}')\")\nrows = con.execute(\"\"\"{q}\"\"\").fetchall()\nprint('\\n'.join(','.join('' if v is None else str(v) for v in r) for r in rows))\n"
        );
        let mut c = Command::new("python3");
        c.args(["-c", &script]);
        c
    };
    let cases: Vec<(&str, Command, Command)> = vec![
        (
            "summary",
            {
                let mut c = Command::new(&query);
                c.arg(dir).args(["summary", "--format", "csv"]);
                c
            },
            duck(summary_sql),
        ),
        (
            "group-by SQL",
            {
                let mut c = Command::new(&query);
                c.arg(dir).args(["--sql", sql, "--format", "csv"]);
                c
            },
            duck(sql),
        ),
    ];
    let m = Manifest::read(dir)?;
    let events = m.counters.events_written;
    let bytes: u64 = m.segments_of("events").map(|s| s.bytes).sum();
    let mut md = format!(
        "Capture: {events} synthetic events in {} events segments, {:.1} MiB on disk ({:.2} bytes/event). {runs} runs each, alternating tools; wall time of the whole process (DuckDB's includes starting Python, ~0.1 s).\n\n| query | tool | min s | median s | max s | peak RSS MiB | median ratio credtrail/DuckDB |\n|---|---|---|---|---|---|---|\n",
        m.segments_of("events").count(),
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / events.max(1) as f64
    );
    for (name, mut ours, mut theirs) in cases {
        same_rows(name, &mut ours, &mut theirs)?;
        let (mut a, mut b, mut ra, mut rb) = (Vec::new(), Vec::new(), 0u64, 0u64);
        for _ in 0..runs {
            let (t, r) = measure(&mut ours)?;
            a.push(t.as_secs_f64());
            ra = ra.max(r);
            let (t, r) = measure(&mut theirs)?;
            b.push(t.as_secs_f64());
            rb = rb.max(r);
        }
        let (amin, amed, amax) = stats(a);
        let (bmin, bmed, bmax) = stats(b);
        md += &format!(
            "| {name} | credtrail-query | {amin:.2} | {amed:.2} | {amax:.2} | {:.0} | {:.2} |\n| {name} | DuckDB | {bmin:.2} | {bmed:.2} | {bmax:.2} | {:.0} | |\n",
            ra as f64 / (1 << 20) as f64,
            amed / bmed,
            rb as f64 / (1 << 20) as f64,
        );
    }
    md += &bench_report(&query, dir, runs)?;
    Ok(md)
}

/// `credtrail-query report` over the same capture: its time, peak memory
/// and the page's size. The page aggregates (lanes × time slices, the
/// first rows of each finding), so its size must not grow with the events.
fn bench_report(query: &Path, dir: &Path, runs: usize) -> anyhow::Result<String> {
    let page = dir.with_extension("report.html");
    let (mut times, mut peak) = (Vec::new(), 0u64);
    for _ in 0..runs {
        let mut c = Command::new(query);
        c.arg(dir).arg("report").arg("--out").arg(&page);
        let (t, r) = measure(&mut c)?;
        times.push(t.as_secs_f64());
        peak = peak.max(r);
    }
    let bytes = std::fs::metadata(&page)
        .with_context(|| format!("the report {} was not written", page.display()))?
        .len();
    let (min, med, max) = stats(times);
    Ok(format!(
        "\n`report` (the HTML page: timeline, process trees, findings) over the same capture: {min:.2} / {med:.2} / {max:.2} s (min / median / max), peak RSS {:.0} MiB, page {:.0} KiB.\n",
        peak as f64 / (1 << 20) as f64,
        bytes as f64 / 1024.0
    ))
}
