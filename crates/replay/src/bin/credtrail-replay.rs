//! credtrail-replay: captures back through the recorder's enrichment and printers.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use credtrail_replay::{Cli, run};

fn main() -> ExitCode {
    credtrail_core::host::main("credtrail-replay", "warn", || {
        let cli = Cli::parse();
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let ok = run(cli, &mut out, &mut std::io::stderr())?;
        out.flush()?;
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
