//! credtrail-replay: a capture back through the recorder's own enrichment
//! and printers (the engine is `credtrail_pipeline::playback`), into a printer
//! or a re-enriched copy; or `--verify`.

mod verify;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use credtrail_capture::sign;
use credtrail_capture::{Capture, CaptureWriter, EVENTS, LIFECYCLE, Rotation};
use credtrail_cli::Tool;
use credtrail_cli::progress::Progress;
use credtrail_pipeline::playback::{open, run_with_policy};
use credtrail_pipeline::policy::Rules;
use credtrail_pipeline::print::{PrintFormat, inspect};
use credtrail_pipeline::sink::{CaptureSink, Counts, Printer};
use credtrail_pipeline::sink::{Counted, Counting};

pub use verify::{Expect, Verification, verify};

/// Re-render captures through the same enrichment and printers as the live
/// recorder, deterministically; or verify them.
#[derive(Parser, Debug)]
#[command(name = "credtrail-replay", version)]
pub struct Cli {
    /// Capture directories, replayed one after the other; or captures in
    /// object storage (s3://bucket/prefix/node=N/CAPTURE), fetched first.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<std::path::PathBuf>,
    /// S3-compatible endpoint for s3:// captures (default $AWS_ENDPOINT_URL, else AWS).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Most memory to use (`512M`, `4G`); past it, stop with one line.
    /// Default: half the machine's memory, or 80% of its cgroup's limit.
    #[arg(long, value_name = "SIZE", value_parser = credtrail_cli::budget::parse_size)]
    pub memory_limit: Option<u64>,
    /// How to print events (default json, unless --out is given).
    #[arg(long, value_enum)]
    pub print: Option<PrintFormat>,
    /// Write a re-enriched copy of the (single) capture into this new directory.
    #[arg(long, value_name = "NEW_CAPTURE", conflicts_with = "verify")]
    pub out: Option<std::path::PathBuf>,
    /// Check every segment's checksum and recompute the enriched columns;
    /// exit non-zero on any mismatch.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: also check `manifest.json.sig` against this ed25519
    /// public key (PEM).
    #[arg(long, value_name = "PUBLIC_KEY_PEM", requires = "verify")]
    pub pubkey: Option<std::path::PathBuf>,
    /// With --verify: the chain head the recorder printed when it finished;
    /// a manifest rewritten with a recomputed chain then no longer matches.
    #[arg(long, value_name = "SHA256", requires = "verify")]
    pub expect_head: Option<String>,
    /// Keep only the events these Tetragon TracingPolicy files keep, exactly
    /// as `credtrail-record --policy` would have (repeatable; see
    /// docs/policies.md). Lifecycle rows are kept.
    #[arg(long, value_name = "FILE", conflicts_with = "verify")]
    pub policy: Vec<std::path::PathBuf>,
    /// Apply the policies even where they use what credtrail cannot
    /// honour (each ignored, listed on stderr).
    #[arg(long, requires = "policy")]
    pub policy_warn: bool,
    /// The same bytes for the same behaviour on any machine and in any run
    /// (for golden files; `--print json` or `compact`): rows grouped by
    /// process and thread, ids renumbered, times, hosts and temporary
    /// directories left out or normalized (docs/ci.md).
    #[arg(long, conflicts_with_all = ["verify", "out"])]
    pub stable: bool,
    /// Print each capture's manifest summary (counters, losses, recovery,
    /// chain head, segments) on stderr and its events as stored, without
    /// enrichment, on stdout (`--print`, default compact); as
    /// `credtrail-record inspect`, with no root needed.
    #[arg(long, conflicts_with_all = ["verify", "out", "stable", "policy", "recover"])]
    pub inspect: bool,
    /// Seal captures whose recorder died (kill -9, OOM, power loss), in
    /// place: each open segment cut back to its last checkpoint and listed
    /// in the manifest; as `credtrail-record recover`, with no root
    /// needed. Local capture folders only.
    #[arg(long, conflicts_with_all = ["verify", "out", "stable", "policy", "print"])]
    pub recover: bool,
    /// With --recover: re-sign the manifest with this ed25519 key
    /// (PKCS#8 PEM).
    #[arg(long, value_name = "KEY_PEM", requires = "recover")]
    pub sign_key: Option<std::path::PathBuf>,
}

/// Replays one capture: prints events in `format` to `out`, and/or writes a
/// re-enriched copy to `new_capture`. Stops early once the reader of the
/// printed events goes away (`| head`) and nothing else is being written.
pub fn replay(
    cap: &Capture,
    print: Option<(PrintFormat, &mut dyn Write)>,
    new_capture: Option<&Path>,
    policy: Option<&Rules>,
) -> anyhow::Result<Counts> {
    let printer = print.map(|(format, out)| Printer::new(format, out));
    replay_to(cap, printer, new_capture, policy)
}

