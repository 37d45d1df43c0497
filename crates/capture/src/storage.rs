//! How rows are stored from format 5 on: in types every engine reads with
//! its default settings. Spark and the other Java-based engines have no
//! unsigned integers (a `UINT_64` column arrives as `decimal(20,0)`) and,
//! by default, refuse nanosecond timestamps. So on disk:
//!
//! - every unsigned integer (uids, pids, namespace inodes, capability
//!   masks, counters, boot-clock times) is a signed 64-bit integer, wide
//!   enough for every value the kernel gives (ids and inodes < 2^32,
//!   capability masks < 2^41, boot-clock nanoseconds < 2^63); a 64-bit
//!   value past 2^63 is kept bit for bit (it reads back exactly, and as
//!   negative in other engines);
//! - every timestamp is a microsecond UTC `TIMESTAMP`; the one whose order
//!   within a microsecond matters, `time`, keeps its nanoseconds in the
//!   integer column `time_ns` next to it (the other wall-clock values are
//!   whole microseconds when made: [`micros`]).
//!
//! The Rust row types keep their natural types (the logical schema,
//! [`Table::fields`]); these functions convert a batch each way. Older
//! captures were stored in the logical types, which convert as no-ops.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, Field, FieldRef, Int64Type, Schema, SchemaRef, TimeUnit, UInt64Type,
};
use arrow::error::ArrowError;

/// The column that keeps `time`'s nanoseconds.
pub const TIME_NS: &str = "time_ns";
/// The first format stored this way; older ones hold the logical types.
pub const SINCE_FORMAT: u32 = 5;

/// Rows hold their times as stored (see the model's definition).
pub use crate::model::micros;

/// The stored type of a logical type.
fn stored_type(t: &DataType) -> DataType {
    match t {
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::List(item) => DataType::List(Arc::new(stored_field(item))),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| Arc::new(stored_field(f))).collect())
        }
        other => other.clone(),
    }
}

fn stored_field(f: &Field) -> Field {
    Field::new(f.name(), stored_type(f.data_type()), f.is_nullable())
}

/// The stored schema of a table whose rows have `logical` columns.
pub fn stored_schema(logical: &[FieldRef]) -> SchemaRef {
    let mut fields = Vec::with_capacity(logical.len() + 1);
    for f in logical {
        fields.push(Arc::new(stored_field(f)));
        if f.name() == "time" {
            fields.push(Arc::new(Field::new(
                TIME_NS,
                DataType::Int64,
                f.is_nullable(),
            )));
        }
    }
    Arc::new(Schema::new(fields))
}

/// Casts that fail on a value the target cannot hold, never wrap or null it.
const STRICT: CastOptions = CastOptions {
    safe: false,
    format_options: arrow::util::display::FormatOptions::new(),
};

fn cast(a: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    match (a.data_type(), to) {
        (from, to) if from == to => Ok(Arc::clone(a)),
        // Bit for bit, so no value is refused: one past 2^63 (none that
        // credtrail records from a kernel) reads back exactly, and shows
        // as negative to other readers.
        (DataType::UInt64, DataType::Int64) => Ok(Arc::new(
            a.as_primitive::<UInt64Type>()
                .unary::<_, Int64Type>(|v| v as i64),
        )),
        (DataType::Int64, DataType::UInt64) => Ok(Arc::new(
            a.as_primitive::<Int64Type>()
                .unary::<_, UInt64Type>(|v| v as u64),
        )),
        _ => cast_with_options(a, to, &STRICT),
    }
}

/// Whether `stored` is how some format stores a column of `logical` type.
fn storable_as(stored: &DataType, logical: &DataType) -> bool {
    use DataType::*;
    match (stored, logical) {
        (a, b) if a == b => true,
        (Int64, UInt8 | UInt16 | UInt32 | UInt64) => true,
        // Events' container_start_time was an integer before format 5.
        (Int64 | Timestamp(..), Timestamp(..)) => true,
        (List(a), List(b)) => storable_as(a.data_type(), b.data_type()),
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.name() == y.name() && storable_as(x.data_type(), y.data_type()))
        }
        _ => false,
    }
}

