//! Behaviour of `assess` through the public API: self-exclusion, scopes, windows, clock skew,
//! the ledger contract (with a mockall mock), explanations, and the worked examples of the
//! original implementation recomputed under the new formula.

use jiff::{SignedDuration, Timestamp};
use kgents_risk::{
    ChangeType, Decision, LedgerProposal, LedgerSnapshot, Magnitude, ProposalInput, ProposalLedger,
    ProposerKind, ReviewRequirements, RiskAssessment, RiskLevel, RiskPolicy, VelocityScope, assess,
};
use mockall::predicate::eq;

const NS: &str = "kgents";
const AGENT: &str = "system:serviceaccount:kgents:b-gent";

fn now() -> Timestamp {
    Timestamp::from_second(1_764_000_000).expect("valid timestamp")
}

fn minutes_ago(minutes: i64) -> Timestamp {
    now() - SignedDuration::from_mins(minutes)
}

fn proposal(change: ChangeType) -> ProposalInput {
    ProposalInput::new("p-self", NS, AGENT, ProposerKind::Agent, change).with_uid("uid-self")
}

fn other(name: &str, proposer: &str, created_at: Timestamp) -> LedgerProposal {
    LedgerProposal::new(name, format!("uid-{name}"), proposer, created_at)
}

fn run(input: &ProposalInput, ledger: &LedgerSnapshot) -> RiskAssessment {
    assess(input, ledger, &RiskPolicy::default(), now())
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-9
}

mockall::mock! {
    Ledger {}
    impl ProposalLedger for Ledger {
        fn visit_proposals(
            &self,
            namespace: &str,
            since: Timestamp,
            visit: &mut dyn FnMut(&LedgerProposal),
        );
        fn visit_applied_changes(
            &self,
            namespace: &str,
            since: Timestamp,
            visit: &mut dyn FnMut(Timestamp),
        );
    }
}

#[test]
fn ledger_is_asked_once_per_history_for_the_namespace_and_its_windows() {
    let mut ledger = MockLedger::new();
    ledger
        .expect_visit_proposals()
        .with(
            eq(NS),
            eq(now() - SignedDuration::from_hours(1)),
            mockall::predicate::always(),
        )
        .times(1)
        .returning(|_, _, visit| {
            visit(&LedgerProposal::new("p-self", "uid-self", AGENT, now()));
            visit(&LedgerProposal::new("a", "uid-a", AGENT, minutes_ago(30)));
        });
    ledger
        .expect_visit_applied_changes()
        .with(
            eq(NS),
            eq(now() - SignedDuration::from_hours(24)),
            mockall::predicate::always(),
        )
        .times(1)
        .returning(|_, _, visit| {
            visit(minutes_ago(60));
            visit(minutes_ago(23 * 60));
        });

    let assessment = assess(
        &proposal(ChangeType::CodePatch),
        &ledger,
        &RiskPolicy::default(),
        now(),
    );
    assert_eq!(assessment.recent_proposals, 1);
    assert!(close(assessment.velocity, 0.05), "{}", assessment.velocity);
    assert_eq!(assessment.applied_changes, 2);
    assert!(close(assessment.cumulative, 0.1));
    // 0.1 × 1 × 1 × 1.05 + 0.1
    assert_eq!(assessment.score, 0.205);
    assert_eq!(assessment.level, RiskLevel::Medium);
}

#[test]
fn entries_outside_the_window_are_ignored_even_when_the_ledger_returns_them() {
    let mut ledger = MockLedger::new();
    ledger.expect_visit_proposals().returning(|_, _, visit| {
        visit(&LedgerProposal::new(
            "old",
            "uid-old",
            AGENT,
            minutes_ago(61),
        ));
        visit(&LedgerProposal::new(
            "edge",
            "uid-edge",
            AGENT,
            minutes_ago(60),
        ));
    });
    ledger
        .expect_visit_applied_changes()
        .returning(|_, _, visit| {
            visit(now() - SignedDuration::from_hours(24));
            visit(now() - SignedDuration::from_hours(200));
        });
    let assessment = assess(
        &proposal(ChangeType::CodePatch),
        &ledger,
        &RiskPolicy::default(),
        now(),
    );
    assert_eq!(
        (assessment.recent_proposals, assessment.applied_changes),
        (0, 0)
    );
    assert_eq!(assessment.score, 0.1);
}

