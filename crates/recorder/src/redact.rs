//! `--redact`: secrets in command lines never reach the capture.
//!
//! Each pattern is a regular expression matched in every argument of every
//! process the recorder stores. What follows a match, to the end of the
//! argument, is replaced by [`MASK`] (`--password=hunter2` with pattern
//! `--password=` becomes `--password=<redacted>`); when a match ends the
//! argument (`^--password$`), the next argument is replaced whole, for the
//! `--password hunter2` form.

use regex::Regex;

const MASK: &str = "<redacted>";

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    patterns: Vec<Regex>,
}

impl Redactor {
    /// Compiles the patterns; a bad one is named with the parser's message.
    pub fn new(patterns: &[String]) -> Result<Redactor, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                Regex::new(p)
                    .map_err(|e| format!("--redact {p:?} is not a valid regular expression: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Redacts an argument vector in place; returns whether anything changed.
    pub fn args(&self, args: &mut [String]) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let mut changed = false;
        let mut blank_next = false;
        for arg in args.iter_mut() {
            if blank_next {
                blank_next = false;
                *arg = MASK.to_owned();
                changed = true;
                continue;
            }
            // The earliest match wins: everything after it goes.
            let cut = self
                .patterns
                .iter()
                .filter_map(|re| re.find(arg).map(|m| m.end()))
                .min();
            match cut {
                Some(end) if end == arg.len() => blank_next = true,
                Some(end) => {
                    arg.truncate(end);
                    arg.push_str(MASK);
                    changed = true;
                }
                None => {}
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(patterns: &[&str], args: &[&str]) -> Vec<String> {
        let r = Redactor::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        r.args(&mut a);
        a
    }

    #[test]
    fn blanks_value_after_match() {
        assert_eq!(
            run(
                &["--password="],
                &["mysql", "--password=hunter2", "-u", "root"]
            ),
            ["mysql", "--password=<redacted>", "-u", "root"]
        );
    }

    #[test]
    fn blanks_next_argument_when_match_ends_argument() {
        assert_eq!(
            run(
                &["^--token$", "^-p$"],
                &["cli", "--token", "abc", "-p", "x", "y"]
            ),
            ["cli", "--token", "<redacted>", "-p", "<redacted>", "y"]
        );
    }

    #[test]
    fn earliest_match_wins_and_others_untouched() {
        assert_eq!(
            run(&["pass=", "user="], &["a", "user=bob,pass=x", "nothing"]),
            ["a", "user=<redacted>", "nothing"]
        );
        assert_eq!(run(&[], &["--password=x"]), ["--password=x"]);
    }

    #[test]
    fn bad_pattern_is_named() {
        let e = Redactor::new(&["(".to_string()]).unwrap_err();
        assert!(e.contains("--redact \"(\""), "{e}");
    }
}
