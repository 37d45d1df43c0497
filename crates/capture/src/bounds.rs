//! Bounds on what a Parquet segment can make a reader allocate, checked
//! from the footer and the page headers before any decoder runs.
//!
//! A capture may come from a node an attacker controls: a 300 KB segment of
//! zstd pages can decode to gigabytes. The decoders (parquet-rs in replay,
//! verify, inspect and recover; polars in query) allocate what the file
//! declares, so every declared size is checked here against what the
//! recorder can ever write, with a bounded thrift parser:
//!
//! - the footer is at most [`MAX_FOOTER_BYTES`], of at most [`MAX_COLUMNS`]
//!   columns, with no column data in other files;
//! - a row group holds at most [`MAX_ROWS_PER_GROUP`] rows (the writer seals
//!   them at 131,072), a file at most [`Limits::row_groups`] row groups and
//!   [`Limits::rows`] rows in all (the footer's total must be their sum): a
//!   `captures` segment one row, as the writer makes them;
//! - a page decompresses to at most [`MAX_PAGE_BYTES`], within its column
//!   chunk, compressed with zstd or not at all, in an encoding the writer
//!   uses (delta byte arrays, which expand without bound, are refused);
//! - a dictionary value is at most [`MAX_VALUE_BYTES`] (the kernel side
//!   keeps 1 KiB of arguments and paths, `/proc` command lines are cut to
//!   the same), and so is a plain value on average;
//! - what a column chunk decodes to, counted from its values (a value
//!   repeated from the dictionary counts at its full length each time), is
//!   at most [`MAX_CHUNK_DECODED_BYTES`], and the whole file at most
//!   [`Limits::decoded`].
//!
//! Readers decode at most one record batch of rows at a time, so memory
//! stays within a few of these bounds whatever the file says.

use parquet::file::reader::ChunkReader;
use polars_parquet_format::thrift::protocol::TCompactInputProtocol;
use polars_parquet_format::{
    ColumnMetaData, CompressionCodec, Encoding, FileMetaData, PageHeader, PageType, RowGroup, Type,
};

/// The largest Parquet footer read (the writer's are ≈ 9 KB per row group,
/// at most 64 row groups per segment).
pub const MAX_FOOTER_BYTES: u64 = 16 << 20;
/// Columns of the widest table, with room to grow.
pub const MAX_COLUMNS: usize = 512;
/// Rows in one row group (the writer's limit is 131,072).
pub const MAX_ROWS_PER_GROUP: i64 = 1 << 20;
/// One page, decompressed (the writer's pages are ≈ 1 MiB).
pub const MAX_PAGE_BYTES: i64 = 16 << 20;
/// One string value.
pub const MAX_VALUE_BYTES: usize = 16 << 10;
/// What one column chunk decodes to.
pub const MAX_CHUNK_DECODED_BYTES: u64 = 256 << 20;
/// Row groups per file (the writer seals a segment at 64 between two
/// checkpoints; a storm may flush a few more before the seal).
pub const MAX_ROW_GROUPS: usize = 1024;
/// What a whole file decodes to, counted as for a chunk (the writer's
/// segments stay far below: a storm's 64 full row groups ≈ 5 GiB counted).
pub const MAX_FILE_DECODED_BYTES: u64 = 16 << 30;

/// What one file may hold, per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub row_groups: usize,
    pub rows: u64,
    pub decoded: u64,
}

impl Limits {
    /// The bounds of a segment of `table`: a `captures` segment is one row,
    /// as the writer makes them.
    pub fn for_table(table: &str) -> Limits {
        if table == crate::table::CAPTURES {
            return Limits {
                row_groups: 1,
                rows: 1,
                decoded: 1 << 20,
            };
        }
        Limits {
            row_groups: MAX_ROW_GROUPS,
            rows: MAX_ROW_GROUPS as u64 * MAX_ROWS_PER_GROUP as u64,
            decoded: MAX_FILE_DECODED_BYTES,
        }
    }
}

/// A page header: its fields plus page statistics (two values at most).
const MAX_PAGE_HEADER_BYTES: usize = 4096 + 2 * MAX_VALUE_BYTES;

type Check<T = ()> = Result<T, String>;

