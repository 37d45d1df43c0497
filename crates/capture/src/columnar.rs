//! Typed reads and writes of the events table, column by column.
//!
//! serde_arrow reads a row as a map, matching every column name against the
//! struct's field names on every row; that was most of replay's time
//! (measured 366,000 events/s). Here each column is checked and downcast
//! once per batch. A batch whose columns are not exactly the expected ones
//! (an older format, a damaged or crafted file) returns None and takes the
//! serde_arrow path, which explains what does not match.
//!
//! Writing is the same idea: one typed Arrow builder per column, appended
//! to straight from the row, where serde_arrow walked each row through
//! serde (a quarter of the recorder's CPU under a storm). The schema stays
//! the one traced from the type (`Table::fields`); a test checks both paths
//! build the same batch.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, GenericListArray, Int64Builder,
    ListBuilder, StringArray, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{
    DataType, FieldRef, Int64Type, Schema, TimeUnit, TimestampNanosecondType, UInt32Type,
    UInt64Type,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::model::creds::with_cred_columns;
use crate::model::event::Event;

/// One column of a known type, ready to read row by row.
trait Column<'a>: Sized {
    type Value;
    fn new(array: &'a ArrayRef) -> Option<Self>;
    fn get(&self, row: usize) -> Self::Value;
}

/// i64 stored as Int64 or as a nanosecond timestamp.
fn i64_values(array: &ArrayRef) -> Option<&[i64]> {
    match array.data_type() {
        DataType::Int64 => Some(array.as_primitive_opt::<Int64Type>()?.values()),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(
            array
                .as_primitive_opt::<TimestampNanosecondType>()?
                .values(),
        ),
        _ => None,
    }
}

macro_rules! required_primitive {
    ($name:ident, $t:ty, $values:expr) => {
        struct $name<'a>(&'a [$t]);
        impl<'a> Column<'a> for $name<'a> {
            type Value = $t;
            fn new(array: &'a ArrayRef) -> Option<Self> {
                no_nulls(array)?;
                Some(Self($values(array)?))
            }
            fn get(&self, row: usize) -> $t {
                self.0[row]
            }
        }
    };
}

macro_rules! optional_primitive {
    ($name:ident, $t:ty, $values:expr) => {
        struct $name<'a>(&'a ArrayRef, &'a [$t]);
        impl<'a> Column<'a> for $name<'a> {
            type Value = Option<$t>;
            fn new(array: &'a ArrayRef) -> Option<Self> {
                Some(Self(array, $values(array)?))
            }
            fn get(&self, row: usize) -> Option<$t> {
                self.0.is_valid(row).then(|| self.1[row])
            }
        }
    };
}

/// Some when the column has no null (a required field's column).
fn no_nulls(array: &ArrayRef) -> Option<()> {
    (array.null_count() == 0).then_some(())
}

fn u64_values(array: &ArrayRef) -> Option<&[u64]> {
    Some(array.as_primitive_opt::<UInt64Type>()?.values())
}

fn u32_values(array: &ArrayRef) -> Option<&[u32]> {
    Some(array.as_primitive_opt::<UInt32Type>()?.values())
}

required_primitive!(I64, i64, i64_values);
required_primitive!(U64, u64, u64_values);
required_primitive!(U32, u32, u32_values);
optional_primitive!(OptI64, i64, i64_values);
optional_primitive!(OptU32, u32, u32_values);
optional_primitive!(OptU64, u64, u64_values);

struct Bool<'a>(&'a BooleanArray);
impl<'a> Column<'a> for Bool<'a> {
    type Value = bool;
    fn new(array: &'a ArrayRef) -> Option<Self> {
        no_nulls(array)?;
        Some(Self(array.as_boolean_opt()?))
    }
    fn get(&self, row: usize) -> bool {
        self.0.value(row)
    }
}

struct OptBool<'a>(&'a BooleanArray);
impl<'a> Column<'a> for OptBool<'a> {
    type Value = Option<bool>;
    fn new(array: &'a ArrayRef) -> Option<Self> {
        Some(Self(array.as_boolean_opt()?))
    }
    fn get(&self, row: usize) -> Option<bool> {
        self.0.is_valid(row).then(|| self.0.value(row))
    }
}

struct Str<'a>(&'a StringArray);
impl<'a> Column<'a> for Str<'a> {
    type Value = String;
    fn new(array: &'a ArrayRef) -> Option<Self> {
        no_nulls(array)?;
        Some(Self(array.as_string_opt::<i32>()?))
    }
    fn get(&self, row: usize) -> String {
        self.0.value(row).to_owned()
    }
}

