//! credtrail-ship: sealed captures to object storage.

fn main() -> std::process::ExitCode {
    credtrail_cli::tool_main::<credtrail_ship::cli::Cli>()
}
