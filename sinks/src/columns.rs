//! Rows to Arrow batches and back, for any [`Table`]: the columns come from the table's one
//! declaration in `apo-schemas` (`apo_schemas::table`), so the Parquet writer and the read-back
//! never keep lists of their own.

use std::sync::Arc;

use apo_core::SinkError;
use apo_schemas::attributes::Attributes;
use apo_schemas::table::{schema, Table, Value};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, MapArray, MapBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray, TimestampNanosecondArray,
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
                Value::Map(get, _) => Arc::new(map_array(it.map(get))),
            }
        })
        .collect();
    RecordBatch::try_new(schema::<R>(), arrays)
        .map_err(|e| SinkError(format!("arrow batch of `{}`: {e}", R::NAME)))
}

/// The map array of `maps` (an empty map for a row without entries, never a null).
fn map_array<'a>(maps: impl Iterator<Item = &'a Attributes>) -> MapArray {
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for m in maps {
        for (k, v) in m {
            b.keys().append_value(k);
            b.values().append_value(v);
        }
        // Appending to a builder made of two string builders fails only when their lengths
        // differ, which the loop above keeps equal.
        let _ = b.append(true);
    }
    b.finish()
}

/// Row `i` of a map column: its entries (none at a null).
fn map_at(a: &MapArray, i: usize) -> Attributes {
    if a.is_null(i) {
        return Attributes::new();
    }
    let entries = a.value(i);
    let (Some(keys), Some(values)) = (
        entries.column(0).as_any().downcast_ref::<StringArray>(),
        entries.column(1).as_any().downcast_ref::<StringArray>(),
    ) else {
        return Attributes::new();
    };
    (0..keys.len())
        .filter(|&j| keys.is_valid(j) && values.is_valid(j))
        .map(|j| (keys.value(j).to_string(), values.value(j).to_string()))
        .collect()
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
            // Files written before the column existed have none: every row's map is empty.
            Value::Map(_, Some(_)) if batch.column_by_name(name).is_none() => {}
            Value::Map(_, Some(set)) => fill::<_, MapArray, _>(rs, batch, name, map_at, set)?,
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

    #[derive(Debug, Default, Clone, PartialEq)]
    struct Mapped {
        name: String,
        attributes: Attributes,
    }

    apo_schemas::table!(Mapped => "mapped" {
        name: Utf8,
        attributes: Map,
    });

    #[test]
    fn maps_come_back_as_they_went_in_and_a_missing_column_reads_empty() {
        let rows = vec![
            Mapped {
                name: "a".into(),
                attributes: Attributes::from([
                    ("http.route".to_string(), "/pay".to_string()),
                    ("http.request.method".to_string(), "POST".to_string()),
                ]),
            },
            Mapped {
                name: "b".into(),
                attributes: Attributes::new(),
            },
        ];
        let batch = to_batch(&rows).unwrap();
        assert_eq!(batch.column(1).null_count(), 0);
        assert_eq!(from_batch::<Mapped>(&batch).unwrap(), rows);
        // A file written before the column existed.
        let old = batch.project(&[0]).unwrap();
        let back = from_batch::<Mapped>(&old).unwrap();
        assert!(back.iter().all(|r| r.attributes.is_empty()));
        assert_eq!(back[1].name, "b");
    }
}
