//! Rows to Arrow batches and back, for any [`Table`]: the columns come from the table's one
//! declaration in `apo-schemas` (`apo_schemas::table`), so the Parquet writer and the read-back
//! never keep lists of their own.

use std::sync::Arc;

use apo_core::SinkError;
use apo_schemas::table::{schema, Table, Value};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, TimestampNanosecondArray,
};

use crate::history::ReadError;

/// The batch of `rows`, one array per column of `R`'s table.
pub fn to_batch<R: Table>(rows: &[R]) -> Result<RecordBatch, SinkError> {
    let arrays: Vec<ArrayRef> = R::columns()
        .into_iter()
        .map(|c| -> ArrayRef {
            let it = rows.iter();
            match c.value {
                Value::Utf8(get, _) => Arc::new(StringArray::from_iter_values(it.map(get))),
                Value::OptUtf8(get, _) => Arc::new(StringArray::from_iter(it.map(get))),
                Value::Text(get) => Arc::new(StringArray::from_iter_values(it.map(get))),
                Value::Int64(get, _) => Arc::new(Int64Array::from_iter_values(it.map(get))),
                Value::OptInt64(get, _) => Arc::new(Int64Array::from_iter(it.map(get))),
                Value::Int32(get, _) => Arc::new(Int32Array::from_iter_values(it.map(get))),
                Value::Float64(get, _) => Arc::new(Float64Array::from_iter_values(it.map(get))),
                Value::OptFloat64(get, _) => Arc::new(Float64Array::from_iter(it.map(get))),
                Value::Bool(get, _) => Arc::new(BooleanArray::from_iter(it.map(|r| Some(get(r))))),
                Value::TimestampMs(get, _) => Arc::new(
                    TimestampMillisecondArray::from_iter_values(it.map(get)).with_timezone("UTC"),
                ),
                Value::TimestampNs(get, _) => Arc::new(
                    TimestampNanosecondArray::from_iter_values(it.map(get)).with_timezone("UTC"),
                ),
            }
        })
        .collect();
    RecordBatch::try_new(schema::<R>(), arrays)
        .map_err(|e| SinkError(format!("arrow batch of `{}`: {e}", R::NAME)))
}

fn column<'b, A: Array + 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b A, ReadError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<A>())
        .ok_or_else(|| ReadError(format!("column `{name}` missing or of another type")))
}

/// Reads column `name` of `batch` as an `A` and hands each row's value (`read`) to `set`.
fn fill<'b, R, A: Array + 'static, V>(
    rows: &mut [R],
    batch: &'b RecordBatch,
    name: &str,
    read: impl Fn(&'b A, usize) -> V,
    set: impl Fn(&mut R, V),
) -> Result<(), ReadError> {
    let a: &'b A = column(batch, name)?;
    for (i, r) in rows.iter_mut().enumerate() {
        set(r, read(a, i));
    }
    Ok(())
}

/// `read` for a column that may hold nulls: `None` at a null.
fn nullable<'b, A: Array + 'static, V>(
    read: impl Fn(&'b A, usize) -> V,
) -> impl Fn(&'b A, usize) -> Option<V> {
    move |a, i| a.is_valid(i).then(|| read(a, i))
}

/// The records of `batch`, every column with a setter read back into a default record
/// (computed columns are not read back).
pub fn from_batch<R: Table + Default>(batch: &RecordBatch) -> Result<Vec<R>, ReadError> {
    let mut rows: Vec<R> = (0..batch.num_rows()).map(|_| R::default()).collect();
    let rs = &mut rows[..];
    for c in R::columns() {
        let name = c.name;
        match c.value {
            Value::Utf8(_, Some(set)) => {
                fill::<_, StringArray, _>(rs, batch, name, |a, i| a.value(i), set)?
            }
            Value::OptUtf8(_, Some(set)) => fill(
                rs,
                batch,
                name,
                nullable(|a: &StringArray, i| a.value(i)),
                set,
            )?,
            Value::Int64(_, Some(set)) => {
                fill::<_, Int64Array, _>(rs, batch, name, |a, i| a.value(i), set)?
            }
            Value::OptInt64(_, Some(set)) => fill(
                rs,
                batch,
                name,
                nullable(|a: &Int64Array, i| a.value(i)),
                set,
            )?,
            Value::Int32(_, Some(set)) => {
                fill::<_, Int32Array, _>(rs, batch, name, |a, i| a.value(i), set)?
            }
            Value::Float64(_, Some(set)) => {
                fill::<_, Float64Array, _>(rs, batch, name, |a, i| a.value(i), set)?
            }
            Value::OptFloat64(_, Some(set)) => fill(
                rs,
                batch,
                name,
                nullable(|a: &Float64Array, i| a.value(i)),
                set,
            )?,
            Value::Bool(_, Some(set)) => {
                fill::<_, BooleanArray, _>(rs, batch, name, |a, i| a.value(i), set)?
            }
            Value::TimestampMs(_, Some(set)) => {
                fill::<_, TimestampMillisecondArray, _>(rs, batch, name, |a, i| a.value(i), set)?
            }
            Value::TimestampNs(_, Some(set)) => {
                fill::<_, TimestampNanosecondArray, _>(rs, batch, name, |a, i| a.value(i), set)?
            }
            // Computed columns (text) and columns without a setter are not read back.
            _ => {}
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with every nullable kind a field can have.
    #[derive(Debug, Default, Clone, PartialEq)]
    struct Optional {
        name: String,
        note: Option<String>,
        replicas: Option<u32>,
        score: Option<f64>,
    }

    apo_schemas::table!(Optional => "optional" {
        name: Utf8,
        note: OptUtf8,
        replicas: OptInt64 as u32,
        score: OptFloat64,
    });

    #[test]
    fn nullable_fields_come_back_as_they_went_in() {
        let rows = vec![
            Optional {
                name: "a".into(),
                note: Some("n".into()),
                replicas: Some(7),
                score: Some(0.5),
            },
            Optional {
                name: "b".into(),
                ..Default::default()
            },
        ];
        let batch = to_batch(&rows).unwrap();
        assert_eq!(batch.column(1).null_count(), 1);
        assert_eq!(batch.column(2).null_count(), 1);
        assert_eq!(from_batch::<Optional>(&batch).unwrap(), rows);
    }
}
