//! The proposal phase machine as a pure function: what is known about a proposal in, the phase
//! it should be in and the one effect to perform out. The controller is level-triggered: it
//! gathers [`Facts`] (with the readers below: [`review_state`], [`execution_state`],
//! [`approvals`], [`expires_at`], [`superseded_by`]), calls [`plan`], performs the effect and
//! writes the phase.
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

use jiff::Timestamp;
use kgents_crds::Proposal;
use kgents_crds::proposal::{Execution, ProposalPhase, ReviewResult, ReviewStatus};
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

/// Where the review stands, as recorded in status. Objects stored before the ESCALATED result
/// existed recorded an escalation as SKIPPED with a report starting with `ESCALATE`; they still
/// read as escalated.
pub fn review_state(review: Option<&ReviewStatus>) -> ReviewState {
    match review.and_then(|r| r.result) {
        None => ReviewState::NotRequested,
        Some(ReviewResult::Pending) => ReviewState::Pending,
        Some(ReviewResult::Passed) => ReviewState::Passed,
        Some(ReviewResult::Failed) => ReviewState::Failed,
        Some(ReviewResult::Escalated) => ReviewState::Escalated,
        Some(ReviewResult::Skipped)
            if review
                .and_then(|r| r.report.as_deref())
                .is_some_and(|r| r.starts_with("ESCALATE")) =>
        {
            ReviewState::Escalated
        }
        Some(ReviewResult::Skipped) => ReviewState::Skipped,
    }
}

/// Where the execution stands, as recorded in status.
pub fn execution_state(execution: Option<&Execution>) -> ExecutionState {
    match execution {
        None => ExecutionState::NotStarted,
        Some(e) if e.dry_run && e.success => ExecutionState::DryRunPassed,
        Some(e) if e.dry_run => ExecutionState::DryRunFailed,
        Some(e) if e.success => ExecutionState::Applied,
        Some(_) => ExecutionState::ApplyFailed,
    }
}

/// Distinct approvers other than the proposer.
pub fn approvals(proposal: &Proposal) -> u32 {
    let mut approvers: Vec<&str> = proposal
        .status
        .iter()
        .flat_map(|s| s.approvals.iter())
        .map(|a| a.approver.as_str())
        .filter(|a| *a != proposal.spec.proposer && !a.is_empty())
        .collect();
    approvers.sort_unstable();
    approvers.dedup();
    approvers.len() as u32
}

/// When the proposal expires: creation + ttlSeconds.
pub fn expires_at(proposal: &Proposal) -> Option<Timestamp> {
    let created = proposal.metadata.creation_timestamp.as_ref()?.0;
    created
        .checked_add(jiff::SignedDuration::from_secs(
            proposal.spec.ttl_seconds.max(0),
        ))
        .ok()
}

/// The newest proposal, other than this one, from the same proposer for the same target filed
/// after it, if any.
pub fn superseded_by<'a>(
    proposal: &Proposal,
    others: impl IntoIterator<Item = &'a Proposal>,
) -> Option<String> {
    let key = |p: &Proposal| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.name.clone().unwrap_or_default(),
        )
    };
    let namespace = proposal.metadata.namespace.as_deref();
    let target_namespace = |p: &Proposal| {
        p.spec
            .target
            .namespace
            .clone()
            .or_else(|| p.metadata.namespace.clone())
    };
    let mine = key(proposal);
    others
        .into_iter()
        .filter(|o| o.metadata.uid != proposal.metadata.uid)
        .filter(|o| o.metadata.namespace.as_deref() == namespace)
        .filter(|o| o.spec.proposer == proposal.spec.proposer)
        .filter(|o| {
            o.spec.target.kind == proposal.spec.target.kind
                && o.spec.target.name == proposal.spec.target.name
        })
        .filter(|o| target_namespace(o) == target_namespace(proposal))
        .filter(|o| key(o) > mine)
        .max_by_key(|o| key(o))
        .and_then(|o| o.metadata.name.clone())
}

