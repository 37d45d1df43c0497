//! What every credtrail binary shares at the terminal: the `main` harness
//! ([`Tool`] and [`tool_main`]: logging, one error line, panics caught),
//! text that is safe to show ([`term`]), tables ([`term::table`]),
//! progress bars ([`progress`]) and the memory budget ([`budget`]).

pub mod budget;
mod harness;
pub mod progress;
pub mod term;

pub use harness::{LogFormat, Tool, is_broken_pipe, run_guarded, say, tool_main};