/// A batch of logical rows in the stored types (`stored` from
/// [`stored_schema`] of the batch's fields).
pub fn to_stored(batch: &RecordBatch, stored: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let mut columns = Vec::with_capacity(stored.fields().len());
    // Column for column as `stored_schema` lays them out.
    for (f, a) in batch.schema().fields().iter().zip(batch.columns()) {
        columns.push(cast(a, &stored_type(f.data_type()))?);
        if f.name() == "time" {
            columns.push(cast(a, &DataType::Int64)?);
        }
    }
    RecordBatch::try_new(Arc::clone(stored), columns)
}

/// A stored batch (any format) in the `logical` types: `time` from
/// `time_ns` where stored, columns the batch lacks left out (they read as
/// null or fail by name, as before), `time_ns` dropped.
pub fn to_logical(batch: &RecordBatch, logical: &[FieldRef]) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(logical.len());
    let mut columns = Vec::with_capacity(logical.len());
    for f in logical {
        let i = match (f.name().as_str(), schema.index_of(TIME_NS)) {
            ("time", Ok(i)) => i,
            _ => match schema.index_of(f.name()) {
                Ok(i) => i,
                Err(_) => continue,
            },
        };
        let source = schema.field(i);
        if !storable_as(source.data_type(), f.data_type()) {
            // Not a stored form of this column (a rewritten or crafted
            // file): left as it is, for the row decoder to refuse by name.
            fields.push(Arc::new(source.clone().with_name(f.name())));
            columns.push(Arc::clone(batch.column(i)));
            continue;
        }
        let nullable = source.is_nullable();
        fields.push(Arc::new(Field::new(
            f.name(),
            f.data_type().clone(),
            nullable,
        )));
        columns.push(cast(batch.column(i), f.data_type())?);
    }
    // Columns this build does not know stay, for the decoder to judge.
    for (f, a) in schema.fields().iter().zip(batch.columns()) {
        if f.name() != TIME_NS && !logical.iter().any(|l| l.name() == f.name()) {
            fields.push(Arc::clone(f));
            columns.push(Arc::clone(a));
        }
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerRow, Event, ProcEvent, ProcessRow, UsernsRow};
    use crate::table::Table;

    fn no_unsigned_or_nanos(t: &DataType) -> bool {
        match t {
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => false,
            DataType::Timestamp(u, _) => *u == TimeUnit::Microsecond,
            DataType::List(f) => no_unsigned_or_nanos(f.data_type()),
            DataType::Struct(fs) => fs.iter().all(|f| no_unsigned_or_nanos(f.data_type())),
            _ => true,
        }
    }

    #[test]
    fn stored_schemas_have_no_unsigned_integers_or_nanosecond_timestamps() {
        for fields in [
            Event::fields(),
            ProcEvent::fields(),
            ProcessRow::fields(),
            ContainerRow::fields(),
            UsernsRow::fields(),
        ] {
            for f in stored_schema(&fields).fields() {
                assert!(no_unsigned_or_nanos(f.data_type()), "{f:?}");
            }
        }
    }

    #[test]
    fn unsigned_values_round_trip_bit_for_bit() {
        use arrow::array::{UInt32Array, UInt64Array};
        let u64s: ArrayRef = Arc::new(UInt64Array::from(vec![0, 1 << 40, u64::MAX]));
        let u32s: ArrayRef = Arc::new(UInt32Array::from(vec![0, u32::MAX]));
        for a in [u64s, u32s] {
            let stored = cast(&a, &DataType::Int64).unwrap();
            assert_eq!(&cast(&stored, a.data_type()).unwrap(), &a);
        }
        let max: ArrayRef = Arc::new(UInt32Array::from(vec![u32::MAX]));
        let i = cast(&max, &DataType::Int64).unwrap();
        assert_eq!(i.as_primitive::<Int64Type>().value(0), 4294967295);
    }

    #[test]
    fn micros_cuts_to_whole_microseconds() {
        assert_eq!(micros(1_795_934_887_698_793_212), 1_795_934_887_698_793_000);
        assert_eq!(micros(-1), -1_000);
        assert_eq!(micros(5_000), 5_000);
    }
}
