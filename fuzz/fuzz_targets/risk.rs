//! The risk calculus over arbitrary proposals, ledgers and policies.
//!
//! Properties: `assess` never panics, whatever the policy; its score is a number in [0, 1]
//! and its level is the classification of that score; with a valid policy (one that
//! `RiskPolicy::validate` accepts) every factor stays inside its documented bounds, and the
//! score is monotone: one more recent proposal in the ledger, one more applied change, or more
//! tests removed never lowers it. CRITICAL is always blocked; HIGH from an agent too.
#![no_main]

use arbitrary::{Result, Unstructured};
use jiff::SignedDuration;
use kgents_fuzz::{now, small_string, timestamp_any, timestamp_near};
use kgents_risk::{
    ChangeType, Decision, LedgerProposal, LedgerSnapshot, Magnitude, ProposalInput, ProposerKind,
    ReviewRequirements, RiskLevel, RiskPolicy, assess,
};
use libfuzzer_sys::fuzz_target;

/// A count: usually small, sometimes at the edges of u64.
fn count(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => u64::MAX,
        1 => u.arbitrary()?,
        _ => u.int_in_range(0..=2_000)?,
    })
}

/// A weight: usually a plausible number, sometimes anything (negative, NaN, infinite).
fn weight(u: &mut Unstructured<'_>, plausible: f64) -> Result<f64> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => u.arbitrary()?,
        1 => f64::from(u.int_in_range(0..=2_000u32)?) / 1_000.0,
        _ => plausible,
    })
}

fn policy(u: &mut Unstructured<'_>) -> Result<RiskPolicy> {
    let mut policy = RiskPolicy::default();
    if u.arbitrary()? {
        return Ok(policy);
    }
    for change in ChangeType::ALL {
        let base = weight(u, change.default_base_risk())?;
        policy.base_risks.set(change, base);
    }
    policy.size.log_weight = weight(u, policy.size.log_weight)?;
    policy.size.lines_per_file = weight(u, policy.size.lines_per_file)?;
    policy.tests.reward_per_doubling = weight(u, policy.tests.reward_per_doubling)?;
    policy.tests.floor = weight(u, policy.tests.floor)?;
    policy.tests.penalty_per_doubling = weight(u, policy.tests.penalty_per_doubling)?;
    policy.tests.cap = weight(u, policy.tests.cap)?;
    policy.velocity.increment = weight(u, policy.velocity.increment)?;
    policy.velocity.cap = weight(u, policy.velocity.cap)?;
    policy.velocity.window = SignedDuration::from_secs(u.int_in_range(-10..=200_000)?);
    policy.cumulative.per_change = weight(u, policy.cumulative.per_change)?;
    policy.cumulative.cap = weight(u, policy.cumulative.cap)?;
    policy.cumulative.window = SignedDuration::from_secs(u.int_in_range(-10..=200_000)?);
    policy.thresholds.low_max = weight(u, policy.thresholds.low_max)?;
    policy.thresholds.medium_max = weight(u, policy.thresholds.medium_max)?;
    policy.thresholds.high_max = weight(u, policy.thresholds.high_max)?;
    Ok(policy)
}

fn input(u: &mut Unstructured<'_>) -> Result<(ProposalInput, LedgerSnapshot, RiskPolicy)> {
    let kind = if u.arbitrary()? {
        ProposerKind::Agent
    } else {
        ProposerKind::Person
    };
    let namespace = small_string(u, 3)?;
    let mut proposal = ProposalInput::new(
        small_string(u, 3)?,
        namespace.clone(),
        small_string(u, 3)?,
        kind,
        *u.choose(&ChangeType::ALL)?,
    )
    .with_magnitude(Magnitude {
        lines_added: count(u)?,
        lines_removed: count(u)?,
        files_changed: count(u)?,
        tests_added: count(u)?,
        tests_removed: count(u)?,
    })
    .with_review(ReviewRequirements {
        auto_merge: u.arbitrary()?,
        required_approvers: u.int_in_range(0..=12)?,
    });
    if u.arbitrary()? {
        proposal = proposal.with_uid(small_string(u, 2)?);
    }
    if u.arbitrary()? {
        proposal = proposal.with_created_at(timestamp_near(u)?);
    }
    let mut ledger = LedgerSnapshot::new();
    for _ in 0..u.int_in_range(0..=24)? {
        let ns = if u.arbitrary()? {
            namespace.clone()
        } else {
            small_string(u, 2)?
        };
        let at = if u.ratio(1, 16)? {
            timestamp_any(u)?
        } else {
            timestamp_near(u)?
        };
        if u.arbitrary()? {
            ledger.record_applied_change(ns, at);
        } else {
            let entry = LedgerProposal::new(
                small_string(u, 3)?,
                small_string(u, 2)?,
                small_string(u, 3)?,
                at,
            );
            ledger.record_proposal(ns, entry);
        }
    }
    Ok((proposal, ledger, policy(u)?))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((proposal, ledger, policy)) = input(&mut u) else {
        return;
    };
    let now = if u.ratio(1, 32).unwrap_or(false) {
        timestamp_any(&mut u).unwrap_or_else(|_| now())
    } else {
        now()
    };
    let a = assess(&proposal, &ledger, &policy, now);
    assert!(
        a.score.is_finite() && (0.0..=1.0).contains(&a.score),
        "score {} out of [0, 1]: {a:?}",
        a.score
    );
    let _ = a.explain();
    if a.level == RiskLevel::Critical {
        assert_eq!(a.decision, Decision::Block, "CRITICAL is always blocked");
    }
    if a.level == RiskLevel::High && proposal.proposer_kind == ProposerKind::Agent {
        assert_eq!(a.decision, Decision::Block, "HIGH from an agent is blocked");
    }
    if policy.validate().is_err() {
        return;
    }
    assert_eq!(a.level, RiskLevel::classify(a.score, &policy.thresholds));
    assert!(a.size_factor >= 1.0 && a.size_factor.is_finite(), "{a:?}");
    assert!(
        a.test_factor >= policy.tests.floor && a.test_factor <= policy.tests.cap,
        "{a:?}"
    );
    assert!(
        a.velocity >= 0.0 && a.velocity <= policy.velocity.cap,
        "{a:?}"
    );
    assert!(
        a.cumulative >= 0.0 && a.cumulative <= policy.cumulative.cap,
        "{a:?}"
    );

    // Monotonicity: more history or fewer tests never lowers the score.
    let mut busier = ledger.clone();
    busier.record_proposal(
        proposal.namespace.clone(),
        LedgerProposal::new("another", "another-uid", proposal.proposer.clone(), now),
    );
    busier.record_applied_change(proposal.namespace.clone(), now);
    let b = assess(&proposal, &busier, &policy, now);
    assert!(
        b.score >= a.score,
        "more history lowered the score: {a:?} → {b:?}"
    );
    let mut fewer_tests = proposal.clone();
    fewer_tests.magnitude.tests_removed = fewer_tests.magnitude.tests_removed.saturating_add(1);
    let c = assess(&fewer_tests, &ledger, &policy, now);
    assert!(
        c.score >= a.score,
        "removing a test lowered the score: {a:?} → {c:?}"
    );
});
