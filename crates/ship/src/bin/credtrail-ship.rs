//! credtrail-ship: sealed captures to object storage.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use credtrail_ship::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    credtrail_cli::main_logged("credtrail-ship", "warn", cli.log_format, || {
        let mut out = std::io::stdout().lock();
        run(cli, &mut out)?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}
