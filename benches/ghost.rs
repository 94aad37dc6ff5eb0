//! Benchmarks of `kgents-ghost`'s store: an agents index of 1,000 agents written to and read
//! from an `FsGhostStore` in a temporary directory, plus the pure encode and decode steps so the
//! filesystem's share (locking, two fsyncs, rename) can be told apart from JSON's.
//!
//! Run: `cargo bench --bench ghost -- --quick`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use kgents_ghost::snapshot::{AgentSummary, AgentsIndex};
use kgents_ghost::store::codec;
use kgents_ghost::{AgentName, FsGhostStore, GhostStore, Lookup, Payload, Query, Snapshot};

const AGENTS: usize = 1_000;

/// A deterministic agents index of `count` agents with varied phases and health.
fn agents_index(count: usize) -> Snapshot {
    const PHASES: [&str; 5] = ["Pending", "Running", "Degraded", "Failed", "Terminating"];
    const HEALTH: [&str; 4] = ["HEALTHY", "DEGRADED", "UNRESPONSIVE", "UNKNOWN"];
    const GENERA: [&str; 6] = ["A", "B", "L", "T", "PSI", "OMEGA"];
    let agents = (0..count)
        .map(|i| AgentSummary {
            name: AgentName::new(format!("agent-{i:04}")).expect("valid name"),
            namespace: format!("team-{}", i % 7),
            genus: GENERA[i % GENERA.len()].to_owned(),
            phase: PHASES[i % PHASES.len()].to_owned(),
            cognitive_health: HEALTH[i % HEALTH.len()].to_owned(),
            ready_replicas: (i % 4) as u32,
            replicas: 3,
        })
        .collect();
    let taken_at = Timestamp::from_second(1_800_000_000).expect("in range");
    Snapshot::new(taken_at, Payload::AgentsIndex(AgentsIndex { agents }))
}

fn store(c: &mut Criterion) {
    let snapshot = agents_index(AGENTS);
    let key = Query::AgentsIndex.into();
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = FsGhostStore::new(dir.path());
    store.write(&snapshot).expect("first write");
    let bytes = codec::encode(&snapshot).expect("encode");

    let mut group = c.benchmark_group("ghost");
    group.bench_function("fs_write_agents_index_1000", |b| {
        b.iter(|| store.write(black_box(&snapshot)).expect("write"));
    });
    group.bench_function("fs_read_agents_index_1000", |b| {
        b.iter(|| match store.read(black_box(&key)) {
            Lookup::Hit(s) => s,
            Lookup::Miss(miss) => panic!("benchmark read missed: {miss}"),
        });
    });
    group.bench_function("encode_agents_index_1000", |b| {
        b.iter(|| codec::encode(black_box(&snapshot)).expect("encode"));
    });
    group.bench_function("decode_agents_index_1000", |b| {
        b.iter(|| codec::decode(black_box(&bytes), &key).expect("decode"));
    });
    group.finish();
    println!(
        "agents index of {AGENTS} agents: {} bytes on disk",
        bytes.len()
    );
}

criterion_group!(benches, store);
criterion_main!(benches);