/// Checks a Parquet file against the bounds above (any table's), reading
/// only its footer, its page headers and its dictionary pages.
pub fn check<R: ChunkReader>(file: &R) -> Check {
    check_with(file, &Limits::for_table(crate::table::EVENTS)).map(drop)
}

/// [`check`] against `limits`; returns the file's rows.
pub fn check_with<R: ChunkReader>(file: &R, limits: &Limits) -> Check<u64> {
    let (meta, data_end) = read_footer(file)?;
    check_columns(&meta)?;
    let rows = check_rows(&meta, limits)?;
    let mut decoded = 0u64;
    for (i, rg) in meta.row_groups.iter().enumerate() {
        check_row_group(file, i, rg, data_end, limits, &mut decoded)?;
    }
    Ok(rows)
}

/// The file's footer, parsed with a bounded budget, and where its data
/// ends.
fn read_footer<R: ChunkReader>(file: &R) -> Check<(FileMetaData, u64)> {
    let len = file.len();
    if len < 12 {
        return Err(format!("{len} bytes is too short for a Parquet file"));
    }
    let tail = get(file, len - 8, 8)?;
    if &tail[4..] != b"PAR1" {
        return Err("no Parquet magic at the end".into());
    }
    let footer_len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    if footer_len > MAX_FOOTER_BYTES || footer_len + 12 > len {
        return Err(format!(
            "a footer of {footer_len} bytes (at most {MAX_FOOTER_BYTES}, within the file)"
        ));
    }
    let data_end = len - 8 - footer_len;
    let footer = get(file, data_end, footer_len as usize)?;
    // The budget bounds what the declared list lengths may allocate.
    let meta = FileMetaData::read_from_in_protocol(&mut TCompactInputProtocol::new(
        &footer[..],
        footer.len().saturating_mul(8),
    ))
    .map_err(|e| format!("unreadable footer: {e}"))?;
    Ok((meta, data_end))
}

/// The schema's width.
fn check_columns(meta: &FileMetaData) -> Check {
    let leaves = meta
        .schema
        .iter()
        .filter(|e| e.num_children.unwrap_or(0) == 0)
        .count();
    if meta.schema.len() > 4 * MAX_COLUMNS || leaves > MAX_COLUMNS {
        return Err(format!("{leaves} columns (at most {MAX_COLUMNS})"));
    }
    Ok(())
}

/// The row groups and rows in all, against `limits`; the footer's total
/// must be the row groups' sum. Returns the rows.
fn check_rows(meta: &FileMetaData, limits: &Limits) -> Check<u64> {
    if meta.row_groups.len() > limits.row_groups {
        return Err(format!(
            "{} row groups (at most {})",
            meta.row_groups.len(),
            limits.row_groups
        ));
    }
    let rows: u64 = meta
        .row_groups
        .iter()
        .map(|rg| u64::try_from(rg.num_rows).unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add);
    if u64::try_from(meta.num_rows).ok() != Some(rows) {
        return Err(format!(
            "the footer says {} rows, its row groups hold {rows}",
            meta.num_rows
        ));
    }
    if rows > limits.rows {
        return Err(format!("{rows} rows (at most {})", limits.rows));
    }
    Ok(rows)
}

/// Row group `i` and each of its column chunks, adding what they decode to
/// to `decoded` (the whole file's, checked after every chunk).
fn check_row_group<R: ChunkReader>(
    file: &R,
    i: usize,
    rg: &RowGroup,
    data_end: u64,
    limits: &Limits,
    decoded: &mut u64,
) -> Check {
    if !(0..=MAX_ROWS_PER_GROUP).contains(&rg.num_rows) {
        return Err(format!(
            "row group {i} holds {} rows (at most {MAX_ROWS_PER_GROUP})",
            rg.num_rows
        ));
    }
    if rg.columns.len() > MAX_COLUMNS {
        return Err(format!("row group {i} has {} columns", rg.columns.len()));
    }
    for chunk in &rg.columns {
        if chunk.file_path.is_some() {
            return Err(format!(
                "row group {i} keeps column data in another file ({:?})",
                chunk.file_path
            ));
        }
        let col = chunk
            .meta_data
            .as_ref()
            .ok_or_else(|| format!("row group {i}: a column chunk without metadata"))?;
        *decoded += check_chunk(file, col, data_end).map_err(|e| {
            format!(
                "row group {i}, column {}: {e}",
                col.path_in_schema.join(".")
            )
        })?;
        if *decoded > limits.decoded {
            return Err(format!(
                "decodes to more than {} bytes in all",
                limits.decoded
            ));
        }
    }
    Ok(())
}

