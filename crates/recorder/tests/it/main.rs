//! credtrail-recorder's tests, one binary: the command line, and (as root)
//! the real recorder against real processes and containers.

// What the binary says without BPF: bad --out, missing privileges, inspect.
mod cli;
// Every saved fuzz input of the recorder's own parsers, replayed.
mod fuzz_regressions;
// Root: exact rows for every hooked call, exec, fork, exit, containers.
mod root_record;
// Root: the 32-bit entry, prctl, user namespaces, io_uring, missing hooks.
mod root_paths;
// Root: changes no hooked call explains, found live; no false positives.
mod root_unexplained;
// Root: --policy (TracingPolicy files) in the kernel, and the same on replay.
mod root_policy;
// Root: a full disk, dropped privileges, redaction, the disk budget.
mod root_reliability;
// Root: a storm's calls folded, counted per process; a quiet one untouched.
mod root_fair;
// Root: --out-root, many nodes' captures under one root.
mod root_fleet;
// Root: `-- COMMAND`, one command's tree; --stable output of it.
mod root_command;
// Root: examples/, each against its golden file and expectations.
mod root_examples;
// Running the workload and comparing its report with captured rows.
mod workload;