struct OptStr<'a>(&'a StringArray);
impl<'a> Column<'a> for OptStr<'a> {
    type Value = Option<String>;
    fn new(array: &'a ArrayRef) -> Option<Self> {
        Some(Self(array.as_string_opt::<i32>()?))
    }
    fn get(&self, row: usize) -> Option<String> {
        self.0.is_valid(row).then(|| self.0.value(row).to_owned())
    }
}

/// A list column (32-bit offsets) whose items have no nulls.
struct List<'a, V> {
    list: &'a GenericListArray<i32>,
    items: V,
}

impl<'a, V> List<'a, V> {
    fn of(array: &'a ArrayRef, items: impl FnOnce(&'a ArrayRef) -> Option<V>) -> Option<Self> {
        let list = array.as_list_opt::<i32>()?;
        no_nulls(list.values())?;
        Some(Self {
            list,
            items: items(list.values())?,
        })
    }
    fn range(&self, row: usize) -> std::ops::Range<usize> {
        let offsets = self.list.value_offsets();
        offsets[row] as usize..offsets[row + 1] as usize
    }
}

struct ListU32<'a>(List<'a, &'a [u32]>);
impl<'a> Column<'a> for ListU32<'a> {
    type Value = Vec<u32>;
    fn new(array: &'a ArrayRef) -> Option<Self> {
        no_nulls(array)?;
        Some(Self(List::of(array, u32_values)?))
    }
    fn get(&self, row: usize) -> Vec<u32> {
        self.0.items[self.0.range(row)].to_vec()
    }
}

struct OptListU32<'a>(List<'a, &'a [u32]>);
impl<'a> Column<'a> for OptListU32<'a> {
    type Value = Option<Vec<u32>>;
    fn new(array: &'a ArrayRef) -> Option<Self> {
        Some(Self(List::of(array, u32_values)?))
    }
    fn get(&self, row: usize) -> Option<Vec<u32>> {
        self.0
            .list
            .is_valid(row)
            .then(|| self.0.items[self.0.range(row)].to_vec())
    }
}

struct ListStr<'a>(List<'a, &'a StringArray>);
impl<'a> Column<'a> for ListStr<'a> {
    type Value = Vec<String>;
    fn new(array: &'a ArrayRef) -> Option<Self> {
        no_nulls(array)?;
        Some(Self(List::of(array, |v| v.as_string_opt::<i32>())?))
    }
    fn get(&self, row: usize) -> Vec<String> {
        self.0
            .range(row)
            .map(|i| self.0.items.value(i).to_owned())
            .collect()
    }
}

/// The builder a column kind is written with.
trait Kind {
    type Builder: Put + Default + Send;
}

/// Appends one row's value; finishes the column.
trait Put {
    type Value;
    fn put(&mut self, value: &Self::Value);
    fn done(&mut self) -> ArrayRef;
}

macro_rules! put_builder {
    ($kind:ident, $name:ident, $builder:ty, $value:ty, |$b:ident, $v:ident| $append:expr) => {
        #[derive(Default)]
        struct $name($builder);
        impl Put for $name {
            type Value = $value;
            fn put(&mut self, $v: &$value) {
                let $b = &mut self.0;
                $append
            }
            fn done(&mut self) -> ArrayRef {
                Arc::new(self.0.finish())
            }
        }
        impl Kind for $kind<'_> {
            type Builder = $name;
        }
    };
}

put_builder!(I64, PutI64, Int64Builder, i64, |b, v| b.append_value(*v));
put_builder!(U64, PutU64, UInt64Builder, u64, |b, v| b.append_value(*v));
put_builder!(U32, PutU32, UInt32Builder, u32, |b, v| b.append_value(*v));
put_builder!(OptI64, PutOptI64, Int64Builder, Option<i64>, |b, v| b
    .append_option(*v));
put_builder!(OptU32, PutOptU32, UInt32Builder, Option<u32>, |b, v| b
    .append_option(*v));
put_builder!(OptU64, PutOptU64, UInt64Builder, Option<u64>, |b, v| b
    .append_option(*v));
put_builder!(Bool, PutBool, BooleanBuilder, bool, |b, v| b
    .append_value(*v));
put_builder!(OptBool, PutOptBool, BooleanBuilder, Option<bool>, |b, v| b
    .append_option(*v));
put_builder!(Str, PutStr, StringBuilder, String, |b, v| b.append_value(v));
put_builder!(OptStr, PutOptStr, StringBuilder, Option<String>, |b, v| b
    .append_option(v.as_deref()));
