//! Column names the questions share: the polars plans (`questions.rs`)
//! and the column scan (`changes/`, `counts.rs`) read and answer with the
//! same ones.

/// A column of format 3: scans of older captures alone lack the namespace
/// columns, and an expression naming them would fail.
pub(crate) const NS_COLUMN: &str = "new_userns_level";

/// The process image of each row, which the report links to its tree:
/// every logical change is of one image, but the terminal answers leave it
/// out.
pub(crate) const EXEC_ID: &str = "exec_id";

/// The capability sets, as the columns `old_cap_SET`/`new_cap_SET` name
/// them.
pub(crate) const CAP_SETS: [&str; 5] = [
    "effective",
    "permitted",
    "inheritable",
    "bounding",
    "ambient",
];

/// What `caps` and `groups` show of a logical change besides the change.
pub(crate) const CHANGE_COLUMNS: [&str; 10] = [
    "time",
    "node_name",
    "pod",
    "pid",
    "binary",
    "syscall",
    "threads",
    "calls",
    "capture",
    EXEC_ID,
];

/// What `failed` shows of a refused call (its `error` is made from `ret`).
pub(crate) const FAILED_COLUMNS: [&str; 15] = [
    "time",
    "node_name",
    "pod",
    "pid",
    "binary",
    "arguments",
    "syscall",
    "arg0",
    "arg1",
    "arg2",
    "ret",
    "threads",
    "calls",
    "capture",
    EXEC_ID,
];

/// What makes two events one logical change (besides their capture):
/// glibc's setxid broadcast makes one call per thread, all alike in these.
pub(crate) const CHANGE_KEY: [&str; 8] = [
    "node_name",
    "pid",
    "exec_id",
    "syscall",
    "arg0",
    "arg1",
    "arg2",
    "ret",
];
