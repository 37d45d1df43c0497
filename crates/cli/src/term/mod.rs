//! Text made safe for a terminal. Binary names, arguments, paths, pod
//! names and manifest fields come from processes and captures an attacker
//! may control; raw, an escape sequence in them could retitle the window,
//! clear the screen, plant a hyperlink or hide the rest of a line, and an
//! invisible character (a zero-width space) would make `/usr/bin/su\u{200b}do`
//! read as `sudo`. Every printer for people (compact lines, tables, errors,
//! logs) and CSV pass text through [`safe`]; JSON output stays exact, with
//! every such character written as a `\u` escape ([`JsonEscape`]).

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
/// non-ASCII chars [`needs_escape`] names are decoded (see [`ESCAPE_LEADS`]);
/// continuation bytes never look like them.
fn has_escape(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0..=0x1f | 0x7f | b'\\' => return true,
            b if ESCAPE_LEADS.contains(&b) => {
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
/// marks, overrides and isolates that reorder what follows, characters
/// that show nothing (zero-width spaces and joiners, word joiner, soft
/// hyphen, BOM, Hangul fillers, variation selectors, tags, line and
/// paragraph separators), and the backslash that introduces our escapes.
fn needs_escape(c: char) -> bool {
    c == '\\' || c < ' ' || hidden(c)
}

/// The non-ASCII part of [`needs_escape`], and DEL.
pub fn hidden(c: char) -> bool {
    matches!(c,
        '\x7f' | '\u{80}'..='\u{9f}' | '\u{ad}' | '\u{34f}'
        | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// UTF-8 lead bytes of every non-ASCII char [`hidden`] names.
const ESCAPE_LEADS: [u8; 8] = [0xc2, 0xcd, 0xd8, 0xe1, 0xe2, 0xe3, 0xef, 0xf3];

/// A writer of JSON text that turns every character [`hidden`] names into a
/// `\uXXXX` escape (JSON's own, so the data stays exact), for output that
/// may reach a terminal. JSON writers already escape C0 controls; the rest
/// of the bytes pass through. A character split across writes is held
/// until it is whole.
#[derive(Debug)]
pub struct JsonEscape<W> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: std::io::Write> JsonEscape<W> {
    pub fn new(inner: W) -> Self {
        JsonEscape {
            inner,
            pending: Vec::new(),
        }
    }
}

impl<W: std::io::Write> std::io::Write for JsonEscape<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        // Up to the last whole character.
        let whole = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Not UTF-8: not JSON text; passed on as it is.
            Err(_) => self.pending.len(),
        };
        let (text, rest) = self.pending.split_at(whole);
        let mut out = Vec::with_capacity(text.len() + 16);
        match std::str::from_utf8(text) {
            Ok(t) => {
                for c in t.chars() {
                    if hidden(c) {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            let _ = write!(Hex(&mut out), "\\u{u:04x}");
                        }
                    } else {
                        let mut b = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                }
            }
            Err(_) => out.extend_from_slice(text),
        }
        self.inner.write_all(&out)?;
        self.pending = rest.to_vec();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.inner.write_all(&self.pending)?;
            self.pending.clear();
        }
        self.inner.flush()
    }
}

/// `write!` into a byte buffer.
struct Hex<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Hex<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
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

/// [`SafeWriter`] for JSON lines: what a terminal would act on becomes a
/// JSON `\u` escape, so each line stays valid JSON with the same content.
pub struct JsonSafeWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for JsonSafeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            // The encoder escaped controls, `"` and `\` inside strings
            // (its own escapes stay as they are); outside them there is
            // only ASCII punctuation and the newline ending the record.
            if hidden(c) {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            } else {
                out.push(c);
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
    fn json_lines_stay_json_with_the_same_text() {
        use std::io::Write as _;
        let text =
            "quote \" backslash \\ newline \n esc \x1b bidi \u{202e} emoji \u{1f511} del \x7f";
        let line = format!("{}\n", serde_json::json!({ "message": text }));
        let mut out = super::JsonSafeWriter(Vec::new());
        out.write_all(line.as_bytes()).unwrap();
        let written = String::from_utf8(out.0).unwrap();
        assert!(
            !written.contains('\u{202e}') && !written.contains('\x1b') && !written.contains('\x7f')
        );
        assert!(written.ends_with('\n') && written.matches('\n').count() == 1);
        let back: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(back["message"], text);
    }

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
        // What shows nothing is shown.
        assert_eq!(safe("/usr/bin/su\u{200b}do"), "/usr/bin/su\\u{200b}do");
        assert_eq!(safe("\u{feff}x\u{3164}"), "\\u{feff}x\\u{3164}");
    }

    #[test]
    fn json_keeps_its_data_and_shows_what_hides() {
        use std::io::Write;
        let value = serde_json::json!({"binary": "/usr/bin/su\u{200b}do\u{202e}\u{e0041}\u{1b}"});
        let text = serde_json::to_vec(&value).unwrap();
        // Byte by byte: characters split across writes come out whole.
        let mut w = super::JsonEscape::new(Vec::new());
        for b in &text {
            w.write_all(std::slice::from_ref(b)).unwrap();
        }
        w.flush().unwrap();
        let out = String::from_utf8(w.inner).unwrap();
        assert!(out.is_ascii(), "{out}");
        assert!(out.contains("su\\u200bdo\\u202e\\udb40\\udc41"), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, value);
    }
}