#[test]
fn the_proposal_itself_never_counts_by_uid_or_by_name_before_it_has_one() {
    let mut ledger = LedgerSnapshot::new();
    ledger.record_proposal(NS, LedgerProposal::new("p-self", "uid-self", AGENT, now()));
    assert_eq!(
        run(&proposal(ChangeType::AgentDelete), &ledger).velocity,
        0.0
    );

    // At admission the object has no uid yet: the name identifies it.
    let mut admission = proposal(ChangeType::AgentDelete);
    admission.uid = None;
    assert_eq!(run(&admission, &ledger).velocity, 0.0);

    // Same name, different uid: an earlier incarnation that was deleted and re-created counts.
    let mut ledger = LedgerSnapshot::new();
    ledger.record_proposal(
        NS,
        LedgerProposal::new("p-self", "uid-before", AGENT, now()),
    );
    let assessment = run(&proposal(ChangeType::AgentDelete), &ledger);
    assert_eq!(assessment.recent_proposals, 1);
    assert!(close(assessment.velocity, 0.1));
}

#[test]
fn velocity_is_namespace_wide_by_default_and_per_proposer_on_request() {
    let mut ledger = LedgerSnapshot::new();
    ledger
        .record_proposal(NS, other("mine", AGENT, now()))
        .record_proposal(NS, other("theirs", "alice", now()))
        .record_proposal("elsewhere", other("far", AGENT, now()));
    let input = proposal(ChangeType::CodeFeature);
    let namespace_wide = run(&input, &ledger);
    assert_eq!(namespace_wide.recent_proposals, 2);
    assert!(close(namespace_wide.velocity, 0.2));

    let mut policy = RiskPolicy::default();
    policy.velocity.scope = VelocityScope::Proposer;
    let per_proposer = assess(&input, &ledger, &policy, now());
    assert_eq!(per_proposer.recent_proposals, 1);
    assert!(close(per_proposer.velocity, 0.1));
}

#[test]
fn velocity_fades_with_age_and_is_capped() {
    let mut ledger = LedgerSnapshot::new();
    ledger
        .record_proposal(NS, other("a", AGENT, minutes_ago(0)))
        .record_proposal(NS, other("b", AGENT, minutes_ago(30)))
        .record_proposal(NS, other("c", AGENT, minutes_ago(54)));
    let assessment = run(&proposal(ChangeType::CodePatch), &ledger);
    assert!(
        close(assessment.velocity, 0.1 + 0.05 + 0.01),
        "{}",
        assessment.velocity
    );

    let mut burst = LedgerSnapshot::new();
    for index in 0..40 {
        burst.record_proposal(NS, other(&format!("p{index}"), AGENT, now()));
    }
    let assessment = run(&proposal(ChangeType::CodePatch), &burst);
    assert_eq!(assessment.velocity, 0.5);
    assert_eq!(assessment.recent_proposals, 40);
}

#[test]
fn later_filings_do_not_raise_an_earlier_proposals_velocity() {
    let mut ledger = LedgerSnapshot::new();
    ledger
        .record_proposal(NS, other("before", AGENT, minutes_ago(20)))
        .record_proposal(NS, other("after", AGENT, minutes_ago(5)));
    let filed = proposal(ChangeType::CodePatch).with_created_at(minutes_ago(10));
    let assessment = run(&filed, &ledger);
    assert_eq!(assessment.recent_proposals, 1);
    // The age is still measured from now: 20 minutes.
    assert!(close(assessment.velocity, 0.1 * (1.0 - 20.0 / 60.0)));
}

#[test]
fn future_timestamps_count_as_fresh_and_extreme_times_do_not_panic() {
    let mut ledger = LedgerSnapshot::new();
    ledger
        .record_proposal(
            NS,
            other("skewed", AGENT, now() + SignedDuration::from_mins(3)),
        )
        .record_proposal(NS, other("absurd", AGENT, Timestamp::MAX))
        .record_applied_change(NS, now() + SignedDuration::from_secs(30))
        .record_applied_change(NS, Timestamp::MAX);
    let assessment = run(&proposal(ChangeType::CodePatch), &ledger);
    assert_eq!(assessment.recent_proposals, 2);
    assert!(close(assessment.velocity, 0.2));
    assert_eq!(assessment.applied_changes, 2);

    // A window reaching before the earliest representable instant.
    let early = assess(
        &proposal(ChangeType::CodePatch),
        &ledger,
        &RiskPolicy::default(),
        Timestamp::MIN,
    );
    assert!((0.0..=1.0).contains(&early.score));
    let late = assess(
        &proposal(ChangeType::CodePatch),
        &ledger,
        &RiskPolicy::default(),
        Timestamp::MAX,
    );
    assert!((0.0..=1.0).contains(&late.score));
}

