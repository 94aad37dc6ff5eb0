//! The witness record's hot paths:
//! - `append/batch_N`: one batch of N records appended to the embedded redb store (one
//!   transaction, one fsync); criterion reports the time per batch, so the time per record is
//!   that divided by N. The operator's writer appends what queued while the previous batch was
//!   being written, so under load batches grow and the fsync is shared.
//! - `append_p99`: the per-record cost of 1,000 batches of 100, p50/p99 printed (a measuring
//!   loop beside criterion: criterion reports means, the target is a p99).
//! - `writer_p99`: the operator's writer as it runs: records arrive on a channel at a given rate
//!   (or all at once), `kgents_seance::batch::gather` forms the batches (up to 5 ms or 1,000
//!   records) and each is appended through the `WitnessStore` trait. Printed per arrival rate:
//!   the cost per record (each record charged its batch's append time divided by the batch's
//!   size), p50/p99 over records; the mean batch; and each record's latency from being sent to
//!   being durable (the window plus the append: nothing waits on it).
//! - `reconstruct/10000`: one agent rebuilt from 10,000 records (spec, status, proposals,
//!   pheromones, Events).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use kgents_seance::batch::{BATCH_RECORDS, BATCH_WINDOW, gather};
use kgents_seance::{
    AgentRef, NewRecord, RecordKind, RedbWitnessStore, WitnessRecord, WitnessStore, reconstruct,
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

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Runs the writer over `total` records sent `per_ms` a millisecond (`None`: all at once) and
/// prints what it cost.
fn writer_run(store: &RedbWitnessStore, label: &str, total: u64, per_ms: Option<u64>, first: u64) {
    let t0: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    let agent = AgentRef::new("default", "written");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn WitnessStore> = Arc::new(store.clone());
    let (cost, latency, batches) = runtime.block_on(async move {
        // The operator's channel capacity.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, NewRecord)>(4096);
        let producer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut i = 0;
            while i < total {
                let burst = per_ms.unwrap_or(total).min(total - i);
                if per_ms.is_some() {
                    tick.tick().await;
                }
                for _ in 0..burst {
                    let record = record(&agent, first + i, t0);
                    tx.send((Instant::now(), record)).await.unwrap();
                    i += 1;
                }
            }
        });
        let mut cost = Vec::with_capacity(total as usize);
        let mut latency = Vec::with_capacity(total as usize);
        let mut batches = 0usize;
        let mut batch = Vec::with_capacity(BATCH_RECORDS);
        loop {
            gather(&mut rx, &mut batch, BATCH_RECORDS, BATCH_WINDOW, |_| false).await;
            if batch.is_empty() {
                break;
            }
            let (sent, records): (Vec<Instant>, Vec<NewRecord>) = batch.drain(..).unzip();
            let size = records.len();
            let start = Instant::now();
            store.append(records).await.unwrap();
            let done = Instant::now();
            let each = (done - start).as_secs_f64() * 1e6 / size as f64;
            cost.extend(std::iter::repeat_n(each, size));
            latency.extend(sent.iter().map(|s| (done - *s).as_secs_f64() * 1e6));
            batches += 1;
        }
        producer.await.unwrap();
        (cost, latency, batches)
    });
    let (mut cost, mut latency) = (cost, latency);
    cost.sort_by(f64::total_cmp);
    latency.sort_by(f64::total_cmp);
    println!(
        "writer_p99 {label}: {} records in {batches} batches (mean {:.0}): per record p50 {:.1} µs, p99 {:.1} µs; sent → durable p50 {:.2} ms, p99 {:.2} ms",
        cost.len(),
        cost.len() as f64 / batches as f64,
        percentile(&cost, 50),
        percentile(&cost, 99),
        percentile(&latency, 50) / 1e3,
        percentile(&latency, 99) / 1e3,
    );
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

    // the writer's real batching, at three arrival rates
    for (label, total, per_ms) in [
        ("at 1,000 records/s", 3_000u64, Some(1u64)),
        ("at 10,000 records/s", 20_000, Some(10)),
        ("all at once", 20_000, None),
    ] {
        writer_run(&store, label, total, per_ms, n);
        n += total;
    }

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
