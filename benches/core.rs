//! Benchmarks of `kgents-core`'s hot paths.
//!
//! Targets (median, on the project's 2-core build machine): `decay/intensity_at` < 50 ns,
//! `field/top_k_10k_type_filter_k20` < 1 ms, `agentese/path_parse_typical` < 1 µs.
//!
//! Run: `cargo bench --bench core -- --quick`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use kgents_core::agentese::{Affordances, Path};
use kgents_core::decay::{HalfLife, Intensity, evaporates_at, intensity_at};
use kgents_core::field::{Pheromone, PheromoneField, PheromoneType, SenseQuery};

/// A deterministic field of `n` pheromones: every type, 50 sources, a third targeted, ages spread
/// over two hours, half-lives from 5 to 60 minutes, some with TTLs.
fn field_of(n: usize, now: Timestamp) -> Vec<Pheromone> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: cheap, deterministic, good enough to spread values.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..n)
        .map(|i| {
            let r = next();
            let pheromone_type = PheromoneType::ALL[(r % 13) as usize];
            let age_seconds = (r >> 8) % 7_200;
            let mut pheromone = Pheromone::new(
                pheromone_type,
                format!("agent-{}", (r >> 24) % 50),
                now - SignedDuration::from_secs(age_seconds as i64),
            )
            .with_initial_intensity(Intensity::clamped(((r >> 32) % 1000) as f64 / 1000.0))
            .with_half_life(HalfLife::from_minutes(5.0 + ((r >> 44) % 56) as f64).expect("valid"));
            if i % 3 == 0 {
                pheromone = pheromone.targeting(format!("agent-{}", (r >> 50) % 50));
            }
            if i % 7 == 0 {
                pheromone = pheromone.with_ttl(Duration::from_secs(3_600));
            }
            pheromone
        })
        .collect()
}

fn decay(c: &mut Criterion) {
    let mut group = c.benchmark_group("decay");
    let emitted = Timestamp::from_second(1_700_000_000).expect("valid");
    let now = emitted + SignedDuration::from_secs(1_234);
    let initial = Intensity::new(0.8).expect("valid");
    let half_life = HalfLife::from_minutes(10.0).expect("valid");
    group.bench_function("intensity_at", |b| {
        b.iter(|| {
            intensity_at(
                black_box(initial),
                black_box(half_life),
                black_box(emitted),
                black_box(now),
            )
        })
    });
    group.bench_function("evaporates_at", |b| {
        b.iter(|| {
            evaporates_at(
                black_box(initial),
                black_box(half_life),
                black_box(emitted),
                black_box(None),
            )
        })
    });
    group.finish();
}

fn field(c: &mut Criterion) {
    let mut group = c.benchmark_group("field");
    let now = Timestamp::from_second(1_700_000_000).expect("valid");
    let signals = field_of(10_000, now);
    let field = PheromoneField::new(&signals);
    let warnings = SenseQuery::all().with_type(PheromoneType::Warning);
    let targeted = SenseQuery::all()
        .with_type(PheromoneType::Warning)
        .with_type(PheromoneType::ReviewRequest)
        .for_target("agent-7");
    group.bench_function("top_k_10k_type_filter_k20", |b| {
        b.iter(|| field.top_k(black_box(&warnings), black_box(now), 20))
    });
    group.bench_function("top_k_10k_two_types_target_k20", |b| {
        b.iter(|| field.top_k(black_box(&targeted), black_box(now), 20))
    });
    group.bench_function("sense_10k_type_filter_all_ranked", |b| {
        b.iter(|| field.sense(black_box(&warnings), black_box(now)))
    });
    group.bench_function("top_k_10k_no_filter_k20", |b| {
        b.iter(|| field.top_k(black_box(&SenseQuery::all()), black_box(now), 20))
    });
    group.bench_function("heat_10k", |b| b.iter(|| field.heat(black_box(now))));
    group.finish();
}

fn agentese(c: &mut Criterion) {
    let mut group = c.benchmark_group("agentese");
    group.bench_function("path_parse_typical", |b| {
        b.iter(|| Path::parse(black_box("world.cluster.agents.b-gent.tether")))
    });
    let path = Path::parse("world.cluster.agents.b-gent.tether").expect("valid");
    group.bench_function("path_display", |b| b.iter(|| black_box(&path).to_string()));
    let affordances = Affordances::parse_all([
        "world.*.manifest",
        "self.memory.*",
        "concept.*.refine",
        "void.pheromone.sense",
        "world.cluster.agents.*",
    ])
    .expect("valid globs");
    group.bench_function("affordances_allows_5_globs", |b| {
        b.iter(|| affordances.allows(black_box(&path)))
    });
    group.finish();
}

criterion_group!(benches, decay, field, agentese);
criterion_main!(benches);
