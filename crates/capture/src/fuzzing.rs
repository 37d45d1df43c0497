//! Entry points for the fuzz targets in `fuzz/` and for the regression test
//! that replays their saved inputs: each parser of untrusted bytes, called
//! the way credtrail calls it. Any panic here is a bug.

use std::path::Path;

/// `manifest.json` of a capture someone handed us.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = crate::manifest::Manifest::parse(Path::new("fuzz/manifest.json"), data) {
        let _ = m.check_chain();
        let _ = m.segments_of(crate::table::EVENTS).count();
        let _ = m.counters.lost();
    }
}

/// A Parquet segment of a capture someone handed us, read as events.
pub fn segment(data: &[u8]) {
    let _ = crate::read::decode_segment::<crate::model::Event, _>(
        Path::new("fuzz/events.parquet"),
        bytes::Bytes::copy_from_slice(data),
    );
}

/// A Parquet file checked against the decoding bounds before any decoder
/// sees it: the check itself must never panic or allocate without bound.
pub fn bounds(data: &[u8]) {
    let _ = crate::bounds::check(&bytes::Bytes::copy_from_slice(data));
}

/// A manifest record's file name, as every reader and `recover` resolve it:
/// whatever is accepted is a plain `part-N.parquet` in the record's own
/// table folder. A violation panics (the fuzzer reports it).
pub fn segment_location(data: &[u8]) {
    let file = String::from_utf8_lossy(data).into_owned();
    for table in crate::table::TABLES {
        let seg = crate::manifest::Segment {
            table: table.to_owned(),
            file: file.clone(),
            rows: 0,
            bytes: 0,
            sha256: String::new(),
            first_ktime_ns: 0,
            last_ktime_ns: 0,
            recovered: false,
            evicted: false,
            chain: None,
            folded: None,
        };
        if let Ok((t, name)) = crate::table::segment_location(&seg) {
            assert_eq!(t, table);
            assert_eq!(format!("{t}/{name}"), file);
            assert!(name.starts_with("part-") && name.ends_with(".parquet"));
            assert!(!name.contains(['/', '\0', '*', '?', '[']) && !name.contains(".."));
        }
    }
}

/// An open segment's checkpoint, read by `recover`.
pub fn checkpoint(data: &[u8]) {
    let _ = crate::checkpoint::Checkpoint::decode(data);
}
