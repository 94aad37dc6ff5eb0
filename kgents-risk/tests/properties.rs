//! Properties of the risk calculus (proptest, 512 cases each): bounds, monotonicity in every
//! factor, exact level boundaries, self-exclusion and the decision table.

use jiff::{SignedDuration, Timestamp};
use kgents_risk::{
    ChangeType, Decision, LedgerProposal, LedgerSnapshot, LevelThresholds, Magnitude,
    ProposalInput, ProposerKind, ReviewRequirements, RiskAssessment, RiskLevel, RiskPolicy,
    VelocityScope, assess,
};
use proptest::prelude::*;

const NAMESPACES: [&str; 3] = ["kgents", "team-a", "team-b"];
const PROPOSERS: [&str; 3] = [
    "system:serviceaccount:kgents:b-gent",
    "system:serviceaccount:kgents:k-gent",
    "alice",
];

fn now() -> Timestamp {
    Timestamp::from_second(1_764_000_000).expect("valid timestamp")
}

/// A ledger proposal: namespace index, name index, proposer index, seconds before now (negative =
/// in the future).
type ProposalEntry = (usize, u16, usize, i64);
/// An applied change: namespace index, seconds before now.
type AppliedEntry = (usize, i64);

fn proposal_entry() -> impl Strategy<Value = ProposalEntry> {
    (
        0..NAMESPACES.len(),
        0u16..60,
        0..PROPOSERS.len(),
        -7_200i64..(26 * 3_600),
    )
}

fn applied_entry() -> impl Strategy<Value = AppliedEntry> {
    (0..NAMESPACES.len(), -3_600i64..(30 * 3_600))
}

fn ledger_entries() -> impl Strategy<Value = (Vec<ProposalEntry>, Vec<AppliedEntry>)> {
    (
        prop::collection::vec(proposal_entry(), 0..60),
        prop::collection::vec(applied_entry(), 0..20),
    )
}

fn ledger_of(proposals: &[ProposalEntry], applied: &[AppliedEntry]) -> LedgerSnapshot {
    let mut ledger = LedgerSnapshot::new();
    for &(namespace, name, proposer, seconds_ago) in proposals {
        let created_at = now() - SignedDuration::from_secs(seconds_ago);
        ledger.record_proposal(
            NAMESPACES[namespace],
            LedgerProposal::new(
                format!("p{name}"),
                format!("uid-p{name}"),
                PROPOSERS[proposer],
                created_at,
            ),
        );
    }
    for &(namespace, seconds_ago) in applied {
        ledger.record_applied_change(
            NAMESPACES[namespace],
            now() - SignedDuration::from_secs(seconds_ago),
        );
    }
    ledger
}

fn change_type() -> impl Strategy<Value = ChangeType> {
    prop::sample::select(ChangeType::ALL.to_vec())
}

fn magnitude() -> impl Strategy<Value = Magnitude> {
    (
        0u64..1_000_000,
        0u64..1_000_000,
        0u64..5_000,
        0u64..5_000,
        0u64..5_000,
    )
        .prop_map(|(added, removed, files, tests_added, tests_removed)| {
            Magnitude::lines(added, removed, files).with_tests(tests_added, tests_removed)
        })
}

fn input() -> impl Strategy<Value = ProposalInput> {
    (
        change_type(),
        magnitude(),
        0..PROPOSERS.len(),
        any::<bool>(),
        0u32..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(change, magnitude, proposer, auto_merge, approvers, has_uid, has_created)| {
                let kind = ProposerKind::from_username(PROPOSERS[proposer]);
                let mut input =
                    ProposalInput::new("p-self", NAMESPACES[0], PROPOSERS[proposer], kind, change)
                        .with_magnitude(magnitude)
                        .with_review(ReviewRequirements {
                            auto_merge,
                            required_approvers: approvers,
                        });
                if has_uid {
                    input = input.with_uid("uid-self");
                }
                if has_created {
                    input = input.with_created_at(now());
                }
                input
            },
        )
}

