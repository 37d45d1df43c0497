//! credtrail-replay: captures back through the recorder's enrichment and printers.

use credtrail_cli::budget::Budgeted;
use mimalloc::MiMalloc;

/// mimalloc under the budget: replay makes and frees a dozen strings per
/// event, and glibc's malloc and free were a fifth of its time (measured,
/// 1.6 M-event capture: compact 4.1 -> 3.0 s, `--verify` 3.3 -> 2.3 s).
/// credtrail-query keeps glibc's: its column scans ran slower on mimalloc
/// (`caps` over 10 M events 3.8 -> 4.8 s).
#[global_allocator]
static ALLOC: Budgeted<MiMalloc> = Budgeted(MiMalloc);

fn main() -> std::process::ExitCode {
    credtrail_cli::tool_main::<credtrail_replay::Cli>()
}