#[test]
fn cumulative_counts_changes_applied_in_the_namespace_in_the_last_day() {
    let mut ledger = LedgerSnapshot::new();
    for hours in [1, 5, 12, 23] {
        ledger.record_applied_change(NS, now() - SignedDuration::from_hours(hours));
    }
    ledger
        .record_applied_change(NS, now() - SignedDuration::from_hours(25))
        .record_applied_change("elsewhere", now());
    let assessment = run(&proposal(ChangeType::CodePatch), &ledger);
    assert_eq!(assessment.applied_changes, 4);
    assert!(close(assessment.cumulative, 0.2));
    assert_eq!(assessment.score, 0.3);
    assert_eq!(assessment.level, RiskLevel::Medium);
}

#[test]
fn an_invalid_policy_fails_closed_without_panicking() {
    let mut policy = RiskPolicy::default();
    policy.base_risks.set(ChangeType::CodePatch, f64::NAN);
    policy.velocity.window = SignedDuration::ZERO;
    assert!(policy.validate().is_err());
    let assessment = assess(
        &proposal(ChangeType::CodePatch),
        &LedgerSnapshot::new(),
        &policy,
        now(),
    );
    assert_eq!(assessment.score, 1.0);
    assert_eq!(assessment.level, RiskLevel::Critical);
    assert_eq!(assessment.decision, Decision::Block);
}

#[test]
fn decisions_follow_level_proposer_and_review_requirements() {
    let ledger = LedgerSnapshot::new();
    let person = |change| ProposalInput::new("p", NS, "alice", ProposerKind::Person, change);
    // CONFIG_SECRET: 0.6, HIGH.
    assert_eq!(
        run(&proposal(ChangeType::ConfigSecret), &ledger).decision,
        Decision::Block
    );
    assert_eq!(
        run(&person(ChangeType::ConfigSecret), &ledger).decision,
        Decision::RequireHuman
    );
    // RISK_OVERRIDE: 0.9, CRITICAL, whoever files it.
    assert_eq!(
        run(&person(ChangeType::RiskOverride), &ledger).decision,
        Decision::Block
    );
    // CODE_FEATURE: 0.3, MEDIUM.
    assert_eq!(
        run(&proposal(ChangeType::CodeFeature), &ledger).decision,
        Decision::Review
    );
    // AGENT_SCALE: 0.1, LOW.
    assert_eq!(
        run(&proposal(ChangeType::AgentScale), &ledger).decision,
        Decision::AutoApprove
    );
    let gated = proposal(ChangeType::AgentScale).with_review(ReviewRequirements {
        auto_merge: true,
        required_approvers: 1,
    });
    assert_eq!(run(&gated, &ledger).decision, Decision::Review);
    let manual = proposal(ChangeType::AgentScale).with_review(ReviewRequirements {
        auto_merge: false,
        required_approvers: 0,
    });
    assert_eq!(run(&manual, &ledger).decision, Decision::Review);
}

#[test]
fn explanation_lists_every_factor_and_the_reason() {
    let mut ledger = LedgerSnapshot::new();
    for name in ["a", "b", "c"] {
        ledger.record_proposal(NS, other(name, AGENT, now()));
    }
    let assessment = run(&proposal(ChangeType::AgentDelete), &ledger);
    assert_eq!(
        assessment.explain(),
        "risk 0.91 CRITICAL: AGENT_DELETE base 0.70 × size 1.00 × tests 1.00 × (1 + velocity 0.30) \
         + cumulative 0.00 (3 other proposal(s) in the velocity window, 0 change(s) applied in the \
         cumulative window) → Block: CRITICAL risk is never admitted"
    );
    assert_eq!(assessment.to_string(), assessment.explain());

    let gated = proposal(ChangeType::AgentScale).with_review(ReviewRequirements {
        auto_merge: true,
        required_approvers: 2,
    });
    let text = run(&gated, &LedgerSnapshot::new()).explain();
    assert!(
        text.ends_with("→ Review: LOW risk, reviewed because it requires 2 approval(s)"),
        "{text}"
    );
}

#[test]
fn assessment_round_trips_through_json_with_camel_case_fields() {
    let input = proposal(ChangeType::CodeFeature)
        .with_magnitude(Magnitude::lines(100, 20, 3).with_tests(5, 0));
    let assessment = run(&input, &LedgerSnapshot::new());
    let json = serde_json::to_value(&assessment).expect("serialises");
    assert_eq!(json["changeType"], "CODE_FEATURE");
    assert_eq!(json["level"], "MEDIUM");
    // The spelling of a Proposal's status.riskAssessment (the decision and proposer kind are the
    // same enums there).
    assert_eq!(json["decision"], "REVIEW");
    assert_eq!(json["proposerKind"], "AGENT");
    assert!(json["sizeFactor"].is_f64());
    let back: RiskAssessment = serde_json::from_value(json).expect("deserialises");
    assert_eq!(back, assessment);
}