/// The undecided proposals (Pending or Reviewing) that `proposal` supersedes: older filings of
/// the same proposer for the same target.
pub fn supersedes<'a>(
    proposal: &Proposal,
    others: impl IntoIterator<Item = &'a Proposal>,
) -> Vec<&'a Proposal> {
    others
        .into_iter()
        .filter(|o| {
            o.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_none_or(|p| matches!(p, ProposalPhase::Pending | ProposalPhase::Reviewing))
        })
        .filter(|o| superseded_by(o, [proposal]).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgents_crds::ProposalStatus;
    use kgents_crds::common::Time;
    use kgents_crds::proposal::Approval;
    use serde_json::json;

    fn proposal(name: &str, proposer: &str, target: &str, created: i64) -> Proposal {
        serde_json::from_value(json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"),
                "creationTimestamp": Timestamp::from_second(created).expect("valid").to_string()},
            "spec": {"proposer": proposer, "changeType": "AGENT_SCALE", "ttlSeconds": 120,
                "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": target}},
        }))
        .expect("valid proposal")
    }

    #[test]
    fn a_newer_filing_by_the_same_proposer_for_the_same_target_supersedes() {
        let old = proposal("old", "alice", "b", 100);
        let newer = proposal("newer", "alice", "b", 200);
        let newest = proposal("newest", "alice", "b", 300);
        let other_target = proposal("other", "alice", "c", 400);
        let other_proposer = proposal("bob", "bob", "b", 500);
        let all = [&old, &newer, &newest, &other_target, &other_proposer];
        assert_eq!(superseded_by(&old, all).as_deref(), Some("newest"));
        assert_eq!(superseded_by(&newer, all).as_deref(), Some("newest"));
        assert_eq!(superseded_by(&newest, all), None);
        assert_eq!(superseded_by(&other_proposer, all), None);
        let names = |list: Vec<&Proposal>| -> Vec<String> {
            list.into_iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(names(supersedes(&newest, all)), ["old", "newer"]);
        assert!(supersedes(&old, all).is_empty());
        let mut decided = old.clone();
        decided.status = Some(ProposalStatus {
            phase: Some(ProposalPhase::Merged),
            ..ProposalStatus::default()
        });
        assert!(
            supersedes(&newest, [&decided]).is_empty(),
            "only undecided proposals are superseded"
        );
    }

    #[test]
    fn the_proposers_own_approval_and_duplicates_do_not_count() {
        let mut p = proposal("p", "alice", "b", 100);
        let at = Time(Timestamp::from_second(150).expect("valid"));
        let approval = |who: &str| Approval {
            approver: who.into(),
            at: at.clone(),
            comment: None,
        };
        p.status = Some(ProposalStatus {
            approvals: vec![
                approval("alice"),
                approval("bob"),
                approval("bob"),
                approval("carol"),
            ],
            ..ProposalStatus::default()
        });
        assert_eq!(approvals(&p), 2);
    }

    #[test]
    fn expiry_is_creation_plus_ttl_to_the_second() {
        let p = proposal("p", "alice", "b", 100);
        assert_eq!(
            expires_at(&p),
            Some(Timestamp::from_second(220).expect("valid"))
        );
    }

    #[test]
    fn recorded_reviews_read_back_including_escalations_stored_before_escalated_existed() {
        let review = |result: ReviewResult, report: &str| ReviewStatus {
            result: Some(result),
            report: Some(report.into()),
            ..ReviewStatus::default()
        };
        let table = [
            (review(ReviewResult::Pending, ""), ReviewState::Pending),
            (review(ReviewResult::Passed, "fine"), ReviewState::Passed),
            (review(ReviewResult::Failed, "no"), ReviewState::Failed),
            (
                review(ReviewResult::Escalated, "unsure"),
                ReviewState::Escalated,
            ),
            // The form stored before ESCALATED existed.
            (
                review(ReviewResult::Skipped, "ESCALATE: unsure"),
                ReviewState::Escalated,
            ),
            (
                review(ReviewResult::Skipped, "no reviewer is configured"),
                ReviewState::Skipped,
            ),
        ];
        for (status, state) in table {
            assert_eq!(review_state(Some(&status)), state, "{status:?}");
        }
        assert_eq!(review_state(None), ReviewState::NotRequested);
        let old_object: ReviewStatus = serde_json::from_value(
            json!({"requested": true, "result": "SKIPPED", "report": "ESCALATE: the answer was unreadable"}),
        )
        .expect("an object stored before ESCALATED existed still reads");
        assert_eq!(review_state(Some(&old_object)), ReviewState::Escalated);
        let execution = Execution {
            success: true,
            dry_run: true,
            executed_at: Time(Timestamp::UNIX_EPOCH),
            message: None,
            previous: None,
        };
        assert_eq!(
            execution_state(Some(&execution)),
            ExecutionState::DryRunPassed
        );
    }

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
