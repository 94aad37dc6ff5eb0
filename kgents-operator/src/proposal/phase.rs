//! The proposal phase machine as a pure function: what is known about a proposal in, the phase
//! it should be in and the one effect to perform out. The controller is level-triggered: it
//! gathers [`Facts`], calls [`plan`], performs the effect and writes the phase.
//!
//! ```text
//! (new) ── admission re-check fails / Block ────────────────────────────▶ Rejected
//!   │ AutoApprove                  Review / RequireHuman
//!   ▼                                   ▼
//! Approved ◀── approvals + review ── Reviewing ── rejection / review DENY ─▶ Rejected
//!   │ execute (dry run, apply)          │ TTL ──▶ Expired   newer filing ──▶ Superseded
//!   ▼
//! Merged | Failed
//! ```
//! Terminal phases (Rejected, Merged, Failed, Expired, Superseded) are absorbing. Nothing is
//! executed unless the phase already written is Approved. A proposal that records a change made
//! outside the cluster (a CODE_* proposal targeting a `File`) is never executed: it ends
//! Approved or Rejected, and whoever made the change acts on the verdict.

use kgents_crds::proposal::ProposalPhase;
use kgents_risk::Decision;

/// Where the review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewState {
    /// Not asked for yet.
    NotRequested,
    /// Asked for; no verdict yet.
    Pending,
    /// The reviewer answered ALLOW.
    Passed,
    /// The reviewer answered DENY.
    Failed,
    /// The reviewer answered ESCALATE (or something unreadable): humans decide.
    Escalated,
    /// No reviewer is configured (or the spec turned T-gent validation off): humans decide.
    Skipped,
}

/// Where the execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionState {
    /// Nothing was run.
    NotStarted,
    /// The server-side dry run failed.
    DryRunFailed,
    /// The server-side dry run passed; the apply is next.
    DryRunPassed,
    /// The change was applied.
    Applied,
    /// Applying failed.
    ApplyFailed,
}

/// Everything the phase depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The phase written in status (`None`: never looked at).
    pub phase: Option<ProposalPhase>,
    /// The authoritative risk decision.
    pub decision: Decision,
    /// Whether the admission checks pass when re-run by the controller.
    pub admissible: bool,
    /// Where the review stands.
    pub review: ReviewState,
    /// Distinct human approvals (the proposer's own does not count).
    pub approvals: u32,
    /// Whether anyone rejected it.
    pub rejected: bool,
    /// `spec.reviewRequirements.requiredApprovers`.
    pub required_approvers: u32,
    /// Whether its TTL has passed.
    pub expired: bool,
    /// Whether a newer proposal of the same proposer for the same target exists.
    pub superseded: bool,
    /// Whether it carries a patch to apply.
    pub has_patch: bool,
    /// Whether its target is a file outside the cluster (`File`, no apiVersion): nothing for
    /// the operator to execute, whatever the spec carries.
    pub external: bool,
    /// Where the execution stands.
    pub execution: ExecutionState,
}

/// The one thing to do besides writing the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Nothing.
    None,
    /// Emit the REVIEW_REQUEST pheromone and run the reviewer.
    RequestReview,
    /// Run the server-side dry run.
    DryRun,
    /// Apply the patch to the target (the dry run passed).
    Apply,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The phase the proposal should be in.
    pub phase: ProposalPhase,
    /// What to do now.
    pub effect: Effect,
    /// A CamelCase reason for the condition and the Event.
    pub reason: &'static str,
}

/// Whether `phase` is terminal.
pub const fn is_terminal(phase: ProposalPhase) -> bool {
    matches!(
        phase,
        ProposalPhase::Rejected
            | ProposalPhase::Merged
            | ProposalPhase::Failed
            | ProposalPhase::Expired
            | ProposalPhase::Superseded
    )
}

/// Human approvals a reviewing proposal needs, given where its review stands: a passing LLM
/// review can stand in for the one human otherwise always required, but never for HIGH risk
/// (`RequireHuman`) and never for `requiredApprovers`.
pub fn approvals_needed(decision: Decision, review: ReviewState, required: u32) -> u32 {
    match (decision, review) {
        (Decision::Review | Decision::AutoApprove, ReviewState::Passed) => required,
        _ => required.max(1),
    }
}

fn plan_of(phase: ProposalPhase, effect: Effect, reason: &'static str) -> Plan {
    Plan {
        phase,
        effect,
        reason,
    }
}

