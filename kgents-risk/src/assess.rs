//! [`assess`]: one proposal, its namespace's history and a policy in, a [`RiskAssessment`] out.

use jiff::Timestamp;

use crate::assessment::{Decision, RiskAssessment, RiskLevel};
use crate::factors;
use crate::ledger::{LedgerProposal, ProposalLedger};
use crate::policy::{RiskPolicy, VelocityScope};
use crate::proposal::ProposalInput;

/// Assesses `proposal` at `now` against the history in `ledger` under `policy`.
///
/// - base risk from the change type; size and test factors from the magnitude;
/// - velocity: Σ increment · (1 − age / window) over the **other** proposals of the namespace
///   (or of the proposer, with [`VelocityScope::Proposer`]) created within the window, capped.
///   The proposal itself never counts: a ledger entry is the same proposal when both uids are
///   known and equal, or, when either uid is unknown (admission requests have none yet), when
///   the names are equal. When `proposal.created_at` is known, proposals created after it do not
///   count (they are later filings, which carry this one's contribution instead);
/// - cumulative: per_change × changes applied in the namespace within its window, capped;
/// - score = clamp(base × size × tests × (1 + velocity) + cumulative, 0, 1), level and decision.
///
/// Ledger entries dated after `now` (clock skew) are treated as age 0: the freshest possible, which
/// is the conservative choice. Never panics; with a policy that fails [`RiskPolicy::validate`] the
/// result fails closed (a NaN score becomes 1, CRITICAL) but is otherwise meaningless.
pub fn assess(
    proposal: &ProposalInput,
    ledger: &dyn ProposalLedger,
    policy: &RiskPolicy,
    now: Timestamp,
) -> RiskAssessment {
    let base = policy.base_risks.get(proposal.change_type);
    let size_factor = factors::size_factor(&proposal.magnitude, &policy.size);
    let test_factor = factors::test_factor(&proposal.magnitude, &policy.tests);
    let (velocity, recent_proposals) = velocity(proposal, ledger, policy, now);
    let (cumulative, applied_changes) = cumulative(proposal, ledger, policy, now);
    let score = factors::score(base, size_factor, test_factor, velocity, cumulative);
    let level = RiskLevel::classify(score, &policy.thresholds);
    let decision = Decision::decide(level, proposal.proposer_kind, &proposal.review);
    RiskAssessment {
        change_type: proposal.change_type,
        base,
        size_factor,
        test_factor,
        velocity,
        cumulative,
        score,
        level,
        decision,
        proposer_kind: proposal.proposer_kind,
        review: proposal.review,
        recent_proposals,
        applied_changes,
        assessed_at: now,
    }
}

/// Whether `entry` is `proposal` itself (see [`assess`]).
fn is_same_proposal(proposal: &ProposalInput, entry: &LedgerProposal) -> bool {
    match proposal.uid.as_deref() {
        Some(uid) if !uid.is_empty() && !entry.uid.is_empty() => uid == entry.uid,
        _ => proposal.name == entry.name,
    }
}

/// The start of a window ending at `now`; the earliest timestamp if that lies before it.
fn window_start(now: Timestamp, window: jiff::SignedDuration) -> Timestamp {
    now.checked_sub(window).unwrap_or(Timestamp::MIN)
}

/// Velocity penalty and the number of other proposals that counted.
fn velocity(
    proposal: &ProposalInput,
    ledger: &dyn ProposalLedger,
    policy: &RiskPolicy,
    now: Timestamp,
) -> (f64, u64) {
    let weights = &policy.velocity;
    let mut sum = 0.0;
    let mut counted = 0u64;
    let since = window_start(now, weights.window);
    ledger.visit_proposals(&proposal.namespace, since, &mut |entry| {
        let other_proposer =
            weights.scope == VelocityScope::Proposer && entry.proposer != proposal.proposer;
        let filed_later = proposal
            .created_at
            .is_some_and(|created_at| entry.created_at > created_at);
        if other_proposer || filed_later || is_same_proposal(proposal, entry) {
            return;
        }
        let age = now.duration_since(entry.created_at);
        if factors::within_window(age, weights.window) {
            sum += factors::velocity_contribution(age, weights);
            counted += 1;
        }
    });
    (factors::velocity_penalty(sum, weights), counted)
}

/// Cumulative penalty and the number of applied changes that counted.
fn cumulative(
    proposal: &ProposalInput,
    ledger: &dyn ProposalLedger,
    policy: &RiskPolicy,
    now: Timestamp,
) -> (f64, u64) {
    let weights = &policy.cumulative;
    let mut counted = 0u64;
    let since = window_start(now, weights.window);
    ledger.visit_applied_changes(&proposal.namespace, since, &mut |applied_at| {
        if factors::within_window(now.duration_since(applied_at), weights.window) {
            counted += 1;
        }
    });
    (factors::cumulative_penalty(counted, weights), counted)
}
