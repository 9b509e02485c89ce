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
                Value::Text(get) => Arc::new(StringArray::from_iter_values(it.map(get))),
                Value::Int64(get, _) => Arc::new(Int64Array::from_iter_values(it.map(get))),
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

/// The records of `batch`, every column with a setter read back into a default record
/// (computed columns are not read back).
pub fn from_batch<R: Table + Default>(batch: &RecordBatch) -> Result<Vec<R>, ReadError> {
    let mut rows: Vec<R> = (0..batch.num_rows()).map(|_| R::default()).collect();
    for c in R::columns() {
        let name = c.name;
        match c.value {
            Value::Text(_) => {}
            Value::Utf8(_, Some(set)) => {
                let a: &StringArray = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.value(i)));
            }
            Value::Int64(_, Some(set)) => {
                let a: &Int64Array = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.value(i)));
            }
            Value::Int32(_, Some(set)) => {
                let a: &Int32Array = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.value(i)));
            }
            Value::Float64(_, Some(set)) => {
                let a: &Float64Array = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.value(i)));
            }
            Value::OptFloat64(_, Some(set)) => {
                let a: &Float64Array = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.is_valid(i).then(|| a.value(i))));
            }
            Value::Bool(_, Some(set)) => {
                let a: &BooleanArray = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.value(i)));
            }
            Value::TimestampMs(_, Some(set)) => {
                let a: &TimestampMillisecondArray = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.value(i)));
            }
            Value::TimestampNs(_, Some(set)) => {
                let a: &TimestampNanosecondArray = column(batch, name)?;
                rows.iter_mut()
                    .enumerate()
                    .for_each(|(i, r)| set(r, a.value(i)));
            }
            _ => {}
        }
    }
    Ok(rows)
}
