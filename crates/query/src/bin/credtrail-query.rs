//! credtrail-query: SQL and built-in questions over credtrail captures.

use credtrail_cli::budget::Budgeted;

#[global_allocator]
static ALLOC: Budgeted = Budgeted(std::alloc::System);

fn main() -> std::process::ExitCode {
    credtrail_cli::tool_main::<credtrail_query::cli::Cli>()
}
