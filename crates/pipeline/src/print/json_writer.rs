//! A JSON writer for printers that know their output's shape: objects
//! written entry by entry into a buffer, keys and the printer's own names
//! copied as they are (plain ASCII), strings from the capture escaped by
//! serde_json. No `Value` tree, no allocation but the buffer's. The small
//! methods are `#[inline]`: a Tetragon line has some 70 keys, all
//! constants, and inlined their copies are fixed-size moves.

use std::fmt::Display;

/// A JSON object being written into a buffer, opened and closed by [`object`].
pub(super) struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn end(self) {
        self.out.push(b'}');
    }

    /// Starts an entry (`,"key":`) and returns the buffer its value goes
    /// to. Keys are the printer's own and need no escaping.
    #[inline]
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        debug_assert!(plain(key), "{key:?} needs escaping");
        self.separate();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// [`Obj::key`] for a key from the capture: escaped.
    #[inline]
    pub fn escaped_key(&mut self, key: &str) -> &mut Vec<u8> {
        self.separate();
        string(self.out, key);
        self.out.push(b':');
        self.out
    }

    #[inline]
    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    #[inline]
    pub fn int(&mut self, key: &str, v: impl itoa::Integer) {
        int(self.key(key), v);
    }

    /// A string from the capture, escaped.
    #[inline]
    pub fn str(&mut self, key: &str, v: &str) {
        string(self.key(key), v);
    }

    /// An optional string, left out when absent or empty (Tetragon omits
    /// empty strings).
    #[inline]
    pub fn some_str(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.str(key, v);
        }
    }

    /// A string the printer chose (a name, an enum): copied as it is.
    #[inline]
    pub fn plain(&mut self, key: &str, v: &str) {
        plain_str(self.key(key), v);
    }

    /// A BoolValue that is true (a false one is left out).
    pub fn set(&mut self, key: &str) {
        self.key(key).extend_from_slice(b"true");
    }

    #[inline]
    pub fn obj(&mut self, key: &str, body: impl FnOnce(&mut Obj<'_>)) {
        object(self.key(key), body);
    }

    /// An array of `items`, each written by `item`.
    pub fn list<T>(
        &mut self,
        key: &str,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut Vec<u8>, T),
    ) {
        let out = self.key(key);
        out.push(b'[');
        for (i, v) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item(out, v);
        }
        out.push(b']');
    }
}

/// An object whose entries `body` writes.
#[inline]
pub fn object(out: &mut Vec<u8>, body: impl FnOnce(&mut Obj<'_>)) {
    let mut o = Obj::begin(out);
    body(&mut o);
    o.end();
}

/// Whether `s` goes into a JSON string as it is.
fn plain(s: &str) -> bool {
    !s.bytes().any(escaped)
}

pub fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `s` as a JSON string, escaped as serde_json escapes.
#[inline]
pub fn string(out: &mut Vec<u8>, s: &str) {
    // Paths, arguments and ids rarely need escaping: checking that first,
    // in blocks the compiler vectorizes, is several times faster than
    // serde_json's byte-by-byte escaping loop.
    if s.as_bytes()
        .chunks(16)
        .all(|c| !c.iter().fold(false, |e, b| e | escaped(*b)))
    {
        plain_str(out, s);
    } else {
        serde_json::to_writer(out, s).expect("a string serializes into memory");
    }
}

/// Whether a JSON string needs `b` escaped (serde_json escapes no more).
fn escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `v`'s text as a JSON string, escaped, without building it first.
pub fn display(out: &mut Vec<u8>, v: impl Display) {
    serde_json::to_writer(out, &format_args!("{v}")).expect("text serializes into memory");
}

/// A string the printer chose, quoted as it is.
#[inline]
pub fn plain_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(plain(s), "{s:?} needs escaping");
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}
