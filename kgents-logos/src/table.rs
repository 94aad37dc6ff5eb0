//! Pheromones listed as a server-side Table (`Accept: application/json;as=Table`), which the API
//! server builds from the CRD's printer columns without sending the objects.
//!
//! Why: a Pheromone is a few hundred bytes of spec but about a kilobyte on the wire, most of it
//! `managedFields`; listing 10,000 of them costs the API server far more time encoding the
//! objects than it costs to evaluate a few JSONPath columns each (on the testbed, about a third
//! of the time and a sixth of the bytes). The Pheromone CRD's wide columns (`Namespace`,
//! `Emitted`, `TTL`, `Created`) exist so that the Table carries everything sensing needs.
//!
//! A Table lacking one of those columns (a cluster whose CRD is older than this crate) is not an
//! error: [`records`] answers `None` and the caller lists the objects instead.
//!
//! Pure: [`records`] maps a decoded [`Table`] to records; the request is built in `live`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kgents_core::field::PheromoneType;
use kgents_crds::pheromone::{DEFAULT_HALF_LIFE_MINUTES, DEFAULT_INITIAL_INTENSITY};
use kgents_crds::{Pheromone, PheromoneSpec};
use serde::Deserialize;
use serde_json::Value;

use crate::outcome::PheromoneRecord;
use crate::summary;

/// The `Accept` header asking for a Table (and JSON objects from a server that cannot).
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// The columns a Table needs, by their CRD names, in the order of [`Columns`].
const NEEDED: [&str; 10] = [
    "Name",
    "Namespace",
    "Type",
    "Source",
    "Target",
    "Initial",
    "HalfLife",
    "Emitted",
    "TTL",
    "Created",
];

/// A `meta.k8s.io/v1` Table, only what is read of it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// `Table` (a server that ignored the Accept header answers a `PheromoneList`).
    #[serde(default)]
    pub kind: String,
    /// The columns, in cell order.
    #[serde(default)]
    pub column_definitions: Vec<ColumnDefinition>,
    /// One row per object.
    #[serde(default)]
    pub rows: Vec<Row>,
}

/// A column's definition.
#[derive(Debug, Deserialize)]
pub struct ColumnDefinition {
    /// The column's name (the CRD printer column's `name`).
    pub name: String,
}

/// One row: its cells, in the order of the column definitions.
#[derive(Debug, Deserialize)]
pub struct Row {
    /// The cells (JSON values; `null` where the JSONPath found nothing).
    #[serde(default)]
    pub cells: Vec<Value>,
}

/// The records of a Table of Pheromones as of `now`, or `None` when it is not such a Table
/// (not a Table, or a column missing). Rows the CRD would not have admitted are skipped, as
/// [`summary::pheromone_record`] skips such objects.
pub fn records(table: &Table, now: Timestamp) -> Option<Vec<PheromoneRecord>> {
    if table.kind != "Table" {
        return None;
    }
    let mut index = [0usize; NEEDED.len()];
    for (slot, name) in index.iter_mut().zip(NEEDED) {
        *slot = table
            .column_definitions
            .iter()
            .position(|c| c.name == name)?;
    }
    let records = table
        .rows
        .iter()
        .filter_map(|row| {
            let cell = |column: usize| row.cells.get(index[column]).unwrap_or(&Value::Null);
            let pheromone = pheromone_of_cells(&cell)?;
            summary::pheromone_record(&pheromone, now)
        })
        .collect();
    Some(records)
}

