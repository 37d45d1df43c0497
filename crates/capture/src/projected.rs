//! Reading a few columns of part of a segment as Arrow record batches, for
//! engines that work on columns (the query questions): only the columns
//! asked for are decoded, text columns arrive as dictionaries (the Parquet
//! dictionary passed through, so a string is compared or interned once per
//! distinct value, not once per row), and a segment can be read in parts
//! (its row groups split evenly) by several threads at once.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection,
};

use crate::error::CaptureError;
use crate::manifest::Segment;
use crate::positional::Positional;
use crate::read::{CaptureFiles, check_bounds, guard, next_batch};

/// Rows per batch: large enough that per-batch work (a dictionary mapped
/// once) is amortised, small enough to stay in cache-sized pieces.
const BATCH_ROWS: usize = 65_536;

/// A segment opened, checked against the decoding bounds and its footer
/// read, once: its parts share the handle (so what was checked is what is
/// read) instead of each checking the whole file again (measured: ten
/// parts of a segment checked it ten times, a fifth of `became-root`).
pub struct CheckedSegment {
    path: PathBuf,
    file: Positional,
    meta: ArrowReaderMetadata,
}

/// One part of a segment: its columns can be read once or more (a first
/// read of a few columns picks the rows a second read decodes whole).
pub struct SegmentPart {
    path: PathBuf,
    file: Positional,
    meta: ArrowReaderMetadata,
    row_groups: Vec<usize>,
    /// The segment's row number of the part's first row.
    pub first_row: u64,
    /// Rows in the part.
    pub rows: u64,
}

/// Opens `seg` through the capture's folder handle by its checked name and
/// checks it against the decoding bounds, as every reader does; its sha256
/// is the caller's to have checked (query discovery does).
pub fn open(files: &CaptureFiles, seg: &Segment) -> Result<CheckedSegment, CaptureError> {
    let (dir, name) = files.locate(seg)?;
    let path = dir.child(name);
    let file = dir.open_file(name)?;
    let file = Positional::new(file).map_err(|e| CaptureError::Io {
        path: path.clone(),
        op: "read the size of",
        source: e,
    })?;
    check_bounds(&path, &file, &seg.table)?;
    let perr = |source| CaptureError::Parquet {
        path: path.clone(),
        source,
    };
    let meta = guard(&path, || {
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(perr)?;
        let fields: Vec<Field> = meta
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                )),
                _ => f.as_ref().clone(),
            })
            .collect();
        let hinted = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
        ArrowReaderMetadata::try_new(Arc::clone(meta.metadata()), hinted).map_err(perr)
    })?;
    Ok(CheckedSegment { path, file, meta })
}

impl CheckedSegment {
    /// Part `part` of `parts` (the row groups split evenly, in order).
    pub fn part(&self, part: usize, parts: usize) -> SegmentPart {
        let groups = self.meta.metadata().row_groups();
        let parts = parts.max(1);
        let (lo, hi) = (
            groups.len() * part / parts,
            groups.len() * (part + 1) / parts,
        );
        let count = |r: &[parquet::file::metadata::RowGroupMetaData]| {
            u64::try_from(r.iter().map(|g| g.num_rows()).sum::<i64>()).unwrap_or(0)
        };
        let (first_row, rows) = (count(&groups[..lo]), count(&groups[lo..hi]));
        SegmentPart {
            path: self.path.clone(),
            file: self.file.clone(),
            meta: self.meta.clone(),
            row_groups: (lo..hi).collect(),
            first_row,
            rows,
        }
    }
}

impl SegmentPart {
    /// Batches of the `columns` the file has; with `keep` (one flag per
    /// row of the part), only the rows kept, the others skipped undecoded.
    ///
    /// Row group by row group: a batch that spans two row groups makes
    /// the reader hash every text value again to merge two dictionaries
    /// (measured: a fifth of a question's time).
    pub fn read(&self, columns: &[&str], keep: Option<&[bool]>) -> Result<Projected, CaptureError> {
        let wanted: Vec<usize> = self
            .meta
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| columns.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        let groups = self.meta.metadata().row_groups();
        let mut offset = 0usize;
        let mut plan = Vec::with_capacity(self.row_groups.len());
        for &g in &self.row_groups {
            let rows = usize::try_from(groups[g].num_rows()).unwrap_or(0);
            let flags = keep.map(|k| k[offset.min(k.len())..(offset + rows).min(k.len())].to_vec());
            offset += rows;
            // A row group none of whose rows is kept is not read at all.
            if flags.as_ref().is_some_and(|f| !f.contains(&true)) {
                continue;
            }
            // A text column with no value in this row group is left out
            // (a reader of the batch sees it as absent: null): the reader
            // would otherwise hash every row's empty value to build a
            // dictionary of nothing (measured: a fifth of a question's time
            // on a capture without pods).
            let schema = self.meta.parquet_schema();
            let empty: Vec<usize> = (0..groups[g].num_columns())
                .filter(|&leaf| {
                    let c = groups[g].column(leaf);
                    c.statistics()
                        .and_then(|st| st.null_count_opt())
                        .is_some_and(|n| i64::try_from(n).is_ok_and(|n| n == groups[g].num_rows()))
                })
                .map(|leaf| schema.get_column_root_idx(leaf))
                .filter(|&root| {
                    matches!(
                        self.meta.schema().field(root).data_type(),
                        DataType::Dictionary(..)
                    )
                })
                .collect();
            let roots = wanted.iter().copied().filter(|r| !empty.contains(r));
            plan.push((g, ProjectionMask::roots(schema, roots), flags));
        }
        Ok(Projected {
            path: self.path.clone(),
            file: self.file.clone(),
            meta: self.meta.clone(),
            plan: plan.into_iter(),
            reader: None,
            failed: false,
        })
    }
}

/// Batches of one read of a part.
pub struct Projected {
    path: PathBuf,
    file: Positional,
    meta: ArrowReaderMetadata,
    /// Row groups left, each with its columns and kept rows (None: all).
    plan: std::vec::IntoIter<(usize, ProjectionMask, Option<Vec<bool>>)>,
    reader: Option<ParquetRecordBatchReader>,
    failed: bool,
}

impl Projected {
    fn open_next(&mut self) -> Result<bool, CaptureError> {
        let Some((group, mask, flags)) = self.plan.next() else {
            return Ok(false);
        };
        let path = &self.path;
        let perr = |source| CaptureError::Parquet {
            path: path.clone(),
            source,
        };
        let file = self.file.clone();
        let meta = self.meta.clone();
        let reader = guard(path, || {
            let mut b = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
                .with_projection(mask)
                .with_row_groups(vec![group])
                .with_batch_size(BATCH_ROWS);
            if let Some(flags) = flags {
                let flags = arrow::array::BooleanArray::from(flags);
                b = b.with_row_selection(RowSelection::from_filters(&[flags]));
            }
            b.build().map_err(perr)
        })?;
        self.reader = Some(reader);
        Ok(true)
    }
}

impl Iterator for Projected {
    type Item = Result<RecordBatch, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            let Some(reader) = self.reader.as_mut() else {
                match self.open_next() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
            };
            match next_batch(&self.path, reader) {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => self.reader = None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}
