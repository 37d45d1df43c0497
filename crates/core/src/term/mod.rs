//! Text made safe for a terminal. Binary names, arguments, paths, pod
//! names and manifest fields come from processes and captures an attacker
//! may control; raw, an escape sequence in them could retitle the window,
//! clear the screen, plant a hyperlink or hide the rest of a line. Every
//! printer for people (compact lines, tables, errors, logs) passes text
//! through [`safe`]; JSON output stays exact (JSON escapes them itself).

use std::borrow::Cow;
use std::fmt::Write as _;

pub mod table;

/// `--color`: colour for people at a terminal, never in a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// When writing to a terminal and NO_COLOR is unset.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour output going to a terminal (`is_terminal`) or not.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            // https://no-color.org: present and not empty.
            ColorChoice::Auto => {
                is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// `s` with every control character, escape sequence introducer and
/// bidirectional override shown escaped (`\e`, `\x07`, `\u{202e}`), and
/// backslashes doubled so that the result is unambiguous. Text without them
/// is returned as is, without copying.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !has_escape(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\x1b' => out.push_str("\\e"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether any char of `s` needs escaping, byte by byte: decoding every
/// char made this 10% of a compact replay. Only the lead bytes of the
/// non-ASCII chars [`needs_escape`] names (U+0080–U+009F: 0xC2; U+061C:
/// 0xD8; U+200E…U+2069: 0xE2) are decoded; continuation bytes never look
/// like them.
fn has_escape(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0..=0x1f | 0x7f | b'\\' => return true,
            0xc2 | 0xd8 | 0xe2 => {
                let c = s[i..].chars().next().expect("a char starts here");
                if needs_escape(c) {
                    return true;
                }
                i += c.len_utf8();
            }
            _ => i += 1,
        }
    }
    false
}

/// C0 controls, DEL, C1 controls (8-bit CSI, OSC…), the bidirectional
/// overrides and isolates that reorder what follows, and the backslash
/// that introduces our escapes.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}' | '\\'
        | '\u{061c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A writer that makes everything written through it safe, line by line,
/// for logs: the log's own line ends stay.
#[derive(Debug)]
pub struct SafeWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for SafeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(l) => {
                    out.push_str(&safe(l));
                    out.push('\n');
                }
                None => out.push_str(&safe(line)),
            }
        }
        self.0.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::{has_escape, needs_escape, safe};

    #[test]
    fn the_byte_scan_agrees_with_the_char_rule_for_every_char() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            for s in [c.to_string(), format!("a→{c}b"), format!("{c}\u{e9}")] {
                assert_eq!(has_escape(&s), s.chars().any(needs_escape), "{s:?}");
            }
        }
    }

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(safe("/usr/bin/su"), "/usr/bin/su");
        assert!(matches!(
            safe("plain → text"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(safe("\x1b]0;T\x07\x1b[2Jx"), "\\e]0;T\\x07\\e[2Jx");
        assert_eq!(
            safe("\x1b]8;;http://x\x07link\x1b]8;;\x07"),
            "\\e]8;;http://x\\x07link\\e]8;;\\x07"
        );
        assert_eq!(
            safe("a\nb\r\t\u{9b}2J\u{202e}"),
            "a\\nb\\r\\t\\u{9b}2J\\u{202e}"
        );
        assert_eq!(safe("C:\\x"), "C:\\\\x");
        assert_eq!(safe("\x7f\0"), "\\x7f\\x00");
    }
}
