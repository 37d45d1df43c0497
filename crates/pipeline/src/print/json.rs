//! `--print json`: the columns as keys, in column order.

use std::io::{self, Write};

use credtrail_capture::host::rfc3339_ns;
use credtrail_capture::model::Event;

/// The JSON form: the columns as keys, in column order, `time` as RFC 3339.
pub fn write_json(out: &mut impl Write, ev: &Event) -> io::Result<()> {
    // Serialized straight from the struct, then `time` (its first field, a
    // number) swapped for the RFC 3339 text: building a `Value` map per event
    // first was most of JSON replay's time (131,000 events/s).
    let mut buf = Vec::with_capacity(1024);
    serde_json::to_writer(&mut buf, ev).map_err(io::Error::other)?;
    const HEAD: &[u8] = b"{\"time\":";
    if let Some(rest) = buf.strip_prefix(HEAD) {
        let number = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'-'))
            .unwrap_or(rest.len());
        out.write_all(HEAD)?;
        write!(out, "\"{}\"", rfc3339_ns(ev.time))?;
        return out.write_all(&rest[number..]);
    }
    write_json_value(out, ev)
}

/// [`write_json`] through a `Value`: whatever the field order.
fn write_json_value(out: &mut impl Write, ev: &Event) -> io::Result<()> {
    let mut value = serde_json::to_value(ev).map_err(io::Error::other)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("time".into(), rfc3339_ns(ev.time).into());
    }
    serde_json::to_writer(out, &value).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_json_equals_the_value_form() {
        let events = [
            Event::default(),
            Event {
                time: 1_764_000_000_123_456_789,
                node_name: "n\"ode".into(),
                comm: "s\u{e9}\\u".into(),
                groups: Some(vec![1, 2]),
                binary: Some("/bin/su".into()),
                start_time: Some(-7),
                ..Event::default()
            },
            Event {
                time: -1_000_000_001,
                ..Event::default()
            },
        ];
        for ev in &events {
            let (mut direct, mut value) = (Vec::new(), Vec::new());
            write_json(&mut direct, ev).unwrap();
            write_json_value(&mut value, ev).unwrap();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                String::from_utf8(value).unwrap()
            );
        }
    }
}
