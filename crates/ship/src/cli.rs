//! The `credtrail-ship` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use credtrail_capture::sign;
use credtrail_cli::LogFormat;
use credtrail_cli::term::safe;

use crate::follow;
use crate::store::Remote;
use crate::upload::{self, Options, Report};

/// Ship sealed captures to object storage (S3 or S3-compatible), under the
/// fleet layout PREFIX/node=<node>/<capture folder>/. Each capture is
/// checked first (every file's size and sha256, the hash chain, the
/// signature with --pubkey); each object is checked after upload; objects
/// already there with the same sha256 are skipped, so an interrupted
/// shipment is resumed by running the same command again. Local data is
/// kept unless --remove-local.
#[derive(Parser, Debug)]
#[command(
    name = "credtrail-ship",
    version,
    after_help = "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN), AWS_REGION, web identity (EKS), container or instance metadata; AWS_PROFILE files are not read.\n\nExamples:\n  credtrail-ship /var/lib/credtrail/node=n1/20261202T181502Z s3://evidence/fleet\n  credtrail-ship --follow RUNNING_CAPTURE s3://evidence/fleet --endpoint http://127.0.0.1:9000\n  credtrail-ship --follow /var/lib/credtrail/incidents s3://evidence/fleet"
)]
pub struct Cli {
    /// The capture folder to ship; with --follow, also a folder of
    /// captures in the fleet layout (ROOT/node=<node>/<capture>, e.g. a
    /// recorder's --cut-root), whose sealed captures are shipped as they
    /// appear until SIGTERM or Ctrl-C.
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,
    /// Destination: s3://bucket/prefix (the fleet root).
    #[arg(value_name = "URL")]
    pub to: String,
    /// S3-compatible endpoint (http:// allowed only when given so);
    /// default $AWS_ENDPOINT_URL, else AWS.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Check manifest.json.sig against this ed25519 public key first.
    #[arg(long, value_name = "PUBLIC_KEY_PEM")]
    pub pubkey: Option<PathBuf>,
    /// Keep shipping a running capture: each segment as it is sealed, the
    /// manifest as it changes, until the recorder stops.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: how often to look at the manifest (or the folder).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 2.0,
        requires = "follow"
    )]
    pub interval: f64,
    /// Delete each local capture once all of it is shipped and checked.
    #[arg(long)]
    pub remove_local: bool,
    /// How log lines on stderr look: `human`, or `json` (one object per line).
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

impl credtrail_cli::Tool for Cli {
    const PROGRAM: &'static str = "credtrail-ship";

    fn log_format(&self) -> LogFormat {
        self.log_format
    }

    fn run(self, out: &mut dyn Write, _err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        run(self, out)?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Ships the capture; one line on `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    let remote = Remote::open(&cli.to, cli.endpoint.as_deref())?;
    let key = cli
        .pubkey
        .as_deref()
        .map(sign::load_verifying_key)
        .transpose()?;
    if !(cli.interval > 0.0 && cli.interval <= 3600.0) {
        anyhow::bail!(
            "--interval {} is not between 0 and 3600 seconds",
            cli.interval
        );
    }
    let opts = Options {
        key: key.as_ref(),
        follow: cli.follow.then(|| Duration::from_secs_f64(cli.interval)),
        remove_local: cli.remove_local,
    };
    let dir = &cli.capture;
    if let (Some(every), true) = (opts.follow, follow::is_root(dir)) {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
        }
        return follow::follow_root(dir, &remote, opts, every, &stop, out, |d, r| {
            safe(&shipped_line(d, r)).into_owned()
        });
    }
    let r = upload::ship(dir, &remote, opts)?;
    writeln!(out, "{}", safe(&shipped_line(dir, &r)))?;
    Ok(())
}

/// One line on a shipped capture.
fn shipped_line(dir: &Path, r: &Report) -> String {
    format!(
        "{} -> {}: {} objects uploaded ({} bytes), {} already there; every object checked{}",
        dir.display(),
        r.url,
        r.uploaded,
        r.uploaded_bytes,
        r.skipped,
        if r.removed_local {
            "; local copy removed"
        } else {
            ""
        }
    )
}
