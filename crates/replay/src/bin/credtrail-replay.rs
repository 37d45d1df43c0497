//! credtrail-replay: captures back through the recorder's enrichment and printers.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use credtrail_core::budget::{self, Budgeted};
use credtrail_replay::{Cli, run};

#[global_allocator]
static ALLOC: Budgeted = Budgeted;

fn main() -> ExitCode {
    credtrail_core::host::main("credtrail-replay", "warn", || {
        let cli = Cli::parse();
        budget::set_limit(
            "credtrail-replay",
            cli.memory_limit.unwrap_or_else(budget::default_limit),
            "replay fewer captures at once",
        );
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