put_builder!(
    ListU32,
    PutListU32,
    ListBuilder<UInt32Builder>,
    Vec<u32>,
    |b, v| {
        b.values().append_slice(v);
        b.append(true)
    }
);
put_builder!(
    OptListU32,
    PutOptListU32,
    ListBuilder<UInt32Builder>,
    Option<Vec<u32>>,
    |b, v| {
        if let Some(v) = v {
            b.values().append_slice(v);
        }
        b.append(v.is_some())
    }
);
put_builder!(
    ListStr,
    PutListStr,
    ListBuilder<StringBuilder>,
    Vec<String>,
    |b, v| {
        for s in v {
            b.values().append_value(s);
        }
        b.append(true)
    }
);

/// Rows of a table appended column by column (see the module docs).
pub trait Columns<T>: Send {
    fn push(&mut self, row: &T);
    /// The rows pushed since the last call as a batch of `fields`.
    fn finish(&mut self, fields: &[FieldRef]) -> Result<RecordBatch, ArrowError>;
}

/// A finished column as the schema has it: the builders make plain Int64
/// and lists with a default item field; the traced schema may say UTC
/// timestamp or name the item otherwise. Both are the same buffers.
fn conform(array: ArrayRef, field: &FieldRef) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == field.data_type() {
        Ok(array)
    } else {
        arrow::compute::cast(&array, field.data_type())
    }
}