/// The phase machine.
pub fn plan(facts: &Facts) -> Plan {
    let current = facts.phase.unwrap_or(ProposalPhase::Pending);
    if is_terminal(current) {
        return plan_of(current, Effect::None, "Terminal");
    }
    if current == ProposalPhase::Approved {
        // Approved is past every gate: only execution moves it on. It does not expire (the
        // original let approved proposals expire because nothing executed them).
        if facts.external {
            // Executed outside the cluster: Approved is the verdict, and it stays.
            return plan_of(current, Effect::None, "ApprovedForExternalExecution");
        }
        return match (facts.has_patch, facts.execution) {
            (false, _) => plan_of(ProposalPhase::Merged, Effect::None, "NothingToApply"),
            (true, ExecutionState::NotStarted) => plan_of(current, Effect::DryRun, "Executing"),
            (true, ExecutionState::DryRunPassed) => plan_of(current, Effect::Apply, "Executing"),
            (true, ExecutionState::DryRunFailed) => {
                plan_of(ProposalPhase::Failed, Effect::None, "DryRunFailed")
            }
            (true, ExecutionState::Applied) => {
                plan_of(ProposalPhase::Merged, Effect::None, "Applied")
            }
            (true, ExecutionState::ApplyFailed) => {
                plan_of(ProposalPhase::Failed, Effect::None, "ApplyFailed")
            }
        };
    }
    // Pending or Reviewing.
    if !facts.admissible || facts.decision == Decision::Block {
        return plan_of(ProposalPhase::Rejected, Effect::None, "WouldHaveBeenDenied");
    }
    if facts.rejected {
        return plan_of(ProposalPhase::Rejected, Effect::None, "RejectedByReviewer");
    }
    if facts.superseded {
        return plan_of(ProposalPhase::Superseded, Effect::None, "Superseded");
    }
    if facts.expired {
        return plan_of(ProposalPhase::Expired, Effect::None, "Expired");
    }
    if current == ProposalPhase::Pending && facts.decision == Decision::AutoApprove {
        return plan_of(ProposalPhase::Approved, Effect::None, "AutoApproved");
    }
    match facts.review {
        ReviewState::NotRequested => plan_of(
            ProposalPhase::Reviewing,
            Effect::RequestReview,
            "AwaitingReview",
        ),
        ReviewState::Pending => plan_of(ProposalPhase::Reviewing, Effect::None, "AwaitingReview"),
        ReviewState::Failed => plan_of(ProposalPhase::Rejected, Effect::None, "ReviewDenied"),
        review @ (ReviewState::Passed | ReviewState::Escalated | ReviewState::Skipped) => {
            if facts.approvals >= approvals_needed(facts.decision, review, facts.required_approvers)
            {
                plan_of(ProposalPhase::Approved, Effect::None, "Approved")
            } else {
                plan_of(ProposalPhase::Reviewing, Effect::None, "AwaitingApproval")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(decision: Decision) -> Facts {
        Facts {
            phase: None,
            decision,
            admissible: true,
            review: ReviewState::NotRequested,
            approvals: 0,
            rejected: false,
            required_approvers: 0,
            expired: false,
            superseded: false,
            has_patch: true,
            external: false,
            execution: ExecutionState::NotStarted,
        }
    }

    #[test]
    fn low_auto_merge_goes_approved_then_dry_run_then_apply_then_merged() {
        let mut f = facts(Decision::AutoApprove);
        assert_eq!(plan(&f).phase, ProposalPhase::Approved);
        f.phase = Some(ProposalPhase::Approved);
        assert_eq!(plan(&f).effect, Effect::DryRun);
        f.execution = ExecutionState::DryRunPassed;
        assert_eq!(plan(&f).effect, Effect::Apply);
        f.execution = ExecutionState::Applied;
        assert_eq!(plan(&f).phase, ProposalPhase::Merged);
    }

    #[test]
    fn medium_waits_for_review_and_a_passing_review_approves_without_required_approvers() {
        let mut f = facts(Decision::Review);
        assert_eq!(
            plan(&f),
            plan_of(
                ProposalPhase::Reviewing,
                Effect::RequestReview,
                "AwaitingReview"
            )
        );
        f.phase = Some(ProposalPhase::Reviewing);
        f.review = ReviewState::Passed;
        assert_eq!(plan(&f).phase, ProposalPhase::Approved);
        f.review = ReviewState::Skipped;
        assert_eq!(
            plan(&f).phase,
            ProposalPhase::Reviewing,
            "no reviewer: a human must approve"
        );
        f.approvals = 1;
        assert_eq!(plan(&f).phase, ProposalPhase::Approved);
    }

    #[test]
    fn high_from_a_person_always_needs_a_human() {
        let mut f = facts(Decision::RequireHuman);
        f.phase = Some(ProposalPhase::Reviewing);
        f.review = ReviewState::Passed;
        assert_eq!(plan(&f).phase, ProposalPhase::Reviewing);
        f.approvals = 1;
        assert_eq!(plan(&f).phase, ProposalPhase::Approved);
    }

    #[test]
    fn blocked_or_inadmissible_proposals_are_rejected_even_after_slipping_in() {
        assert_eq!(plan(&facts(Decision::Block)).phase, ProposalPhase::Rejected);
        let mut f = facts(Decision::AutoApprove);
        f.admissible = false;
        assert_eq!(plan(&f).reason, "WouldHaveBeenDenied");
    }

    #[test]
    fn an_external_code_change_ends_approved_or_rejected_and_is_never_executed() {
        // (decision, approvals, rejected) → final phase, for a File target with and without a
        // (stray) patch.
        let table = [
            (Decision::AutoApprove, 0, false, ProposalPhase::Approved),
            (Decision::Review, 1, false, ProposalPhase::Approved),
            (Decision::Review, 0, false, ProposalPhase::Reviewing),
            (Decision::Review, 1, true, ProposalPhase::Rejected),
            (Decision::RequireHuman, 1, false, ProposalPhase::Approved),
            (Decision::Block, 1, false, ProposalPhase::Rejected),
        ];
        for has_patch in [false, true] {
            for (decision, approvals, rejected, end) in table {
                let mut f = facts(decision);
                f.external = true;
                f.has_patch = has_patch;
                f.approvals = approvals;
                f.rejected = rejected;
                f.review = ReviewState::Skipped;
                let mut phase = None;
                for _ in 0..5 {
                    f.phase = phase;
                    let step = plan(&f);
                    assert!(
                        !matches!(step.effect, Effect::DryRun | Effect::Apply),
                        "{decision:?}: {step:?}"
                    );
                    if step.effect == Effect::RequestReview {
                        f.review = ReviewState::Skipped;
                    }
                    phase = Some(step.phase);
                }
                assert_eq!(
                    phase,
                    Some(end),
                    "{decision:?} approvals {approvals} rejected {rejected}"
                );
            }
        }
        let mut approved = facts(Decision::AutoApprove);
        approved.external = true;
        approved.phase = Some(ProposalPhase::Approved);
        assert_eq!(plan(&approved).reason, "ApprovedForExternalExecution");
    }

    #[test]
    fn expiry_and_supersession_end_pending_work_but_not_approved_work() {
        let mut f = facts(Decision::Review);
        f.phase = Some(ProposalPhase::Reviewing);
        f.expired = true;
        assert_eq!(plan(&f).phase, ProposalPhase::Expired);
        f.expired = false;
        f.superseded = true;
        assert_eq!(plan(&f).phase, ProposalPhase::Superseded);
        f.phase = Some(ProposalPhase::Approved);
        f.expired = true;
        assert_eq!(plan(&f).effect, Effect::DryRun);
    }
}

/// A state-machine property test: random sequences of world events (reviews, approvals,
/// rejections, TTL, newer filings, dry-run and apply outcomes) drive [`plan`] the way the
/// controller does, and the invariants are checked after every step.
#[cfg(test)]
mod state_machine {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Event {
        Reconcile,
        Review(ReviewState),
        Approve,
        Reject,
        Expire,
        Supersede,
        DryRunOutcome(bool),
        ApplyOutcome(bool),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => Just(Event::Reconcile),
            2 => prop_oneof![
                Just(ReviewState::Passed),
                Just(ReviewState::Failed),
                Just(ReviewState::Escalated),
                Just(ReviewState::Skipped),
            ].prop_map(Event::Review),
            2 => Just(Event::Approve),
            1 => Just(Event::Reject),
            1 => Just(Event::Expire),
            1 => Just(Event::Supersede),
            1 => any::<bool>().prop_map(Event::DryRunOutcome),
            1 => any::<bool>().prop_map(Event::ApplyOutcome),
        ]
    }

    fn decision() -> impl Strategy<Value = Decision> {
        prop_oneof![
            Just(Decision::AutoApprove),
            Just(Decision::Review),
            Just(Decision::RequireHuman),
            Just(Decision::Block),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn nothing_unapproved_executes_terminal_phases_absorb_and_nothing_applies_twice(
            decision in decision(),
            admissible in any::<bool>(),
            required in 0u32..3,
            has_patch in any::<bool>(),
            external in any::<bool>(),
            events in proptest::collection::vec(event(), 1..40),
        ) {
            let mut facts = Facts {
                phase: None,
                decision,
                admissible,
                review: ReviewState::NotRequested,
                approvals: 0,
                rejected: false,
                required_approvers: required,
                expired: false,
                superseded: false,
                has_patch,
                external,
                execution: ExecutionState::NotStarted,
            };
            // What the executor would do when asked next; outcomes arrive as events.
            let mut pending_dry_run = false;
            let mut pending_apply = false;
            let mut applies = 0u32;
            let mut terminal: Option<ProposalPhase> = None;
            let mut was_approved = false;
            for event in events {
                match event {
                    Event::Reconcile => {}
                    Event::Review(state) if facts.review == ReviewState::Pending => facts.review = state,
                    Event::Review(_) => {}
                    Event::Approve => facts.approvals += 1,
                    Event::Reject => facts.rejected = true,
                    Event::Expire => facts.expired = true,
                    Event::Supersede => facts.superseded = true,
                    Event::DryRunOutcome(ok) if pending_dry_run => {
                        pending_dry_run = false;
                        facts.execution = if ok { ExecutionState::DryRunPassed } else { ExecutionState::DryRunFailed };
                    }
                    Event::ApplyOutcome(ok) if pending_apply => {
                        pending_apply = false;
                        applies += 1;
                        facts.execution = if ok { ExecutionState::Applied } else { ExecutionState::ApplyFailed };
                    }
                    Event::DryRunOutcome(_) | Event::ApplyOutcome(_) => {}
                }
                let step = plan(&facts);
                // Executing needs the phase already written to be Approved.
                if matches!(step.effect, Effect::DryRun | Effect::Apply) {
                    prop_assert_eq!(facts.phase, Some(ProposalPhase::Approved));
                }
                if step.phase == ProposalPhase::Approved && facts.phase != Some(ProposalPhase::Approved) {
                    // Entering Approved: only for admissible, unblocked proposals that earned it.
                    prop_assert!(facts.admissible && facts.decision != Decision::Block);
                    prop_assert!(!facts.rejected && !facts.expired && !facts.superseded);
                    let earned = (facts.decision == Decision::AutoApprove && facts.phase.is_none_or(|p| p == ProposalPhase::Pending))
                        || facts.approvals >= approvals_needed(facts.decision, facts.review, facts.required_approvers);
                    prop_assert!(earned, "{:?}", facts);
                    if facts.decision == Decision::RequireHuman {
                        prop_assert!(facts.approvals >= 1);
                    }
                }
                if facts.external {
                    prop_assert_eq!(step.effect == Effect::DryRun || step.effect == Effect::Apply, false, "an external change is never executed");
                    prop_assert!(step.phase != ProposalPhase::Merged, "an external change is never recorded as merged");
                }
                if step.phase == ProposalPhase::Merged && facts.has_patch {
                    prop_assert_eq!(facts.execution, ExecutionState::Applied);
                }
                if let Some(done) = terminal {
                    prop_assert_eq!(step.phase, done, "terminal phases are absorbing");
                    prop_assert_eq!(step.effect, Effect::None);
                }
                if is_terminal(step.phase) {
                    terminal = Some(step.phase);
                }
                was_approved |= step.phase == ProposalPhase::Approved;
                match step.effect {
                    Effect::RequestReview => facts.review = ReviewState::Pending,
                    Effect::DryRun => pending_dry_run = true,
                    Effect::Apply => {
                        prop_assert!(facts.execution == ExecutionState::DryRunPassed, "apply only after a passing dry run");
                        pending_apply = true;
                    }
                    Effect::None => {}
                }
                facts.phase = Some(step.phase);
            }
            prop_assert!(applies <= 1, "applied {} times", applies);
            if applies > 0 {
                prop_assert!(was_approved);
            }
        }
    }
}
