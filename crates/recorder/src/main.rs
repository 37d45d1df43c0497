//! credtrail-record: capture every credential-changing syscall on this node.

fn main() -> std::process::ExitCode {
    credtrail_cli::tool_main::<credtrail_recorder::cli::Cli>()
}
