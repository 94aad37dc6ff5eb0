//! Benchmark of the T-gent admission decision (`kgents_policy::decide`, the pure policy the
//! operator's webhook and Proposal controller are adapters over), the whole fast path of the
//! webhook minus HTTP: identity, allow-list, patch parsing, risk over the ledger and the
//! policy's CEL rules.
//!
//! Target (median, on the project's 2-core build machine): `admission/decide_50_rules_ledger_1000`
//! < 200 µs. `admission/decide_no_rules_ledger_1000` shows what the CEL rules cost.
//!
//! The end-to-end latency run (`examples/proposal.rs latency`) fills one namespace with
//! thousands of proposals from one proposer; `admission/decide_no_rules_ledger_10000_one_namespace`
//! is that case over the webhook's live ledger (kept one watch event at a time), and
//! `admission/ledger_rebuild_10000` what building a snapshot of 10,000 cached proposals costs
//! (what the webhook did every 250 ms before it kept a live ledger; the controller's
//! authoritative assessment of a new proposal still does it once).
//!
//! Run: `cargo bench --bench admission -- --quick`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use kgents::kgents_policy::{AdmissionPolicy, LiveLedger, PolicyDocument, PolicyRule, decide};
use kgents_crds::Proposal;
use kgents_risk::{LedgerProposal, LedgerSnapshot};
use kube::core::admission::{AdmissionRequest, AdmissionReview};

const NAMESPACE: &str = "kgents";
const NAMESPACES: [&str; 4] = [NAMESPACE, "team-a", "team-b", "team-c"];
const REQUESTER: &str = "system:serviceaccount:kgents:b-gent";

/// 1,000 entries over four namespaces, four in five filings and one in five applied changes,
/// aged up to two days.
fn ledger(now: Timestamp) -> LedgerSnapshot {
    let mut ledger = LedgerSnapshot::new();
    for index in 0..1_000u64 {
        let namespace = NAMESPACES[(index % 4) as usize];
        let at = now - SignedDuration::from_secs(((index * 7_919) % (48 * 3_600)) as i64);
        if index % 5 == 4 {
            ledger.record_applied_change(namespace, at);
        } else {
            ledger.record_proposal(
                namespace,
                LedgerProposal::new(
                    format!("p{index}"),
                    format!("u{index}"),
                    format!("agent-{}", index % 5),
                    at,
                ),
            );
        }
    }
    ledger
}

/// An informer cache of `count` proposals in one namespace from one proposer, filed over the
/// last half hour, one in three executed: the cached proposals, and the live ledger fed them
/// one at a time.
fn cached_ledger(count: u64, now: Timestamp) -> (Vec<Proposal>, LiveLedger) {
    let mut cache = Vec::new();
    let live = LiveLedger::new();
    for index in 0..count {
        let created = now - SignedDuration::from_millis((index * 180) as i64);
        let mut value = serde_json::json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": format!("gated-{index}"), "namespace": NAMESPACE,
                "uid": format!("uid-{index}"), "creationTimestamp": created.to_string()},
            "spec": {"proposer": REQUESTER, "changeType": "AGENT_SCALE",
                "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b-gent"},
                "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":2}}"}},
        });
        if index % 3 == 0 {
            value["status"] = serde_json::json!({"execution": {"success": true, "dryRun": false,
                "executedAt": created.to_string()}});
        }
        let proposal: Proposal = serde_json::from_value(value).expect("valid proposal");
        live.upsert(&proposal);
        cache.push(proposal);
    }
    (cache, live)
}

/// 50 rules of the kinds a policy holds: numeric limits on the patch, string checks on the
/// request and target, list predicates over containers, risk gates.
fn rules() -> Vec<PolicyRule> {
    let mut rules = Vec::new();
    for i in 0..20 {
        rules.push(PolicyRule::new(
            format!("max-replicas-{i}"),
            format!(
                "!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= {}",
                10 + i
            ),
        ));
    }
    for i in 0..10 {
        rules.push(
            PolicyRule::new(
                format!("no-privileged-{i}"),
                "!has(patch.spec) || !has(patch.spec.template) || patch.spec.template.spec.containers.all(c, !has(c.securityContext) || !c.securityContext.privileged)",
            )
            .for_kinds(&["Deployment", "Agent"]),
        );
    }
    for i in 0..10 {
        rules.push(PolicyRule::new(
            format!("name-{i}"),
            format!(
                "!target.name.startsWith('forbidden-{i}') && size(request.userInfo.username) < 300"
            ),
        ));
    }
    for i in 0..10 {
        rules.push(PolicyRule::new(
            format!("risk-{i}"),
            format!(
                "risk.score <= 0.{} || request.userInfo.username != 'blocked-{i}'",
                5 + i % 4
            ),
        ));
    }
    rules
}

fn request() -> AdmissionRequest<Proposal> {
    let review: AdmissionReview<Proposal> = serde_json::from_value(serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "r-1",
            "kind": {"group": "kgents.io", "version": "v1", "kind": "Proposal"},
            "resource": {"group": "kgents.io", "version": "v1", "resource": "proposals"},
            "name": "scale-b", "namespace": NAMESPACE, "operation": "CREATE",
            "userInfo": {"username": REQUESTER, "groups": ["system:serviceaccounts"]},
            "object": {
                "apiVersion": "kgents.io/v1", "kind": "Proposal",
                "metadata": {"name": "scale-b", "namespace": NAMESPACE, "uid": "new"},
                "spec": {
                    "proposer": REQUESTER, "changeType": "AGENT_SCALE",
                    "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b-gent"},
                    "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":3}}"},
                    "magnitude": {"linesAdded": 1, "linesRemoved": 1, "filesChanged": 1},
                },
            },
            "dryRun": false,
        }
    }))
    .expect("valid review");
    review.try_into().expect("has a request")
}

fn bench(c: &mut Criterion) {
    let now = Timestamp::from_second(1_800_000_000).expect("valid");
    let ledger = ledger(now);
    let request = request();
    let with_rules = AdmissionPolicy::from_document(&PolicyDocument {
        rules: rules(),
        ..PolicyDocument::default()
    })
    .expect("valid policy");
    assert_eq!(with_rules.rules.len(), 50);
    let verdict = decide(&request, &with_rules, &ledger, now);
    assert!(verdict.allowed, "{verdict:?}");
    let without_rules = AdmissionPolicy::default();
    let mut group = c.benchmark_group("admission");
    group.bench_function("decide_50_rules_ledger_1000", |b| {
        b.iter(|| decide(black_box(&request), &with_rules, &ledger, now))
    });
    group.bench_function("decide_no_rules_ledger_1000", |b| {
        b.iter(|| decide(black_box(&request), &without_rules, &ledger, now))
    });
    let (cached, live) = cached_ledger(10_000, now);
    assert_eq!(live.len(), 10_000);
    group.bench_function("decide_no_rules_ledger_10000_one_namespace", |b| {
        b.iter(|| decide(black_box(&request), &without_rules, &live, now))
    });
    group.bench_function("ledger_rebuild_10000", |b| {
        b.iter(|| kgents::kgents_policy::ledger::snapshot(black_box(&cached)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
