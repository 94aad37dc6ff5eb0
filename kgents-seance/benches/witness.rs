//! The witness record's hot paths:
//! - `append/batch_N`: one batch of N records appended to the embedded redb store (one
//!   transaction, one fsync); criterion reports the time per batch, so the time per record is
//!   that divided by N. The operator's writer appends what queued while the previous batch was
//!   being written, so under load batches grow and the fsync is shared.
//! - `append_p99`: the per-record cost of 1,000 batches of 100, p50/p99 printed (a measuring
//!   loop beside criterion: criterion reports means, the target is a p99).
//! - `reconstruct/10000`: one agent rebuilt from 10,000 records (spec, status, proposals,
//!   pheromones, Events).

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use kgents_seance::{
    AgentRef, NewRecord, RecordKind, RedbWitnessStore, WitnessRecord, reconstruct,
};
use serde_json::json;

fn record(agent: &AgentRef, i: u64, at: Timestamp) -> NewRecord {
    let kind = match i % 6 {
        0 if i == 0 => RecordKind::SpecChanged {
            generation: Some(1),
            diff: json!([{"op": "replace", "path": "", "value": {"genus": "B", "replicas": 1, "model": "m"}}]),
        },
        0 => RecordKind::SpecChanged {
            generation: Some(i as i64),
            diff: json!([{"op": "replace", "path": "/replicas", "value": i % 5}]),
        },
        1 => RecordKind::PhaseChanged {
            from: Some("Running".into()),
            to: Some(if i % 12 == 1 { "Degraded" } else { "Running" }.into()),
        },
        2 => RecordKind::ConditionChanged {
            condition: "Ready".into(),
            from: None,
            to: Some(
                json!({"type": "Ready", "status": if i % 4 == 2 {"True"} else {"False"}, "reason": "Scaled"}),
            ),
        },
        3 => RecordKind::StatusChanged {
            diff: json!([{"op": "add", "path": "/readyReplicas", "value": i % 5}]),
        },
        4 => RecordKind::PheromoneEmitted {
            pheromone: format!("b-gent-warning-{i}"),
            pheromone_type: "WARNING".into(),
            target: None,
            intensity: 0.8,
            payload: Some("queue depth rising".into()),
        },
        _ => RecordKind::Event {
            event: format!("b-gent.{}", i % 50),
            event_type: "Normal".into(),
            reason: "Reconciled".into(),
            message: "applied the Deployment".into(),
            count: (i / 50) as i32 + 1,
        },
    };
    NewRecord {
        agent: agent.clone(),
        at: at + SignedDuration::from_millis(i as i64),
        kind,
    }
}

fn bench(c: &mut Criterion) {
    let t0: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbWitnessStore::open(&dir.path().join("witness.redb")).unwrap();
    let agent = AgentRef::new("default", "b-gent");
    let mut n = 1u64;

    let mut group = c.benchmark_group("append");
    for batch in [1u64, 100, 1000] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            b.iter(|| {
                let records = (0..batch).map(|i| record(&agent, n + i, t0)).collect();
                n += batch;
                store.append_blocking(records).unwrap()
            });
        });
    }
    group.finish();

    // p50/p99 of the per-record cost in batches of 100
    let mut per_record: Vec<f64> = (0..1000)
        .map(|_| {
            let records: Vec<_> = (0..100).map(|i| record(&agent, n + i, t0)).collect();
            n += 100;
            let start = Instant::now();
            store.append_blocking(records).unwrap();
            start.elapsed().as_secs_f64() * 1e6 / 100.0
        })
        .collect();
    per_record.sort_by(f64::total_cmp);
    println!(
        "append_p99: per record in batches of 100 (one fsync per batch): p50 {:.1} µs, p99 {:.1} µs",
        per_record[per_record.len() / 2],
        per_record[per_record.len() * 99 / 100]
    );

    let fold = AgentRef::new("default", "fold");
    let records: Vec<WitnessRecord> = (0..10_000u64)
        .map(|i| {
            let r = record(&fold, i, t0);
            WitnessRecord {
                agent: r.agent,
                at: r.at,
                seq: i + 1,
                kind: r.kind,
            }
        })
        .collect();
    assert!(reconstruct(&fold, &records, None).is_ok());
    c.bench_function("reconstruct/10000", |b| {
        b.iter(|| reconstruct(&fold, &records, None).unwrap())
    });
    // the same from the store: read 10,000 records back and fold them
    store
        .append_blocking(
            (0..10_000u64)
                .map(|i| record(&AgentRef::new("default", "stored"), i, t0))
                .collect(),
        )
        .unwrap();
    let stored = AgentRef::new("default", "stored");
    c.bench_function("read_and_reconstruct/10000", |b| {
        b.iter(|| {
            let records = store
                .read_blocking(&stored, kgents_seance::TimeRange::ALL)
                .unwrap();
            reconstruct(&stored, &records, None).unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