/// The Pheromone a row stands for, read from its cells (by [`NEEDED`] position) as a listed
/// object's fields would be deserialized: an absent `Initial` or `HalfLife` takes the CRD's
/// default, and a cell of the wrong shape drops the row. Built field by field rather than
/// through a JSON object: a list of 10,000 rows spends most of its client time here.
fn pheromone_of_cells<'a>(cell: &impl Fn(usize) -> &'a Value) -> Option<Pheromone> {
    let text = |column: usize| -> Option<Option<String>> {
        match cell(column) {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => None,
        }
    };
    let time = |column: usize| -> Option<Option<Time>> {
        match cell(column) {
            Value::Null => Some(None),
            Value::String(s) => s.parse::<Timestamp>().ok().map(|t| Some(Time(t))),
            _ => None,
        }
    };
    let number = |column: usize, default: f64| -> Option<f64> {
        match cell(column) {
            Value::Null => Some(default),
            value => value.as_f64(),
        }
    };
    let spec = PheromoneSpec {
        kind: PheromoneType::deserialize(cell(2)).ok()?,
        source: text(3)??,
        target: text(4)?,
        initial_intensity: number(5, DEFAULT_INITIAL_INTENSITY)?,
        half_life_minutes: number(6, DEFAULT_HALF_LIFE_MINUTES)?,
        emitted_at: time(7)?,
        ttl_seconds: match cell(8) {
            Value::Null => None,
            value => Some(value.as_i64()?),
        },
        payload: None,
        position: None,
    };
    Some(Pheromone {
        metadata: ObjectMeta {
            name: text(0)?,
            namespace: text(1)?,
            creation_timestamp: time(9)?,
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(columns: &[&str], rows: Vec<Vec<Value>>) -> Table {
        serde_json::from_value(json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": columns.iter().map(|c| json!({"name": c, "type": "string"})).collect::<Vec<_>>(),
            "rows": rows.into_iter().map(|cells| json!({"cells": cells})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    const COLUMNS: [&str; 12] = [
        "Name",
        "Type",
        "Source",
        "Target",
        "Initial",
        "HalfLife",
        "Phase",
        "Age",
        "Namespace",
        "Emitted",
        "TTL",
        "Created",
    ];

    #[test]
    fn rows_become_the_records_a_listed_object_would() {
        let now: Timestamp = "2026-12-03T01:00:00Z".parse().unwrap();
        let table = table(
            &COLUMNS,
            vec![
                vec![
                    json!("p-1"),
                    json!("WARNING"),
                    json!("a-gent"),
                    Value::Null,
                    json!(0.8),
                    json!(60),
                    Value::Null,
                    json!("5m"),
                    json!("team"),
                    json!("2026-12-03T00:00:00Z"),
                    json!(7200),
                    json!("2026-12-03T00:00:05Z"),
                ],
                // No emittedAt: the creation time stands in, as for an object.
                vec![
                    json!("p-2"),
                    json!("STATE"),
                    json!("b-gent"),
                    json!("a-gent"),
                    json!(1.0),
                    json!(10),
                    Value::Null,
                    json!("1h"),
                    json!("team"),
                    Value::Null,
                    Value::Null,
                    json!("2026-12-03T00:50:00Z"),
                ],
                // Not a pheromone the CRD admits (no source): skipped.
                vec![
                    json!("p-3"),
                    json!("STATE"),
                    Value::Null,
                    Value::Null,
                    json!(1.0),
                    json!(10),
                    Value::Null,
                    json!("1h"),
                    json!("team"),
                    Value::Null,
                    Value::Null,
                    json!("2026-12-03T00:50:00Z"),
                ],
            ],
        );
        let records = records(&table, now).expect("a Table with every column");
        assert_eq!(records.len(), 2, "{records:?}");
        let first = &records[0];
        assert_eq!(first.summary.name, "p-1");
        assert_eq!(first.summary.namespace, "team");
        assert_eq!(first.summary.source, "a-gent");
        assert_eq!(first.summary.target, None);
        assert!((first.summary.intensity - 0.4).abs() < 1e-9, "{first:?}");
        assert_eq!(
            first.summary.expires_at,
            Some("2026-12-03T02:00:00Z".parse().unwrap())
        );
        let second = &records[1];
        assert_eq!(second.summary.target.as_deref(), Some("a-gent"));
        assert_eq!(
            second.summary.emitted_at,
            "2026-12-03T00:50:00Z".parse::<Timestamp>().unwrap()
        );
        assert!((second.summary.intensity - 0.5).abs() < 1e-9, "{second:?}");
    }

    #[test]
    fn a_table_without_the_wide_columns_or_not_a_table_asks_for_the_objects() {
        let now = Timestamp::UNIX_EPOCH;
        let older_crd = table(&COLUMNS[..8], Vec::new());
        assert!(records(&older_crd, now).is_none());
        let mut list = table(&COLUMNS, Vec::new());
        list.kind = "PheromoneList".to_owned();
        assert!(records(&list, now).is_none());
        assert_eq!(records(&table(&COLUMNS, Vec::new()), now), Some(Vec::new()));
    }
}