fn get<R: ChunkReader>(file: &R, start: u64, len: usize) -> Check<bytes::Bytes> {
    file.get_bytes(start, len)
        .map_err(|e| format!("cannot read {len} bytes at {start}: {e}"))
}

/// Bytes one decoded value of a fixed-width type takes.
fn fixed_width(col: &ColumnMetaData) -> Option<u64> {
    Some(match col.type_ {
        Type::BOOLEAN => 1,
        Type::INT32 | Type::FLOAT => 4,
        Type::INT64 | Type::DOUBLE => 8,
        Type::INT96 => 12,
        // Width unknown here (no schema element at hand): count it as a
        // byte array of its stored size.
        _ => return None,
    })
}

/// Walks one column chunk's pages; returns what it decodes to at most.
fn check_chunk<R: ChunkReader>(file: &R, col: &ColumnMetaData, data_end: u64) -> Check<u64> {
    if col.codec != CompressionCodec::UNCOMPRESSED && col.codec != CompressionCodec::ZSTD {
        return Err(format!(
            "compression codec {} (credtrail writes zstd)",
            col.codec.0
        ));
    }
    let start = match col.dictionary_page_offset {
        Some(d) if d > 0 => d.min(col.data_page_offset),
        _ => col.data_page_offset,
    };
    let end = start.checked_add(col.total_compressed_size);
    let (start, end) = match end {
        Some(end) if start >= 4 && col.total_compressed_size >= 0 && end as u64 <= data_end => {
            (start as u64, end as u64)
        }
        _ => return Err("column chunk outside the file's data".into()),
    };
    let mut pos = start;
    // The largest dictionary value; every dictionary-encoded value counts
    // at this length.
    let mut dict_value = 0u64;
    let mut decoded = 0u64;
    while pos < end {
        let (header, header_len) = page_header(file, pos, end)?;
        let compressed = u64::try_from(header.compressed_page_size)
            .map_err(|_| "a negative page size".to_string())?;
        if !(0..=MAX_PAGE_BYTES).contains(&i64::from(header.uncompressed_page_size)) {
            return Err(format!(
                "a page of {} bytes decompressed (at most {MAX_PAGE_BYTES})",
                header.uncompressed_page_size
            ));
        }
        let uncompressed = header.uncompressed_page_size as u64;
        let body = pos + header_len;
        let next = body
            .checked_add(compressed)
            .filter(|n| *n <= end)
            .ok_or("a page runs past its column chunk")?;
        let (values, encoding) = match header.type_ {
            PageType::DICTIONARY_PAGE => {
                let d = header
                    .dictionary_page_header
                    .as_ref()
                    .ok_or("a dictionary page without its header")?;
                if col.type_ == Type::BYTE_ARRAY {
                    let page = decompress(file, col, body, compressed, uncompressed)?;
                    dict_value = dict_value.max(longest_value(&page, d.num_values)?);
                }
                (d.num_values, Encoding::PLAIN)
            }
            PageType::DATA_PAGE => {
                let d = header
                    .data_page_header
                    .as_ref()
                    .ok_or("a data page without its header")?;
                (d.num_values, d.encoding)
            }
            PageType::DATA_PAGE_V2 => {
                let d = header
                    .data_page_header_v2
                    .as_ref()
                    .ok_or("a data page without its header")?;
                (d.num_values, d.encoding)
            }
            _ => (0, Encoding::PLAIN),
        };
        let values = u64::try_from(values).map_err(|_| "a negative value count".to_string())?;
        decoded += page_decoded(col, encoding, values, uncompressed, dict_value)?;
        if decoded > MAX_CHUNK_DECODED_BYTES {
            return Err(format!(
                "decodes to more than {MAX_CHUNK_DECODED_BYTES} bytes"
            ));
        }
        pos = next;
    }
    Ok(decoded)
}

