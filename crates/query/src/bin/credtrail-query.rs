//! credtrail-query: SQL and built-in questions over credtrail captures.

use std::process::ExitCode;

use clap::Parser;
use credtrail_query::cli::{Cli, run};

fn main() -> ExitCode {
    credtrail_recorder::host::init_logging("warn");
    let cli = Cli::parse();
    // Tables fit the terminal: polars reads these at formatting time.
    let width = credtrail_query::output::terminal_width().to_string();
    // SAFETY: set before polars starts any thread; nothing else reads the
    // environment concurrently at this point.
    unsafe {
        std::env::set_var("POLARS_TABLE_WIDTH", width);
        std::env::set_var("POLARS_FMT_MAX_ROWS", "200");
        std::env::set_var("POLARS_FMT_STR_LEN", "40");
    }
    let mut out = std::io::stdout().lock();
    let result = credtrail_recorder::host::run_guarded(|| {
        run(cli, &mut out, &mut std::io::stderr()).map_err(anyhow::Error::from)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("credtrail-query: error: {e}");
            ExitCode::FAILURE
        }
    }
}
