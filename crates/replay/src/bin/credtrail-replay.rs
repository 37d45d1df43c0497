//! credtrail-replay: captures back through the recorder's enrichment and printers.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use credtrail_replay::{Cli, run};

fn main() -> ExitCode {
    credtrail_recorder::host::init_logging("warn");
    let cli = Cli::parse();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = credtrail_recorder::host::run_guarded(|| {
        run(cli, &mut out, &mut std::io::stderr())
            .and_then(|ok| out.flush().map(|()| ok).map_err(Into::into))
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // `| head` closing the pipe is not an error.
        Err(e) if credtrail_recorder::host::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}",
                credtrail_recorder::host::error_line("credtrail-replay", &e)
            );
            ExitCode::FAILURE
        }
    }
}