/// `fn $name(&RecordBatch) -> Option<Vec<$row>>` over exactly these
/// columns. The struct literal names every field, so a field added to the
/// row type without a column here does not compile.
macro_rules! rows_from_batch {
    ($name:ident, $columns:ident -> $row:ident { $($field:ident: $kind:ident),* $(,)? }) => {
        pub(crate) fn $name(batch: &RecordBatch) -> Option<Vec<$row>> {
            const COLUMNS: &[&str] = &[$(stringify!($field)),*];
            if batch.num_columns() != COLUMNS.len() {
                return None;
            }
            $(let $field = $kind::new(batch.column_by_name(stringify!($field))?)?;)*
            Some(
                (0..batch.num_rows())
                    .map(|row| $row { $($field: $field.get(row),)* })
                    .collect(),
            )
        }

        #[derive(Default)]
        pub(crate) struct $columns {
            $($field: <$kind<'static> as Kind>::Builder,)*
        }

        impl Columns<$row> for $columns {
            fn push(&mut self, row: &$row) {
                $(self.$field.put(&row.$field);)*
            }
            fn finish(&mut self, fields: &[FieldRef]) -> Result<RecordBatch, ArrowError> {
                const COLUMNS: &[&str] = &[$(stringify!($field)),*];
                if fields.len() != COLUMNS.len() {
                    return Err(ArrowError::SchemaError(format!(
                        "{} columns given, {} built",
                        fields.len(),
                        COLUMNS.len()
                    )));
                }
                let arrays = fields
                    .iter()
                    .map(|f| {
                        let array = match f.name().as_str() {
                            $(stringify!($field) => self.$field.done(),)*
                            other => {
                                return Err(ArrowError::SchemaError(format!(
                                    "no builder for column {other}"
                                )))
                            }
                        };
                        conform(array, f)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                RecordBatch::try_new(Arc::new(Schema::new(fields.to_vec())), arrays)
            }
        }
    };
}

/// The events table's columns, the credential columns from
/// [`with_cred_columns`].
macro_rules! event_columns {
    (() [$($(#[$doc:meta])* $field:ident: $ty:ty, $kind:ident, $old:ident, $new:ident;)*]) => {
        rows_from_batch!(events_from_batch, EventColumns -> Event {
            time: I64,
            ktime_ns: U64,
            seq: U64,
            node_name: Str,
            pid: U32,
            tid: U32,
            ppid: U32,
            comm: Str,
            syscall: Str,
            abi: Str,
            option: OptStr,
            arg0: I64,
            arg1: I64,
            arg2: I64,
            groups: OptListU32,
            ret: I64,
            changed: Bool,
            $($old: $kind,)*
            $($new: $kind,)*
            auid: U32,
            sessionid: U32,
            cgroup_id: U64,
            pid_ns: U32,
            ns_pid: U32,
            event_flags: ListStr,
            last_seen: OptI64,
            repeat_count: OptU64,
            last_time: OptI64,
            exec_id: OptStr,
            parent_exec_id: OptStr,
            binary: OptStr,
            exe: OptStr,
            arguments: OptStr,
            cwd: OptStr,
            flags: OptStr,
            start_time: OptI64,
            process_uid: OptU32,
            parent_pid: OptU32,
            parent_binary: OptStr,
            parent_arguments: OptStr,
            parent_cwd: OptStr,
            parent_flags: OptStr,
            parent_start_time: OptI64,
            parent_parent_exec_id: OptStr,
            parent_uid: OptU32,
            parent_auid: OptU32,
            container_id: OptStr,
            container_runtime: OptStr,
            container_pid: OptU32,
            parent_container_pid: OptU32,
            pod_namespace: OptStr,
            pod_name: OptStr,
            pod_uid: OptStr,
            container_name: OptStr,
            image_name: OptStr,
            image_id: OptStr,
            pod_labels: ListStr,
            container_start_time: OptI64,
            old_ns_uid: OptU32,
            old_ns_euid: OptU32,
            old_ns_suid: OptU32,
            old_ns_fsuid: OptU32,
            old_ns_gid: OptU32,
            old_ns_egid: OptU32,
            old_ns_sgid: OptU32,
            old_ns_fsgid: OptU32,
            new_ns_uid: OptU32,
            new_ns_euid: OptU32,
            new_ns_suid: OptU32,
            new_ns_fsuid: OptU32,
            new_ns_gid: OptU32,
            new_ns_egid: OptU32,
            new_ns_sgid: OptU32,
            new_ns_fsgid: OptU32,
            root_scope: OptStr,
            policy: OptStr,
        });
    };
}
with_cred_columns!(event_columns!());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Table;

    fn sample() -> Vec<Event> {
        let mut full = Event {
            time: -5,
            ktime_ns: u64::MAX,
            seq: 7,
            node_name: "node".into(),
            pid: 1,
            tid: 2,
            ppid: u32::MAX,
            comm: "su".into(),
            syscall: "setgroups".into(),
            arg0: i64::MIN,
            arg1: -1,
            arg2: 3,
            groups: Some(vec![1, 2, 3]),
            ret: -1,
            changed: true,
            old_groups: vec![4],
            new_groups: vec![],
            event_flags: vec!["a".into(), "bé".into()],
            exec_id: Some("x".into()),
            binary: Some(String::new()),
            start_time: Some(i64::MIN),
            process_uid: Some(0),
            pod_labels: vec!["k=v".into()],
            container_start_time: Some(9),
            abi: "ia32".into(),
            option: Some("PR_SET_NO_NEW_PRIVS".into()),
            old_no_new_privs: Some(false),
            new_ns_euid: Some(0),
            root_scope: Some("namespace".into()),
            ..Event::default()
        };
        full.set_new_creds(crate::model::Creds {
            uid: 5,
            cap_effective: 0x1ff_ffff_ffff,
            userns: Some(u32::MAX),
            userns_level: Some(0),
            no_new_privs: Some(true),
            ..Default::default()
        });
        let empty = Event {
            groups: Some(vec![]),
            ..Event::default()
        };
        vec![full, Event::default(), empty]
    }

    #[test]
    fn typed_rows_equal_serde_rows() {
        let rows = sample();
        let batch = serde_arrow::to_record_batch(&Event::fields(), &rows).unwrap();
        let typed = events_from_batch(&batch).expect("exact schema takes the typed path");
        assert_eq!(typed, rows);
        let serde: Vec<Event> = serde_arrow::from_record_batch(&batch).unwrap();
        assert_eq!(typed, serde);
        // Slices keep their offsets (readers hand out sliced batches).
        assert_eq!(events_from_batch(&batch.slice(1, 2)).unwrap(), rows[1..]);
    }

    #[test]
    fn typed_columns_build_the_serde_batch() {
        let rows = sample();
        let fields = Event::fields();
        let serde = serde_arrow::to_record_batch(&fields, &rows).unwrap();
        let mut columns = EventColumns::default();
        for r in &rows {
            columns.push(r);
        }
        let typed = columns.finish(&fields).unwrap();
        assert_eq!(typed, serde);
        // Finishing empties the builders: the next batch starts fresh.
        columns.push(&rows[1]);
        assert_eq!(columns.finish(&fields).unwrap(), serde.slice(1, 1));
    }

    #[test]
    fn other_columns_take_the_serde_path() {
        let batch = serde_arrow::to_record_batch(&Event::fields(), &sample()).unwrap();
        let fewer = batch.project(&[0, 1, 2]).unwrap();
        assert!(events_from_batch(&fewer).is_none());
        // Same count, one column of another type.
        let mut columns = batch.columns().to_vec();
        let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
        let pid = batch.schema().index_of("pid").unwrap();
        columns[pid] = arrow::compute::cast(&columns[pid], &DataType::Int64).unwrap();
        fields[pid] = arrow::datatypes::Field::new("pid", DataType::Int64, false).into();
        let retyped =
            RecordBatch::try_new(arrow::datatypes::Schema::new(fields).into(), columns).unwrap();
        assert!(events_from_batch(&retyped).is_none());
    }
}
