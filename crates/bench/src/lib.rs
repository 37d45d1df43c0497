//! credtrail-bench: measured comparisons, written into BENCHMARKS.md.
//!
//! `credtrail-bench query` generates a capture of N synthetic events (through
//! the recorder's own capture writer, so the files are exactly what a real
//! capture holds), then times credtrail-query and DuckDB (from PyPI) on the
//! same Parquet files, alternating runs so both see the same machine state.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod command;
mod detect;
mod fair;
mod fleet;
mod flight;
mod incidents;
mod measure;
mod overhead;
mod policy;
mod query;
mod replay;
mod soak;
mod system;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use crate::query::{bench_query, ensure_capture};

/// Run credtrail's benchmarks and write their tables into BENCHMARKS.md.
#[derive(Parser, Debug)]
#[command(name = "credtrail-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// credtrail-query vs DuckDB over a generated capture.
    Query {
        /// Events in the generated capture.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Timed runs per query and tool.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Where the generated capture lives (reused when present).
        #[arg(long, default_value = "/var/tmp/credtrail-bench/query-capture")]
        dir: PathBuf,
        /// Markdown file whose `query` section is replaced with the results.
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// Only write the generated capture `query` measures (reused when it
    /// already holds EVENTS events of this format).
    Generate {
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        #[arg(long)]
        dir: PathBuf,
    },
    /// credtrail-replay over a capture in every print format and
    /// --verify, beside another build of it when --baseline names one.
    Replay {
        /// The capture replayed (a real recording: a generated one's
        /// enrichment is made up and fails --verify).
        #[arg(long)]
        capture: PathBuf,
        /// Another credtrail-replay binary, timed alternately with this one.
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// A fleet of simulated nodes: became-root with credtrail-query (local
    /// folder and a local S3 server) and Spark, and a one-hour time range.
    Fleet {
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Events per node.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/fleet")]
        dir: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// credtrail vs auditd vs bpftrace (root): syscall overhead, flat-out
    /// throughput and loss, recorder CPU and memory, capture size, replay.
    System {
        /// Rounds of the overhead measurement.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Length of each flat-out storm.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// Only the per-call overhead table of `system` (root).
    Overhead {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// `credtrail-record -- COMMAND` as a CI step: start-up to exit, and
    /// credential calls inside a one-command recording (root).
    Command {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// The detector's sweep over 1,000 and 10,000 extra tasks (root).
    Sweep {
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// What --policy costs and saves: a host storm under the guide's
    /// policy, no policy and a keep-everything policy (root).
    Policy {
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// A flood beside a quiet process (root): what fairness and folding
    /// keep of each, per process.
    Fair {
        /// Length of each flat-out storm.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// The recorder for MINUTES under a storm plus fork/exec churn (root).
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Storm calls per second per thread (2 threads).
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// The flight recorder (root): idle CPU per hour and memory, and the
    /// time to cut the last WINDOW seconds while it records under load.
    Flight {
        #[arg(long, default_value_t = 300)]
        idle_seconds: u64,
        #[arg(long, default_value_t = 600)]
        window_seconds: u64,
        /// Storm calls per second during the window (1 thread).
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// The recorder watched (root): CPU per Prometheus scrape of
    /// --metrics-addr, and the time from a --cut-on trigger to a sealed,
    /// verified cut.
    Incidents {
        /// Back to back: CPU time is counted in 10 ms ticks.
        #[arg(long, default_value_t = 5000)]
        scrapes: u32,
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
    /// Everything: system, query, the flight recorder, then the soak (0
    /// minutes skips it).
    All {
        #[arg(long, default_value_t = 30)]
        soak_minutes: u64,
        #[arg(long, default_value = "/var/tmp/credtrail-bench/system")]
        work: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
    },
}

fn system(runs: usize, seconds: u64, work: &Path, markdown: &Path) -> anyhow::Result<()> {
    let t = system::Tools::new(work)?;
    replace_section(markdown, "machine", &system::machine())?;
    let md = overhead::overhead(&t, runs)?;
    println!("{md}");
    replace_section(markdown, "overhead", &md)?;
    let (md, _) = system::throughput(&t, seconds)?;
    println!("{md}");
    replace_section(markdown, "throughput", &md)?;
    let md = system::size_and_replay(&t)?;
    println!("{md}");
    replace_section(markdown, "size", &md)?;
    let md = detect::sweep(&t)?;
    println!("{md}");
    replace_section(markdown, "sweep", &md)?;
    let md = policy::policy(&t, 3, 10)?;
    println!("{md}");
    replace_section(markdown, "policy", &md)?;
    let md = fair::fair(&t, seconds)?;
    println!("{md}");
    replace_section(markdown, "fair", &md)
}

fn soak(minutes: u64, rate: u64, work: &Path, markdown: &Path) -> anyhow::Result<()> {
    let t = system::Tools::new(work)?;
    let md = soak::soak(&t, minutes, rate)?;
    println!("{md}");
    replace_section(markdown, "soak", &md)
}

/// The binary: each benchmark prints its table on stdout and writes it
/// into the markdown file; progress on stderr.
impl credtrail_cli::Tool for Cli {
    const PROGRAM: &'static str = "credtrail-bench";

    fn run(
        self,
        _out: &mut dyn std::io::Write,
        _err: &mut dyn std::io::Write,
    ) -> anyhow::Result<ExitCode> {
        run(self)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Bench::Query {
            events,
            runs,
            dir,
            markdown,
        } => query(events, runs, &dir, &markdown),
        Bench::Generate { events, dir } => ensure_capture(&dir, events),
        Bench::Replay {
            capture,
            baseline,
            runs,
            markdown,
        } => replay(&capture, baseline.as_deref(), runs, &markdown),
        Bench::Fleet {
            nodes,
            events,
            dir,
            markdown,
        } => fleet(nodes, events, &dir, &markdown),
        Bench::System {
            runs,
            seconds,
            work,
            markdown,
        } => system(runs, seconds, &work, &markdown),
        Bench::Overhead {
            runs,
            work,
            markdown,
        } => overhead(runs, &work, &markdown),
        Bench::Command {
            runs,
            work,
            markdown,
        } => on_tools(&work, &markdown, "command", |t| command::command(t, runs)),
        Bench::Sweep { work, markdown } => on_tools(&work, &markdown, "sweep", detect::sweep),
        Bench::Policy {
            runs,
            seconds,
            work,
            markdown,
        } => on_tools(&work, &markdown, "policy", |t| {
            policy::policy(t, runs, seconds)
        }),
        Bench::Fair {
            seconds,
            work,
            markdown,
        } => on_tools(&work, &markdown, "fair", |t| fair::fair(t, seconds)),
        Bench::Soak {
            minutes,
            rate,
            work,
            markdown,
        } => soak(minutes, rate, &work, &markdown),
        Bench::Flight {
            idle_seconds,
            window_seconds,
            rate,
            work,
            markdown,
        } => on_tools(&work, &markdown, "flight", |t| {
            flight::flight(t, idle_seconds, window_seconds, rate)
        }),
        Bench::Incidents {
            scrapes,
            rounds,
            work,
            markdown,
        } => on_tools(&work, &markdown, "incidents", |t| {
            incidents::incidents(t, scrapes, rounds)
        }),
        Bench::All {
            soak_minutes,
            work,
            markdown,
        } => all(soak_minutes, &work, &markdown),
    }
}

/// A benchmark on this machine's tools (under `work`), published as `name`.
fn on_tools(
    work: &Path,
    markdown: &Path,
    name: &str,
    bench: impl FnOnce(&system::Tools) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let md = bench(&system::Tools::new(work)?)?;
    publish(markdown, name, &md)
}

fn fleet(nodes: usize, events: u64, dir: &Path, markdown: &Path) -> anyhow::Result<()> {
    publish(markdown, "fleet", &fleet::bench_fleet(dir, nodes, events)?)
}

/// Prints a section on stdout and writes it into the markdown file.
fn publish(markdown: &Path, name: &str, md: &str) -> anyhow::Result<()> {
    println!("{md}");
    replace_section(markdown, name, md)
}

fn query(events: u64, runs: usize, dir: &Path, markdown: &Path) -> anyhow::Result<()> {
    ensure_capture(dir, events)?;
    publish(markdown, "query", &bench_query(dir, runs)?)
}

fn replay(
    capture: &Path,
    baseline: Option<&Path>,
    runs: usize,
    markdown: &Path,
) -> anyhow::Result<()> {
    let here = std::env::current_exe()?;
    let section = replay::bench_replay(
        &here.with_file_name("credtrail-replay"),
        baseline,
        capture,
        runs,
    )?;
    publish(markdown, "replay", &section)
}

fn overhead(runs: usize, work: &Path, markdown: &Path) -> anyhow::Result<()> {
    let t = system::Tools::new(work)?;
    replace_section(markdown, "machine", &system::machine())?;
    publish(markdown, "overhead", &overhead::overhead(&t, runs)?)
}

/// `all`: system, query, the flight recorder, incidents, then the soak.
fn all(soak_minutes: u64, work: &Path, markdown: &Path) -> anyhow::Result<()> {
    system(5, 30, work, markdown)?;
    let dir = PathBuf::from("/var/tmp/credtrail-bench/query-capture");
    ensure_capture(&dir, 10_000_000)?;
    let section = bench_query(&dir, 3)?;
    replace_section(markdown, "query", &section)?;
    let md = flight::flight(&system::Tools::new(work)?, 300, 600, 1000)?;
    replace_section(markdown, "flight", &md)?;
    let md = incidents::incidents(&system::Tools::new(work)?, 5000, 5)?;
    replace_section(markdown, "incidents", &md)?;
    if soak_minutes > 0 {
        soak(soak_minutes, 5000, work, markdown)?;
    }
    Ok(())
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn replace_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (b, e) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let (Some(i), Some(j)) = (text.find(&b), text.find(&e)) else {
        bail!("{} has no {b} ... {e} section", path.display());
    };
    let new = format!("{}{b}\n{body}{}", &text[..i], &text[j..]);
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}