/// What a data page decodes to, at most: its values (and their levels).
fn page_decoded(
    col: &ColumnMetaData,
    encoding: Encoding,
    values: u64,
    uncompressed: u64,
    dict_value: u64,
) -> Check<u64> {
    let levels = values.saturating_mul(4);
    let dictionary = encoding == Encoding::PLAIN_DICTIONARY || encoding == Encoding::RLE_DICTIONARY;
    let allowed = dictionary
        || encoding == Encoding::PLAIN
        || encoding == Encoding::RLE
        || encoding == Encoding::BIT_PACKED
        || encoding == Encoding::DELTA_BINARY_PACKED;
    if !allowed {
        return Err(format!(
            "page encoding {} (credtrail writes plain, dictionary, RLE and delta-packed integers)",
            encoding.0
        ));
    }
    let per_value = match fixed_width(col) {
        Some(w) => w,
        None if dictionary => dict_value + 8,
        None => {
            // Plain values are stored whole: no more than the page.
            if uncompressed > values.saturating_mul(MAX_VALUE_BYTES as u64 + 8) + 4096 {
                return Err(format!(
                    "a page of {values} values in {uncompressed} bytes (values of at most {MAX_VALUE_BYTES} bytes)"
                ));
            }
            return Ok(uncompressed
                .saturating_add(values.saturating_mul(8))
                .saturating_add(levels));
        }
    };
    Ok(values.saturating_mul(per_value).saturating_add(levels))
}

/// Parses the page header at `pos` (never reading past `end`); returns it
/// with its length.
fn page_header<R: ChunkReader>(file: &R, pos: u64, end: u64) -> Check<(PageHeader, u64)> {
    // Most headers are tens of bytes: read a little first, more if needed.
    for want in [256, MAX_PAGE_HEADER_BYTES] {
        let n = (end - pos).min(want as u64) as usize;
        let buf = get(file, pos, n)?;
        let mut cursor = &buf[..];
        let parsed = PageHeader::read_from_in_protocol(&mut TCompactInputProtocol::new(
            &mut cursor,
            MAX_PAGE_HEADER_BYTES,
        ));
        match parsed {
            Ok(h) => return Ok((h, (n - cursor.len()) as u64)),
            Err(_) if n == want && want < MAX_PAGE_HEADER_BYTES => continue,
            Err(e) => return Err(format!("unreadable page header at byte {pos}: {e}")),
        }
    }
    unreachable!("the last attempt returns")
}

/// A page's body, decompressed into at most `uncompressed` bytes.
fn decompress<R: ChunkReader>(
    file: &R,
    col: &ColumnMetaData,
    body: u64,
    compressed: u64,
    uncompressed: u64,
) -> Check<Vec<u8>> {
    if compressed > MAX_PAGE_BYTES as u64 {
        return Err(format!("a page of {compressed} bytes compressed"));
    }
    let raw = get(file, body, compressed as usize)?;
    if col.codec == CompressionCodec::UNCOMPRESSED {
        return Ok(raw.to_vec());
    }
    thread_local! {
        /// One zstd context per thread: making one per page was a fifth of
        /// a question's time (thousands of dictionary pages per capture).
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let failed =
        |e| format!("a dictionary page that does not decompress to its declared size: {e}");
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        let dctx = match d.as_mut() {
            Some(dctx) => dctx,
            None => d.insert(zstd::bulk::Decompressor::new().map_err(failed)?),
        };
        dctx.decompress(&raw, uncompressed as usize).map_err(failed)
    })
}

/// The longest of `n` plain byte-array values (4-byte length, bytes).
fn longest_value(page: &[u8], n: i32) -> Check<u64> {
    let mut rest = page;
    let mut longest = 0usize;
    for _ in 0..n {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("a dictionary shorter than its value count")?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_VALUE_BYTES {
            return Err(format!(
                "a dictionary value of {len} bytes (at most {MAX_VALUE_BYTES})"
            ));
        }
        rest = tail
            .get(len..)
            .ok_or("a dictionary value past the end of its page")?;
        longest = longest.max(len);
    }
    Ok(longest as u64)
}
