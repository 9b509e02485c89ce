//! The Parquet tables' columns, declared once per record type with [`table!`](crate::table!):
//! from that one list come the Arrow schema ([`schema`]), the Parquet writer's columns and the
//! read-back of past rows (both in `apo-sinks`, generic over [`Table`]). A column is a field of
//! the record (its name, or another), of one of the [`Value`] kinds, with a getter and a
//! setter generated from the field; a computed column (a JSON text of a nested list, a field
//! of a nested record, an enum's name) has a getter only and is not read back.
//!
//! The test below checks every record's serde fields against its columns, so a field added to
//! a record and not to its table fails the build's tests.

mod tables;

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::attributes::Attributes;

/// A record type with a Parquet table of its own.
pub trait Table: Sized + 'static {
    /// The columns that name one row's subject (a series' window, a decision): rows with the
    /// same key are revisions or replayed copies of one result, and `apo sql` reads the latest
    /// (highest `revision`) of each. Empty when every row is its own.
    const KEY: &'static [&'static str] = &[];
    /// The table's name (its directory under the data directory, its name in SQL).
    const NAME: &'static str;
    /// The columns, in order.
    fn columns() -> Vec<Column<Self>>;
}

/// One column of `R`'s table.
pub struct Column<R> {
    /// The column's name in the schema.
    pub name: &'static str,
    /// Its kind, with the getter (and setter, where it is read back) of its value.
    pub value: Value<R>,
}

/// A column's Arrow kind and how its value is taken from (and put into) a record. Setters are
/// `None` for computed columns.
pub enum Value<R> {
    /// UTF-8 text from a `String` field.
    Utf8(fn(&R) -> &str, Option<fn(&mut R, &str)>),
    /// UTF-8 text that may be absent (a null): an optional `String` field, or a computed one.
    OptUtf8(fn(&R) -> Option<&str>, Option<fn(&mut R, Option<&str>)>),
    /// UTF-8 text computed from the record (written only).
    Text(fn(&R) -> String),
    /// A 64-bit integer.
    Int64(fn(&R) -> i64, Option<fn(&mut R, i64)>),
    /// A 64-bit integer that may be absent (a null).
    OptInt64(fn(&R) -> Option<i64>, Option<fn(&mut R, Option<i64>)>),
    /// A 32-bit integer.
    Int32(fn(&R) -> i32, Option<fn(&mut R, i32)>),
    /// A float.
    Float64(fn(&R) -> f64, Option<fn(&mut R, f64)>),
    /// A float that may be absent (a null).
    OptFloat64(fn(&R) -> Option<f64>, Option<fn(&mut R, Option<f64>)>),
    /// A boolean.
    Bool(fn(&R) -> bool, Option<fn(&mut R, bool)>),
    /// A UTC timestamp in milliseconds since the Unix epoch.
    TimestampMs(fn(&R) -> i64, Option<fn(&mut R, i64)>),
    /// A UTC timestamp in nanoseconds since the Unix epoch.
    TimestampNs(fn(&R) -> i64, Option<fn(&mut R, i64)>),
    /// A map of text to text (series attributes): an Arrow `Map<Utf8, Utf8>`, queried in SQL
    /// as `attributes['http.route']`. Null in files written before the column existed; read
    /// back as an empty map.
    Map(fn(&R) -> &Attributes, Option<fn(&mut R, Attributes)>),
}

/// The Arrow type of a [`Value::Map`] column: what `arrow`'s `MapBuilder` makes of two string
/// builders (entries `keys` not null, `values` nullable, unsorted).
pub fn map_type() -> DataType {
    let entries = DataType::Struct(Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]));
    DataType::Map(Arc::new(Field::new("entries", entries, false)), false)
}

impl<R> Value<R> {
    /// The column's Arrow type.
    pub fn data_type(&self) -> DataType {
        let utc = || Some("UTC".into());
        match self {
            Value::Utf8(..) | Value::OptUtf8(..) | Value::Text(_) => DataType::Utf8,
            Value::Int64(..) | Value::OptInt64(..) => DataType::Int64,
            Value::Int32(..) => DataType::Int32,
            Value::Float64(..) | Value::OptFloat64(..) => DataType::Float64,
            Value::Bool(..) => DataType::Boolean,
            Value::TimestampMs(..) => DataType::Timestamp(TimeUnit::Millisecond, utc()),
            Value::TimestampNs(..) => DataType::Timestamp(TimeUnit::Nanosecond, utc()),
            Value::Map(..) => map_type(),
        }
    }

    /// Whether the column may hold nulls.
    pub fn nullable(&self) -> bool {
        matches!(
            self,
            Value::OptFloat64(..) | Value::OptInt64(..) | Value::OptUtf8(..) | Value::Map(..)
        )
    }
}

