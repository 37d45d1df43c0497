//! credtrail-recorder's tests, one binary: the command line, and (as root)
//! the real recorder against real processes and containers.

// What the binary says without BPF: bad --out, missing privileges, inspect.
mod cli;
// Every saved fuzz input of the recorder's own parsers, replayed.
mod fuzz_regressions;
// Root: exact rows for every hooked call, exec, fork, exit, containers.
mod root_record;
// Root: a full disk, dropped privileges, redaction, the disk budget.
mod root_reliability;