// The three worked examples of original-kgents §2.3, recomputed.
//
// The original's numbers differ for two reasons, both bugs it had:
// 1. Its velocity counted the proposal being assessed (always ~0.1 for a fresh proposal), so
//    examples 1 and 2 carried velocity 0.1 with no other proposal in the namespace. Here the
//    proposal never counts itself: their velocity is 0.
// 2. It had no cumulative 24 h penalty; with an empty history it is 0 here, so it changes nothing
//    in these examples.
// The size factor (1 + 0.1·log2(1 + lines + 10·files)) and the test factor (logarithmic, 0.05
// per doubling added, 0.1 per doubling removed) are the original's, so those factors agree.

#[test]
fn worked_example_code_patch_without_magnitude() {
    // Original: velocity 0.1 (itself) → 0.1 × 1.1 = 0.11 LOW.
    // New: velocity 0 → 0.1 × 1 × 1 × 1 + 0 = 0.10 LOW, and with autoMerge it is approved
    // (the original could not auto-approve it: tGentValidation defaulted to true).
    let mut ledger = LedgerSnapshot::new();
    ledger.record_proposal(NS, LedgerProposal::new("p-self", "uid-self", AGENT, now()));
    let assessment = run(&proposal(ChangeType::CodePatch), &ledger);
    assert_eq!((assessment.velocity, assessment.score), (0.0, 0.1));
    assert_eq!(assessment.level, RiskLevel::Low);
    assert_eq!(assessment.decision, Decision::AutoApprove);
}

#[test]
fn worked_example_code_feature_with_lines_files_and_tests() {
    // +100/−20 lines, 3 files, +5 tests.
    // size = 1 + 0.1·log2(1 + 120 + 30) = 1.7238 (original: 1.724, same formula)
    // tests = 1 − 0.05·log2(6) = 0.8708 (original: 0.871, same formula)
    // Original: 0.3 × 1.724 × 0.871 × 1.1 = 0.495 MEDIUM.
    // New: velocity 0 → 0.3 × 1.7238 × 0.8708 = 0.4503 MEDIUM → Review.
    let mut ledger = LedgerSnapshot::new();
    ledger.record_proposal(NS, LedgerProposal::new("p-self", "uid-self", AGENT, now()));
    let input = proposal(ChangeType::CodeFeature)
        .with_magnitude(Magnitude::lines(100, 20, 3).with_tests(5, 0));
    let assessment = run(&input, &ledger);
    let size = 1.0 + 0.1 * 151f64.log2();
    let tests = 1.0 - 0.05 * 6f64.log2();
    assert!(close(assessment.size_factor, size) && (size - 1.724).abs() < 5e-4);
    assert!(close(assessment.test_factor, tests) && (tests - 0.871).abs() < 5e-4);
    assert_eq!(assessment.velocity, 0.0);
    assert!(
        close(assessment.score, 0.3 * size * tests),
        "{}",
        assessment.score
    );
    assert!((assessment.score - 0.4503).abs() < 1e-4);
    assert_eq!(assessment.level, RiskLevel::Medium);
    assert_eq!(assessment.decision, Decision::Review);
}

#[test]
fn worked_example_agent_delete_under_velocity() {
    // Original: velocity 0.3 = itself + two other fresh proposals → 0.7 × 1.3 = 0.91 CRITICAL.
    // New, same namespace history: only the two others count → 0.7 × 1.2 = 0.84, still CRITICAL
    // and blocked. With three other fresh proposals the new formula reaches 0.91 as well.
    let mut ledger = LedgerSnapshot::new();
    ledger
        .record_proposal(NS, LedgerProposal::new("p-self", "uid-self", AGENT, now()))
        .record_proposal(NS, other("a", AGENT, now()))
        .record_proposal(NS, other("b", AGENT, now()));
    let assessment = run(&proposal(ChangeType::AgentDelete), &ledger);
    assert!(close(assessment.velocity, 0.2));
    assert_eq!(assessment.score, 0.84);
    assert_eq!(assessment.level, RiskLevel::Critical);
    assert_eq!(assessment.decision, Decision::Block);

    ledger.record_proposal(NS, other("c", AGENT, now()));
    assert_eq!(run(&proposal(ChangeType::AgentDelete), &ledger).score, 0.91);
}
