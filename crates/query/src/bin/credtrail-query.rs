//! credtrail-query: SQL and built-in questions over credtrail captures.

use std::alloc::System;
use std::io::IsTerminal;
use std::process::{Child, Command, ExitCode, Stdio};

use clap::Parser;
use credtrail_cli::budget::{self, Budgeted};
use credtrail_query::cli::{Cli, run_at};
use credtrail_query::output::Format;

#[global_allocator]
static ALLOC: Budgeted = Budgeted(System);

fn main() -> ExitCode {
    let cli = Cli::parse();
    budget::set_limit(
        "credtrail-query",
        cli.memory_limit.unwrap_or_else(budget::default_limit),
        "narrow it (--since/--until, --node, --pod, a WHERE or a LIMIT, fewer columns)",
    );
    // SAFETY: set before polars starts any thread; nothing else reads the
    // environment concurrently at this point.
    unsafe {
        // polars' streaming group-by keeps this many groups per thread in a
        // table and spills the rest for a slower merge. Its default (4,096)
        // is below what credential questions group by (pid x syscall x pod):
        // 65,536 measured 0.51 -> 0.44 s and 1.07 -> 0.88 s on 10 M events,
        // with half the memory. A user's own setting wins.
        if std::env::var_os("POLARS_HOT_TABLE_SIZE").is_none() {
            std::env::set_var("POLARS_HOT_TABLE_SIZE", "65536");
        }
    }
    let is_terminal = std::io::stdout().is_terminal();
    let table = cli.wide || matches!(cli.format, Format::Table | Format::Wide);
    // Long tables at a terminal go through a pager, as `git log` does.
    let pager = (is_terminal && table && !cli.no_pager && cli.out.is_none())
        .then(spawn_pager)
        .flatten();
    credtrail_cli::main("credtrail-query", "warn", || {
        match pager {
            Some(mut child) => {
                let mut stdin = child.stdin.take().expect("piped");
                let result = run_at(cli, &mut stdin, &mut std::io::stderr(), true);
                drop(stdin);
                let _ = child.wait();
                result?;
            }
            None => run_at(
                cli,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr(),
                is_terminal,
            )?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `$PAGER` (default `less`, told to quit when the table fits one screen,
/// keep colours and not clear the screen); none when it is empty or `cat`,
/// or cannot be started.
fn spawn_pager() -> Option<Child> {
    let pager = std::env::var("CREDTRAIL_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .unwrap_or_else(|_| "less".into());
    if pager.trim().is_empty() || pager.trim() == "cat" {
        return None;
    }
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &pager]).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        cmd.env("LESS", "FRX");
    }
    cmd.spawn().ok()
}
