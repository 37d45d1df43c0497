//! credtrail-ship: sealed captures to object storage.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use credtrail_ship::cli::{Cli, run};

fn main() -> ExitCode {
    credtrail_core::host::main("credtrail-ship", "warn", || {
        let cli = Cli::parse();
        let mut out = std::io::stdout().lock();
        run(cli, &mut out)?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}
