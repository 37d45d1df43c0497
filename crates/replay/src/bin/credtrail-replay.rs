//! credtrail-replay: captures back through the recorder's enrichment and printers.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use credtrail_cli::budget::{self, Budgeted};
use credtrail_replay::{Cli, run};
use mimalloc::MiMalloc;

/// mimalloc under the budget: replay makes and frees a dozen strings per
/// event, and glibc's malloc and free were a fifth of its time (measured,
/// 1.6 M-event capture: compact 4.1 -> 3.0 s, `--verify` 3.3 -> 2.3 s).
/// credtrail-query keeps glibc's: its column scans ran slower on mimalloc
/// (`caps` over 10 M events 3.8 -> 4.8 s).
#[global_allocator]
static ALLOC: Budgeted<MiMalloc> = Budgeted(MiMalloc);

fn main() -> ExitCode {
    credtrail_cli::main("credtrail-replay", "warn", || {
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
