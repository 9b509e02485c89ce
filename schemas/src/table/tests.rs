//! The tables against the committed description of their columns (a change to a table is a
//! change to `golden_schemas.txt`, reviewed as such: files already written must stay
//! readable), and every record's serde fields against its columns.

use std::collections::BTreeSet;

use arrow_schema::SchemaRef;

use super::{every_table, Table};
use crate::action::ActionRecord;
use crate::critical_path::{CriticalPathRecord, CriticalPathShare};
use crate::decision::Decision;
use crate::model_output::{AnomalyRecord, ForecastRecord};
use crate::red::RedStats;
use crate::service_map::{ServiceMapCurrent, ServiceMapEdge};
use crate::slo::SloState;
use crate::WindowStats;

fn describe(name: &str, s: &SchemaRef) -> String {
    let mut out = format!("{name}\n");
    for f in s.fields() {
        let null = if f.is_nullable() { " nullable" } else { "" };
        out.push_str(&format!("  {} {}{null}\n", f.name(), f.data_type()));
    }
    out
}

fn all() -> String {
    every_table()
        .iter()
        .map(|t| describe(t.name, &t.schema))
        .collect()
}

#[test]
fn schemas_are_the_committed_ones() {
    let want = include_str!("golden_schemas.txt");
    assert_eq!(
        all(),
        want,
        "a table's columns changed: update golden_schemas.txt on purpose"
    );
}

/// The record's fields as serde names them (from its JSON Schema), dots as underscores.
fn serde_fields<T: schemars::JsonSchema>() -> BTreeSet<String> {
    let s = schemars::schema_for!(T);
    let props = s
        .as_object()
        .and_then(|o| o.get("properties"))
        .and_then(|p| p.as_object())
        .expect("a record's JSON Schema has properties");
    props.keys().map(|k| k.replace('.', "_")).collect()
}

fn check<T: Table + schemars::JsonSchema>(renamed: &[(&str, &str)]) {
    let columns: BTreeSet<String> = T::columns().iter().map(|c| c.name.to_string()).collect();
    // A field renamed is every column it is renamed to (a nested record's fields).
    let fields: BTreeSet<String> = serde_fields::<T>()
        .into_iter()
        .flat_map(|f| {
            let to: Vec<String> = renamed
                .iter()
                .filter(|(from, _)| *from == f)
                .map(|(_, to)| to.to_string())
                .collect();
            if to.is_empty() {
                vec![f]
            } else {
                to
            }
        })
        .collect();
    assert_eq!(
        columns,
        fields,
        "table `{}`: columns vs record fields",
        T::NAME
    );
}

#[test]
fn every_field_of_every_record_is_a_column() {
    check::<WindowStats>(&[]);
    check::<RedStats>(&[]);
    check::<CriticalPathRecord>(&[("start_ns", "start"), ("end_ns", "end")]);
    check::<CriticalPathShare>(&[]);
    check::<ServiceMapEdge>(&[]);
    check::<SloState>(&[]);
    check::<ServiceMapCurrent>(&[]);
    check::<AnomalyRecord>(&[]);
    check::<ForecastRecord>(&[]);
    check::<Decision>(&[
        ("circuit", "circuit_peer"),
        ("circuit", "circuit_state"),
        ("circuit", "circuit_open_for_ms"),
        ("tune", "tune_setting"),
        ("tune", "tune_from"),
        ("tune", "tune_to"),
    ]);
    check::<ActionRecord>(&[]);
}

/// A key names columns of its table; and every table but the audit log has one (its rows are
/// files named after their bytes: a copy is the same file).
#[test]
fn every_key_is_made_of_the_tables_columns() {
    for t in every_table() {
        for k in t.key {
            assert!(
                t.schema.field_with_name(k).is_ok(),
                "table `{}`: key column `{k}` is not a column",
                t.name
            );
        }
        assert_eq!(t.key.is_empty(), t.name == "actions", "table `{}`", t.name);
    }
}
