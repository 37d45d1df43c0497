//! Progress on stderr for long work (replay `--out`, `--verify`, queries
//! over many captures, shipping), drawn only when stderr is a terminal: a
//! pipe or a log file gets nothing, so scripts and tests read what they
//! always read.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar or spinner; cleared when dropped, so an answer or an error line
/// printed after it stands alone.
#[derive(Debug)]
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar counting to `total` (`bytes`: shown as sizes), labelled `what`.
    pub fn bar(what: &str, total: u64, bytes: bool) -> Progress {
        let counts = if bytes {
            "{bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
        } else {
            "{human_pos}/{human_len} ({per_sec}, {eta})"
        };
        // The label last: it is cut to the terminal's width, not wrapped.
        let template = format!("[{{bar:20}}] {counts} {{wide_msg}}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Progress(ProgressBar::with_draw_target(Some(total), target()).with_style(style))
            .with_message(what)
    }

    /// A spinner for work of unknown length, ticking by itself.
    pub fn spinner(what: &str) -> Progress {
        let style = ProgressStyle::with_template("{spinner} ({elapsed}) {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let p = Progress(ProgressBar::with_draw_target(None, target()).with_style(style))
            .with_message(what);
        if !p.0.is_hidden() {
            p.0.enable_steady_tick(Duration::from_millis(120));
        }
        p
    }

    /// Nothing drawn, whatever stderr is.
    pub fn hidden() -> Progress {
        Progress(ProgressBar::hidden())
    }

    fn with_message(self, what: &str) -> Progress {
        // Names come from captures: escapes stay text on the terminal.
        self.0.set_message(crate::term::safe(what).into_owned());
        self
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    pub fn set_message(&self, what: &str) {
        self.0.set_message(crate::term::safe(what).into_owned());
    }

    /// Whether anything is drawn (stderr is a terminal).
    pub fn is_hidden(&self) -> bool {
        self.0.is_hidden()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// stderr when it is a terminal, else nowhere.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;
    use std::io::IsTerminal as _;

    #[test]
    fn nothing_is_drawn_when_stderr_is_not_a_terminal() {
        // Under cargo test stderr is captured or piped; when a developer
        // runs it on a terminal, the bar is drawn and this says so.
        let drawn = std::io::stderr().is_terminal();
        let bar = Progress::bar("x", 10, false);
        bar.inc(3);
        assert_eq!(bar.is_hidden(), !drawn);
        assert_eq!(Progress::spinner("y").is_hidden(), !drawn);
        assert!(Progress::hidden().is_hidden());
    }
}
