//! What every credtrail binary shares at the terminal: the `main` harness
//! ([`main`], [`main_logged`]: logging, one error line, panics caught),
//! text that is safe to show ([`term`]), tables ([`term::table`]),
//! progress bars ([`progress`]) and the memory budget ([`budget`]).

pub mod budget;
mod harness;
pub mod progress;
pub mod term;

pub use harness::{LogFormat, is_broken_pipe, main, main_logged, run_guarded, say};