/// The Arrow schema of `R`'s table. The `date` partition column (`date=YYYY-MM-DD`
/// directories, the UTC day of the window start) is added by the reader.
pub fn schema<R: Table>() -> SchemaRef {
    let fields: Vec<Field> = R::columns()
        .iter()
        .map(|c| Field::new(c.name, c.value.data_type(), c.value.nullable()))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Declares the table of a record type: `table!(Type => "name" { columns })`, each column
/// `field: Kind` (the column named as the field), `column = field: Kind` (named otherwise),
/// `field: Kind as T` (an integer field of type `T`, or `Option<T>` for `OptInt64`, stored as
/// the kind's integer), `name: Text(function)` (computed by `function(&record) -> String`), or
/// `name: Kind(getter)` (computed by the kind's getter, e.g. `fn(&R) -> Option<&str>` for
/// `OptUtf8`). Computed columns are not read back.
#[macro_export]
macro_rules! table {
    ($ty:ty => $name:literal $(key [$($k:ident),* $(,)?])? { $( $first:ident $(= $field:ident)? : $kind:ident $(as $cast:ident)? $(($getter:path))? ),* $(,)? }) => {
        impl $crate::table::Table for $ty {
            const NAME: &'static str = $name;
            $(const KEY: &'static [&'static str] = &[$(stringify!($k)),*];)?
            fn columns() -> Vec<$crate::table::Column<Self>> {
                vec![ $(
                    $crate::table::Column {
                        name: stringify!($first),
                        value: $crate::__column!($ty, [$first $($field)?], $kind $(as $cast)? $(($getter))?),
                    }
                ),* ]
            }
        }
    };
}

/// One column's [`Value`]: the getter and setter of its field (the last identifier of the
/// bracket) for the kind. Used by [`table!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __column {
    (@num $ty:ty, $field:ident, $kind:ident, $prim:ty) => {{
        fn get(r: &$ty) -> $prim {
            r.$field
        }
        fn set(r: &mut $ty, v: $prim) {
            r.$field = v;
        }
        $crate::table::Value::$kind(get, Some(set))
    }};
    (@cast $ty:ty, $field:ident, $kind:ident, $prim:ty, $cast:ty) => {{
        fn get(r: &$ty) -> $prim {
            r.$field as $prim
        }
        fn set(r: &mut $ty, v: $prim) {
            r.$field = v as $cast;
        }
        $crate::table::Value::$kind(get, Some(set))
    }};
    (@prim $ty:ty, $field:ident, Int64 $(, $cast:ty)?) => { $crate::__column!(@pick $ty, $field, Int64, i64 $(, $cast)?) };
    (@prim $ty:ty, $field:ident, Int32 $(, $cast:ty)?) => { $crate::__column!(@pick $ty, $field, Int32, i32 $(, $cast)?) };
    (@prim $ty:ty, $field:ident, Float64 $(, $cast:ty)?) => { $crate::__column!(@pick $ty, $field, Float64, f64 $(, $cast)?) };
    (@prim $ty:ty, $field:ident, Bool) => { $crate::__column!(@pick $ty, $field, Bool, bool) };
    (@prim $ty:ty, $field:ident, TimestampMs) => { $crate::__column!(@pick $ty, $field, TimestampMs, i64) };
    (@prim $ty:ty, $field:ident, TimestampNs) => { $crate::__column!(@pick $ty, $field, TimestampNs, i64) };
    (@pick $ty:ty, $field:ident, $kind:ident, $prim:ty) => { $crate::__column!(@num $ty, $field, $kind, $prim) };
    (@pick $ty:ty, $field:ident, $kind:ident, $prim:ty, $cast:ty) => { $crate::__column!(@cast $ty, $field, $kind, $prim, $cast) };
    ($ty:ty, [$name:ident], Text($getter:path)) => {
        $crate::table::Value::Text($getter)
    };
    ($ty:ty, [$name:ident], $kind:ident($getter:path)) => {
        $crate::table::Value::$kind($getter, None)
    };
    ($ty:ty, [$name:ident $field:ident], $($rest:tt)*) => {
        $crate::__column!($ty, [$field], $($rest)*)
    };
    ($ty:ty, [$field:ident], Utf8) => {{
        fn get(r: &$ty) -> &str {
            &r.$field
        }
        fn set(r: &mut $ty, v: &str) {
            r.$field = v.to_string();
        }
        $crate::table::Value::Utf8(get, Some(set))
    }};
    ($ty:ty, [$field:ident], Map) => {{
        fn get(r: &$ty) -> &$crate::attributes::Attributes {
            &r.$field
        }
        fn set(r: &mut $ty, v: $crate::attributes::Attributes) {
            r.$field = v;
        }
        $crate::table::Value::Map(get, Some(set))
    }};
    ($ty:ty, [$field:ident], OptFloat64) => {{
        fn get(r: &$ty) -> Option<f64> {
            r.$field
        }
        fn set(r: &mut $ty, v: Option<f64>) {
            r.$field = v;
        }
        $crate::table::Value::OptFloat64(get, Some(set))
    }};
    ($ty:ty, [$field:ident], OptUtf8) => {{
        fn get(r: &$ty) -> Option<&str> {
            r.$field.as_deref()
        }
        fn set(r: &mut $ty, v: Option<&str>) {
            r.$field = v.map(str::to_string);
        }
        $crate::table::Value::OptUtf8(get, Some(set))
    }};
    ($ty:ty, [$field:ident], OptInt64 as $cast:ty) => {{
        fn get(r: &$ty) -> Option<i64> {
            r.$field.map(|v| v as i64)
        }
        fn set(r: &mut $ty, v: Option<i64>) {
            r.$field = v.map(|v| v as $cast);
        }
        $crate::table::Value::OptInt64(get, Some(set))
    }};
    ($ty:ty, [$field:ident], $kind:ident as $cast:ty) => {
        $crate::__column!(@prim $ty, $field, $kind, $cast)
    };
    ($ty:ty, [$field:ident], $kind:ident) => {
        $crate::__column!(@prim $ty, $field, $kind)
    };
}

pub use tables::{
    action_outcome, circuit_open_for_ms, circuit_peer, circuit_state, critical_path_segments,
    decision_action, drivers_text, every_table, evidence_json, tune_from, tune_setting, tune_to,
    TableInfo,
};

#[cfg(test)]
mod tests;