/// [`replay`] into a printer of the caller's making ([`Printer::stable`]).
pub fn replay_to(
    cap: &Capture,
    printer: Option<Printer<'_>>,
    new_capture: Option<&Path>,
    policy: Option<&Rules>,
) -> anyhow::Result<Counts> {
    let inputs = open(cap)?;
    let writer = match new_capture {
        Some(dir) => {
            let mut w = CaptureWriter::create(dir, cap.manifest.clone(), Rotation::default())?;
            w.write_processes(&inputs.procs)?;
            Some(w)
        }
        None => None,
    };
    // A copy being written is long work with nothing else on the terminal.
    let progress = match &writer {
        Some(_) => Progress::bar(
            &format!("replaying {}", cap.dir.display()),
            cap.manifest.rows_in(EVENTS) + cap.manifest.rows_in(LIFECYCLE),
            false,
        ),
        None => Progress::hidden(),
    };
    let mut sink = CaptureSink::new(writer, printer);
    let mut counted = Counted::new(Counting(&progress), &mut sink);
    run_with_policy(cap, inputs, policy, &mut counted)?;
    drop(progress);
    sink.flush()?;
    if let Some(e) = sink.write_error.take() {
        return Err(e.into());
    }
    if let Some(mut w) = sink.writer.take() {
        w.set_counters(cap.manifest.counters.clone());
        let end = cap
            .manifest
            .end
            .clone()
            .unwrap_or_else(|| cap.manifest.start.clone());
        w.finish(end)?;
    }
    Ok(sink.counts)
}

/// The binary: the memory budget, buffered output, exit status 1 when
/// something did not verify.
impl Tool for Cli {
    const PROGRAM: &'static str = "credtrail-replay";

    fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        credtrail_cli::budget::set_limit(
            Self::PROGRAM,
            self.memory_limit
                .unwrap_or_else(credtrail_cli::budget::default_limit),
            "replay fewer captures at once",
        );
        let mut out = std::io::BufWriter::new(out);
        let ok = run(self, &mut out, err)?;
        out.flush()?;
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// The `credtrail-replay` command: returns whether everything verified.
pub fn run(cli: Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> anyhow::Result<bool> {
    if cli.recover {
        for dir in &cli.captures {
            if dir.to_str().is_some_and(|d| d.starts_with("s3://")) {
                anyhow::bail!(
                    "--recover seals a capture folder on this machine in place; {} is in object storage (credtrail-ship ships only sealed captures): give the folder the recorder wrote",
                    dir.display()
                );
            }
        }
        for dir in &cli.captures {
            inspect::recover(<Cli as Tool>::PROGRAM, dir, cli.sign_key.as_deref(), stderr)?;
        }
        return Ok(true);
    }
    // --verify fetches every object under a capture's folder, listed or
    // not, so that it can say which ones the manifest does not list.
    let prune = credtrail_ship::fetch::Prune {
        everything: cli.verify,
        ..Default::default()
    };
    let local = credtrail_ship::localize::localize(&cli.captures, cli.endpoint.as_deref(), &prune)?;
    if cli.verify {
        let key = cli
            .pubkey
            .as_deref()
            .map(sign::load_verifying_key)
            .transpose()?;
        let expect = Expect {
            key: key.as_ref(),
            head: cli.expect_head.as_deref(),
        };
        return verify::verify_all(&local, expect, stdout, stderr);
    }
    if cli.inspect {
        for dir in &local.paths {
            let print = cli.print.unwrap_or(PrintFormat::Compact);
            inspect::inspect(dir, print, stdout, stderr)?;
        }
        return Ok(true);
    }
    let policy = if cli.policy.is_empty() {
        None
    } else {
        let rules = Rules::load(&cli.policy, cli.policy_warn)?;
        for line in &rules.ignored {
            tracing::warn!("policy: {line}");
        }
        Some(rules)
    };
    if cli.out.is_some() && local.paths.len() != 1 {
        anyhow::bail!("--out takes exactly one capture to re-enrich");
    }
    let format = match (cli.print, &cli.out) {
        (Some(f), _) => Some(f),
        (None, None) => Some(PrintFormat::Json),
        (None, Some(_)) => None,
    };
    for dir in &local.paths {
        let cap = Capture::open(dir)?;
        let out = &mut *stdout as &mut dyn Write;
        let printer = match format {
            Some(f) if cli.stable => Some(Printer::stable(f, out)?),
            Some(f) => Some(Printer::new(f, out)),
            None => None,
        };
        replay_to(&cap, printer, cli.out.as_deref(), policy.as_ref()).with_context(|| {
            format!(
                "replaying {}",
                local
                    .url_of(dir)
                    .map_or_else(|| dir.display().to_string(), str::to_owned)
            )
        })?;
    }
    stdout.flush()?;
    Ok(true)
}
