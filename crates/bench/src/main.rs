//! credtrail-bench: measured comparisons, written into BENCHMARKS.md.

fn main() -> std::process::ExitCode {
    credtrail_cli::tool_main::<credtrail_bench::Cli>()
}