fn run(input: &ProposalInput, ledger: &LedgerSnapshot, policy: &RiskPolicy) -> RiskAssessment {
    assess(input, ledger, policy, now())
}

/// Any f64 at all, NaN and infinities included.
fn any_weight() -> impl Strategy<Value = f64> {
    prop_oneof![-2.0f64..3.0, prop::num::f64::ANY]
}

fn thresholds() -> impl Strategy<Value = LevelThresholds> {
    (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0).prop_filter_map(
        "thresholds must be distinct",
        |(a, b, c)| {
            let mut sorted = [a, b, c];
            sorted.sort_by(f64::total_cmp);
            (sorted[0] < sorted[1] && sorted[1] < sorted[2]).then_some(LevelThresholds {
                low_max: sorted[0],
                medium_max: sorted[1],
                high_max: sorted[2],
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn score_and_factors_stay_in_their_bounds(
        input in input(),
        (proposals, applied) in ledger_entries(),
    ) {
        let policy = RiskPolicy::default();
        let a = run(&input, &ledger_of(&proposals, &applied), &policy);
        prop_assert!((0.0..=1.0).contains(&a.score), "{a}");
        prop_assert!(a.size_factor >= 1.0 && a.size_factor.is_finite());
        prop_assert!((0.5..=1.5).contains(&a.test_factor));
        prop_assert!((0.0..=0.5).contains(&a.velocity));
        prop_assert!((0.0..=0.3).contains(&a.cumulative));
        prop_assert_eq!(a.level, RiskLevel::classify(a.score, &policy.thresholds));
    }

    #[test]
    fn any_policy_even_an_invalid_one_never_panics_and_keeps_the_score_in_bounds(
        input in input(),
        (proposals, applied) in ledger_entries(),
        weights in prop::array::uniform12(any_weight()),
        windows in (any::<i64>(), any::<i64>()),
    ) {
        let mut policy = RiskPolicy::default();
        policy.base_risks.set(input.change_type, weights[0]);
        policy.size.log_weight = weights[1];
        policy.size.lines_per_file = weights[2];
        policy.tests.reward_per_doubling = weights[3];
        policy.tests.floor = weights[4];
        policy.tests.penalty_per_doubling = weights[5];
        policy.tests.cap = weights[6];
        policy.velocity.increment = weights[7];
        policy.velocity.cap = weights[8];
        policy.cumulative.per_change = weights[9];
        policy.cumulative.cap = weights[10];
        policy.thresholds.medium_max = weights[11];
        policy.velocity.window = SignedDuration::from_secs(windows.0);
        policy.cumulative.window = SignedDuration::from_secs(windows.1);
        let a = run(&input, &ledger_of(&proposals, &applied), &policy);
        prop_assert!((0.0..=1.0).contains(&a.score), "{a}");
        // Whatever the numbers, the explanation can be rendered.
        prop_assert!(a.explain().starts_with("risk "));
    }

    #[test]
    fn score_is_monotone_in_base_risk(
        input in input(),
        (proposals, applied) in ledger_entries(),
        low in 0.0f64..=1.0,
        high in 0.0f64..=1.0,
    ) {
        let (low, high) = if low <= high { (low, high) } else { (high, low) };
        let ledger = ledger_of(&proposals, &applied);
        let mut policy = RiskPolicy::default();
        policy.base_risks.set(input.change_type, low);
        let lower = run(&input, &ledger, &policy);
        policy.base_risks.set(input.change_type, high);
        let higher = run(&input, &ledger, &policy);
        prop_assert!(lower.score <= higher.score, "{lower} / {higher}");
        prop_assert!(lower.level <= higher.level);
    }

    #[test]
    fn score_is_monotone_in_size(
        input in input(),
        (proposals, applied) in ledger_entries(),
        extra in (0u64..1_000_000, 0u64..1_000_000, 0u64..5_000),
    ) {
        let ledger = ledger_of(&proposals, &applied);
        let policy = RiskPolicy::default();
        let smaller = run(&input, &ledger, &policy);
        let mut bigger_input = input.clone();
        bigger_input.magnitude.lines_added += extra.0;
        bigger_input.magnitude.lines_removed += extra.1;
        bigger_input.magnitude.files_changed += extra.2;
        let bigger = run(&bigger_input, &ledger, &policy);
        prop_assert!(smaller.size_factor <= bigger.size_factor);
        prop_assert!(smaller.score <= bigger.score, "{smaller} / {bigger}");
    }

    #[test]
    fn score_is_monotone_in_the_number_of_other_proposals(
        input in input(),
        (proposals, applied) in ledger_entries(),
        added in proposal_entry(),
        per_proposer in any::<bool>(),
    ) {
        let mut policy = RiskPolicy::default();
        if per_proposer {
            policy.velocity.scope = VelocityScope::Proposer;
        }
        let before = run(&input, &ledger_of(&proposals, &applied), &policy);
        let mut more = proposals.clone();
        more.push(added);
        let after = run(&input, &ledger_of(&more, &applied), &policy);
        prop_assert!(before.velocity <= after.velocity);
        prop_assert!(before.score <= after.score, "{before} / {after}");
    }

    #[test]
    fn score_is_monotone_in_the_freshness_of_other_proposals(
        input in input(),
        proposals in prop::collection::vec(proposal_entry(), 1..60),
        applied in prop::collection::vec(applied_entry(), 0..20),
        pick in any::<prop::sample::Index>(),
        younger_by in 0i64..7_200,
    ) {
        // Ages from now on, so "fresher" never means "filed after the assessed proposal".
        let proposals: Vec<ProposalEntry> =
            proposals.into_iter().map(|(n, p, who, ago)| (n, p, who, ago.max(0))).collect();
        let policy = RiskPolicy::default();
        let before = run(&input, &ledger_of(&proposals, &applied), &policy);
        let mut fresher = proposals.clone();
        let entry = &mut fresher[pick.index(proposals.len())];
        entry.3 = (entry.3 - younger_by).max(0);
        let after = run(&input, &ledger_of(&fresher, &applied), &policy);
        prop_assert!(before.velocity <= after.velocity);
        prop_assert!(before.score <= after.score, "{before} / {after}");
    }

    #[test]
    fn score_is_monotone_in_cumulative_changes(
        input in input(),
        (proposals, applied) in ledger_entries(),
        added in applied_entry(),
    ) {
        let policy = RiskPolicy::default();
        let before = run(&input, &ledger_of(&proposals, &applied), &policy);
        let mut more = applied.clone();
        more.push(added);
        let after = run(&input, &ledger_of(&proposals, &more), &policy);
        prop_assert!(before.cumulative <= after.cumulative);
        prop_assert!(before.score <= after.score, "{before} / {after}");
    }

    #[test]
    fn the_assessed_proposal_never_counts_in_its_own_velocity(
        input in input(),
        (proposals, applied) in ledger_entries(),
        self_ages in prop::collection::vec(-7_200i64..7_200, 1..4),
    ) {
        let policy = RiskPolicy::default();
        let ledger = ledger_of(&proposals, &applied);
        let without_self = run(&input, &ledger, &policy);
        let mut with_self = ledger.clone();
        for seconds_ago in self_ages {
            with_self.record_proposal(
                NAMESPACES[0],
                LedgerProposal::new("p-self", "uid-self", input.proposer.clone(),
                    now() - SignedDuration::from_secs(seconds_ago)),
            );
        }
        prop_assert_eq!(without_self, run(&input, &with_self, &policy));
    }

    #[test]
    fn levels_are_exact_at_the_default_boundaries_through_assess(
        change in change_type(),
        boundary in 0usize..3,
        fresh_others in 0usize..=5,
        applied_changes in 0u64..=4,
    ) {
        // base × (1 + velocity) + cumulative is made to land exactly on a threshold, with
        // velocity = 0.1 per fresh other proposal and 0.05 per applied change. Floating point
        // alone misses by an ulp in some of these (0.1 + 0.1 + 0.1 ≠ 0.3); the score must still
        // be the threshold, hence the lower level; 1e-9 (the score's resolution) above it must be
        // the upper level.
        let (threshold, at, above) = [
            (0.2, RiskLevel::Low, RiskLevel::Medium),
            (0.5, RiskLevel::Medium, RiskLevel::High),
            (0.8, RiskLevel::High, RiskLevel::Critical),
        ][boundary];
        let mut ledger = LedgerSnapshot::new();
        for index in 0..fresh_others {
            ledger.record_proposal(
                NAMESPACES[0],
                LedgerProposal::new(format!("p{index}"), format!("uid-p{index}"), "alice", now()),
            );
        }
        for hours in 0..applied_changes {
            ledger.record_applied_change(NAMESPACES[0], now() - SignedDuration::from_hours(hours as i64));
        }
        let velocity: f64 = (0..fresh_others).map(|_| 0.1).sum();
        let base_for = |score: f64| (score - 0.05 * applied_changes as f64) / (1.0 + velocity);
        let input = ProposalInput::new("p-self", NAMESPACES[0], "alice", ProposerKind::Person, change);
        let mut policy = RiskPolicy::default();
        policy.base_risks.set(change, base_for(threshold));
        let on = run(&input, &ledger, &policy);
        prop_assert_eq!(on.score, threshold, "{}", on);
        prop_assert_eq!(on.level, at);
        policy.base_risks.set(change, base_for(threshold + 1e-9));
        let over = run(&input, &ledger, &policy);
        prop_assert!(over.score > threshold, "{}", over);
        prop_assert_eq!(over.level, above);
    }

    #[test]
    fn classify_is_inclusive_upwards_for_any_ordered_thresholds(thresholds in thresholds()) {
        let t = &thresholds;
        prop_assert_eq!(RiskLevel::classify(t.low_max, t), RiskLevel::Low);
        prop_assert_eq!(RiskLevel::classify(t.low_max.next_up(), t), RiskLevel::Medium);
        prop_assert_eq!(RiskLevel::classify(t.medium_max, t), RiskLevel::Medium);
        prop_assert_eq!(RiskLevel::classify(t.medium_max.next_up(), t), RiskLevel::High);
        prop_assert_eq!(RiskLevel::classify(t.high_max, t), RiskLevel::High);
        prop_assert_eq!(RiskLevel::classify(t.high_max.next_up(), t), RiskLevel::Critical);
    }

    #[test]
    fn decisions_follow_the_table(
        input in input(),
        (proposals, applied) in ledger_entries(),
    ) {
        let a = run(&input, &ledger_of(&proposals, &applied), &RiskPolicy::default());
        let agent = input.proposer_kind == ProposerKind::Agent;
        let review = input.review;
        prop_assert_eq!(
            a.decision == Decision::Block,
            a.level == RiskLevel::Critical || (a.level == RiskLevel::High && agent)
        );
        prop_assert_eq!(a.decision == Decision::RequireHuman, a.level == RiskLevel::High && !agent);
        prop_assert_eq!(
            a.decision == Decision::AutoApprove,
            a.level == RiskLevel::Low && review.auto_merge && review.required_approvers == 0
        );
    }

    #[test]
    fn extreme_magnitudes_never_panic(
        input in input(),
        counts in prop::array::uniform5(any::<u64>()),
    ) {
        let mut input = input;
        input.magnitude = Magnitude::lines(counts[0], counts[1], counts[2]).with_tests(counts[3], counts[4]);
        let a = run(&input, &LedgerSnapshot::new(), &RiskPolicy::default());
        prop_assert!((0.0..=1.0).contains(&a.score));
        prop_assert!(a.size_factor.is_finite());
    }
}
