//! credtrail-workload: credential changes with known answers, for tests,
//! the demo and benchmarks. Must run as root.

fn main() -> std::process::ExitCode {
    credtrail_cli::tool_main::<credtrail_workload::cli::Cli>()
}
