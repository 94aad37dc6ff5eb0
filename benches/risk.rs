//! Benchmarks of `kgents-risk`'s hot path: `assess`, as the admission webhook calls it.
//!
//! Target (median, on the project's 2-core build machine): `risk/assess_ledger_1000_mixed`
//! < 20 µs. `risk/assess_ledger_1000_one_namespace` is the worst case, where every entry is in
//! the assessed proposal's namespace.
//!
//! Run: `cargo bench --bench risk -- --quick`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use kgents_risk::{
    ChangeType, LedgerProposal, LedgerSnapshot, Magnitude, ProposalInput, ProposerKind, RiskPolicy,
    assess,
};

const ASSESSED_NAMESPACE: &str = "kgents";
const NAMESPACES: [&str; 4] = [ASSESSED_NAMESPACE, "team-a", "team-b", "team-c"];

/// A deterministic ledger of `entries` entries: four in five are proposals, one in five applied
/// changes, spread over `namespaces`, from five proposers, aged from two minutes in the future
/// (clock skew) to two days old, so every window boundary and the velocity cap are exercised.
fn ledger_of(entries: usize, namespaces: &[&str], now: Timestamp) -> LedgerSnapshot {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: cheap, deterministic, good enough to spread values.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut ledger = LedgerSnapshot::new();
    for index in 0..entries {
        let r = next();
        let namespace = namespaces[(r % namespaces.len() as u64) as usize];
        let seconds_ago = ((r >> 8) % (48 * 3_600 + 120)) as i64 - 120;
        let at = now - SignedDuration::from_secs(seconds_ago);
        if index % 5 == 4 {
            ledger.record_applied_change(namespace, at);
        } else {
            let proposer = format!("system:serviceaccount:{namespace}:agent-{}", (r >> 40) % 5);
            ledger.record_proposal(
                namespace,
                LedgerProposal::new(
                    format!("proposal-{index}"),
                    format!("uid-{index:08x}"),
                    proposer,
                    at,
                ),
            );
        }
    }
    ledger
}

fn bench_assess(c: &mut Criterion) {
    let now = Timestamp::from_second(1_764_000_000).expect("valid timestamp");
    let policy = RiskPolicy::default();
    let proposal = ProposalInput::new(
        "proposal-new",
        ASSESSED_NAMESPACE,
        "system:serviceaccount:kgents:agent-1",
        ProposerKind::Agent,
        ChangeType::CodeFeature,
    )
    .with_uid("uid-new")
    .with_created_at(now)
    .with_magnitude(Magnitude::lines(100, 20, 3).with_tests(5, 0));

    let mut group = c.benchmark_group("risk");
    let mixed = ledger_of(1_000, &NAMESPACES, now);
    assert_eq!(mixed.len(), 1_000);
    group.bench_function("assess_ledger_1000_mixed", |b| {
        b.iter(|| {
            assess(
                black_box(&proposal),
                black_box(&mixed),
                &policy,
                black_box(now),
            )
        })
    });
    let one_namespace = ledger_of(1_000, &[ASSESSED_NAMESPACE], now);
    group.bench_function("assess_ledger_1000_one_namespace", |b| {
        b.iter(|| {
            assess(
                black_box(&proposal),
                black_box(&one_namespace),
                &policy,
                black_box(now),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_assess);
criterion_main!(benches);
