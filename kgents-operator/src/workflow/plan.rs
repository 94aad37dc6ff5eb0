//! Pure: a Workflow's spec and journal (status) at an instant → the next journal and what to
//! do once it is written.
//!
//! [`next_actions`] makes every transition that needs no side effect (new entries, a manual
//! retry, timeouts, skips, cancellation) and starts the steps that may start: Running, a new
//! attempt and its idempotency key. The controller writes that journal **before** it acts on
//! the [`Action`]s; an action for a step that was already Running re-issues the effect with the
//! key it had (never a new one). [`record_outcome`] folds what an effect reported back in: a
//! success, or a failure that is retried (after `nextRetryAt`, within `retry.limit`) or final.

use std::time::Duration;

use jiff::Timestamp;
use kgents_crds::Condition;
use kgents_crds::common::Time;
use kgents_crds::workflow::{
    MAX_MESSAGE_CHARS, OnFailure, StepPhase, StepStatus, WorkflowPhase, WorkflowSpec,
    WorkflowStatus, WorkflowStep,
};

use crate::conditions::{self, DesiredCondition};

/// The Ready condition: True once the workflow succeeded.
pub const READY: &str = "Ready";
/// The Progressing condition: True while steps are pending or running.
pub const PROGRESSING: &str = "Progressing";
/// The Failed condition: True once a step failed for good (with onFailure Fail).
pub const FAILED: &str = "Failed";

/// What the controller does for a step once the journal is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The step was just journaled Running for a new attempt: issue its effect with `key`.
    Start {
        /// The step's name.
        step: String,
        /// The attempt (1 for the first).
        attempt: i32,
        /// The attempt's idempotency key.
        key: String,
    },
    /// The step was Running already (before a restart, or waiting for its Proposal): re-issue
    /// its effect with the same `key` (a duplicate is found, not repeated) and observe it.
    Resume {
        /// The step's name.
        step: String,
        /// The attempt.
        attempt: i32,
        /// The key journaled when the attempt started.
        key: String,
    },
}

impl Action {
    /// The step the action is for.
    pub fn step(&self) -> &str {
        match self {
            Action::Start { step, .. } | Action::Resume { step, .. } => step,
        }
    }

    /// The idempotency key of the action.
    pub fn key(&self) -> &str {
        match self {
            Action::Start { key, .. } | Action::Resume { key, .. } => key,
        }
    }

    /// The attempt of the action.
    pub fn attempt(&self) -> i32 {
        match self {
            Action::Start { attempt, .. } | Action::Resume { attempt, .. } => *attempt,
        }
    }
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The journal to write before acting.
    pub status: WorkflowStatus,
    /// What to do, once `status` is written, in spec order.
    pub actions: Vec<Action>,
    /// When to look again without an event: the earliest retry or timeout deadline.
    pub requeue_after: Option<Duration>,
}

/// What an effect reported for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; `digest` summarises the result, `object` names what was created.
    Succeeded {
        /// A short digest of the result.
        digest: Option<String>,
        /// The object created (Proposal, Pheromone), if any.
        object: Option<String>,
        /// What happened, for people.
        message: String,
    },
    /// Still going (a Proposal not decided yet); `object` names it.
    InProgress {
        /// The object created, if any.
        object: Option<String>,
        /// What it waits for.
        message: String,
    },
    /// Failed; `retryable` says whether a retry may help.
    Failed {
        /// The object involved, if any.
        object: Option<String>,
        /// What went wrong.
        message: String,
        /// Whether the failure may pass (a timeout, an unavailable server) or is final (a
        /// denial, a rejected proposal, bad input) — a final one is not retried.
        retryable: bool,
    },
}

/// The idempotency key of attempt `attempt` of step `step` of the workflow with uid `uid`.
///
/// The attempt is part of the key: a retry is a new intent whose effect must be a new object
/// (a Proposal is immutable and keeps its verdict, so re-issuing attempt 1's key after it was
/// Rejected would find the rejection again). Within one attempt the key never changes, so a
/// restart re-issues the same effect.
pub fn idempotency_key(uid: &str, step: &str, attempt: i32) -> String {
    format!("{uid}/{step}/{attempt}")
}

fn truncate(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        message.to_owned()
    } else {
        let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

fn at(instant: Timestamp) -> Time {
    Time(crate::support::ceil_to_second(instant))
}

fn entry<'a>(status: &'a WorkflowStatus, name: &str) -> Option<&'a StepStatus> {
    status.steps.iter().find(|s| s.name == name)
}

fn entry_mut<'a>(status: &'a mut WorkflowStatus, name: &str) -> Option<&'a mut StepStatus> {
    status.steps.iter_mut().find(|s| s.name == name)
}

fn finish(step: &mut StepStatus, phase: StepPhase, message: String, now: Timestamp) {
    step.phase = phase;
    step.finished_at = Some(at(now));
    step.next_retry_at = None;
    step.message = Some(truncate(&message));
}

/// Folds a failed attempt into `entry`: back to Pending with `nextRetryAt` when the step has
/// retries left and the failure is retryable, else Failed.
fn fail_attempt(
    spec: &WorkflowStep,
    entry: &mut StepStatus,
    message: &str,
    retryable: bool,
    now: Timestamp,
) {
    let limit = spec.retry.as_ref().map_or(0, |r| r.limit.max(0));
    if retryable && entry.retries < limit {
        entry.retries += 1;
        let backoff = spec
            .retry
            .as_ref()
            .map(|r| r.backoff.clone())
            .unwrap_or_default();
        let delay = backoff.delay_seconds(entry.retries);
        let next = now
            .checked_add(jiff::SignedDuration::from_secs(delay))
            .unwrap_or(now);
        entry.phase = StepPhase::Pending;
        entry.next_retry_at = Some(at(next));
        entry.finished_at = None;
        entry.message = Some(truncate(&format!(
            "attempt {} failed: {message}; retry {} of {limit} in {delay}s",
            entry.attempt, entry.retries
        )));
    } else {
        let why = if retryable {
            format!(
                "attempt {} failed after {} retries: {message}",
                entry.attempt, entry.retries
            )
        } else {
            format!("attempt {} failed (not retried): {message}", entry.attempt)
        };
        finish(entry, StepPhase::Failed, why, now);
    }
}

/// The next journal and the actions to take once it is written (see the module docs).
/// `uid` and `generation` are the workflow's.
pub fn next_actions(
    uid: &str,
    generation: Option<i64>,
    spec: &WorkflowSpec,
    status: Option<&WorkflowStatus>,
    now: Timestamp,
) -> Plan {
    let previous = status.cloned().unwrap_or_default();
    let mut next = WorkflowStatus {
        phase: previous.phase,
        observed_generation: generation,
        retry_generation: previous.retry_generation,
        started_at: previous.started_at.clone(),
        finished_at: previous.finished_at.clone(),
        conditions: previous.conditions.clone(),
        // One entry per step, in spec order; entries of removed steps are dropped.
        steps: spec
            .steps
            .iter()
            .map(|s| {
                entry(&previous, &s.name)
                    .cloned()
                    .unwrap_or_else(|| StepStatus::pending(&s.name))
            })
            .collect(),
        succeeded: 0,
        total: 0,
    };

    // A manual retry: failed steps, and those skipped or cancelled because of them, start over
    // with a fresh retry budget (their attempt keeps counting, so keys stay unique).
    if spec.retry_generation > next.retry_generation {
        for step in &mut next.steps {
            let reset = match step.phase {
                StepPhase::Failed | StepPhase::Skipped => true,
                StepPhase::Cancelled => !spec.cancelled,
                _ => false,
            };
            if reset {
                step.phase = StepPhase::Pending;
                step.retries = 0;
                step.finished_at = None;
                step.next_retry_at = None;
                step.message = Some(format!(
                    "reset by retry generation {}",
                    spec.retry_generation
                ));
            }
        }
        next.retry_generation = spec.retry_generation;
        next.finished_at = None;
    }

    // Timeouts: a Running attempt past its deadline failed (retryable).
    for step_spec in &spec.steps {
        let Some(timeout) = step_spec.timeout_seconds else {
            continue;
        };
        let Some(step) = entry_mut(&mut next, &step_spec.name) else {
            continue;
        };
        if step.phase != StepPhase::Running {
            continue;
        }
        if let Some(started) = &step.started_at {
            let deadline = started
                .0
                .checked_add(jiff::SignedDuration::from_secs(timeout))
                .unwrap_or(Timestamp::MAX);
            if deadline <= now {
                fail_attempt(
                    step_spec,
                    step,
                    &format!("timed out after {timeout}s"),
                    true,
                    now,
                );
            }
        }
    }

    // Skips, until nothing changes: a dependency that will never succeed skips its dependents;
    // a step that failed with onFailure Fail skips everything not started.
    let fail_fast = |status: &WorkflowStatus| {
        spec.steps.iter().find_map(|s| {
            (s.on_failure == OnFailure::Fail
                && entry(status, &s.name).is_some_and(|e| e.phase == StepPhase::Failed))
            .then(|| s.name.clone())
        })
    };
    loop {
        let mut changed = false;
        let failed_at = fail_fast(&next);
        for step_spec in &spec.steps {
            let blocked = step_spec.depends_on.iter().find(|d| {
                entry(&next, d).is_some_and(|e| {
                    matches!(
                        e.phase,
                        StepPhase::Failed | StepPhase::Skipped | StepPhase::Cancelled
                    )
                })
            });
            let Some(step) = entry_mut(&mut next, &step_spec.name) else {
                continue;
            };
            if step.phase == StepPhase::Running && spec.cancelled {
                // Cancelling stops waiting: what the attempt created stays as it is.
                let left = step
                    .object_name
                    .as_ref()
                    .map(|o| format!("; {o} is left as it is"))
                    .unwrap_or_default();
                finish(
                    step,
                    StepPhase::Cancelled,
                    format!(
                        "the workflow was cancelled while attempt {} ran{left}",
                        step.attempt
                    ),
                    now,
                );
                changed = true;
                continue;
            }
            if step.phase != StepPhase::Pending {
                continue;
            }
            if spec.cancelled {
                finish(
                    step,
                    StepPhase::Cancelled,
                    "the workflow was cancelled".into(),
                    now,
                );
                changed = true;
            } else if let Some(dependency) = blocked {
                finish(
                    step,
                    StepPhase::Skipped,
                    format!("step {dependency} did not succeed"),
                    now,
                );
                changed = true;
            } else if let Some(failed) = &failed_at {
                finish(
                    step,
                    StepPhase::Skipped,
                    format!("the workflow failed at step {failed}"),
                    now,
                );
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // Starts and resumes, in spec order.
    let mut actions = Vec::new();
    let mut wake: Option<Timestamp> = None;
    let mut earliest = |t: Timestamp| {
        wake = Some(wake.map_or(t, |w| w.min(t)));
    };
    for step_spec in &spec.steps {
        let ready = step_spec
            .depends_on
            .iter()
            .all(|d| entry(&next, d).is_some_and(|e| e.phase == StepPhase::Succeeded));
        let Some(step) = entry_mut(&mut next, &step_spec.name) else {
            continue;
        };
        match step.phase {
            StepPhase::Running => {
                let key = step
                    .idempotency_key
                    .clone()
                    .unwrap_or_else(|| idempotency_key(uid, &step.name, step.attempt));
                step.idempotency_key = Some(key.clone());
                if let (Some(timeout), Some(started)) =
                    (step_spec.timeout_seconds, &step.started_at)
                {
                    earliest(
                        started
                            .0
                            .checked_add(jiff::SignedDuration::from_secs(timeout))
                            .unwrap_or(Timestamp::MAX),
                    );
                }
                actions.push(Action::Resume {
                    step: step.name.clone(),
                    attempt: step.attempt,
                    key,
                });
            }
            StepPhase::Pending if ready && !spec.cancelled => {
                if let Some(retry_at) = &step.next_retry_at
                    && retry_at.0 > now
                {
                    earliest(retry_at.0);
                    continue;
                }
                step.attempt += 1;
                let key = idempotency_key(uid, &step.name, step.attempt);
                step.phase = StepPhase::Running;
                step.idempotency_key = Some(key.clone());
                step.object_name = None;
                step.started_at = Some(at(now));
                step.finished_at = None;
                step.next_retry_at = None;
                step.output_digest = None;
                if let Some(timeout) = step_spec.timeout_seconds {
                    earliest(
                        now.checked_add(jiff::SignedDuration::from_secs(timeout))
                            .unwrap_or(Timestamp::MAX),
                    );
                }
                actions.push(Action::Start {
                    step: step.name.clone(),
                    attempt: step.attempt,
                    key,
                });
            }
            _ => {}
        }
    }
    summarise(spec, &mut next, now);
    let requeue_after = wake.map(|w| {
        let seconds = (w.as_millisecond() - now.as_millisecond()).max(0);
        Duration::from_millis(u64::try_from(seconds).unwrap_or(0))
    });
    Plan {
        status: next,
        actions,
        requeue_after,
    }
}

/// Folds the outcome of attempt `key` of step `step` into `status`. An outcome for a step
/// that is not Running with that key (a stale report) changes nothing.
pub fn record_outcome(
    spec: &WorkflowSpec,
    status: &WorkflowStatus,
    step: &str,
    key: &str,
    outcome: &Outcome,
    now: Timestamp,
) -> WorkflowStatus {
    let mut next = status.clone();
    let Some(step_spec) = spec.steps.iter().find(|s| s.name == step) else {
        return next;
    };
    let Some(entry) = entry_mut(&mut next, step) else {
        return next;
    };
    if entry.phase != StepPhase::Running || entry.idempotency_key.as_deref() != Some(key) {
        return next;
    }
    match outcome {
        Outcome::Succeeded {
            digest,
            object,
            message,
        } => {
            entry.output_digest.clone_from(digest);
            if object.is_some() {
                entry.object_name.clone_from(object);
            }
            finish(entry, StepPhase::Succeeded, message.clone(), now);
        }
        Outcome::InProgress { object, message } => {
            if object.is_some() {
                entry.object_name.clone_from(object);
            }
            entry.message = Some(truncate(message));
        }
        Outcome::Failed {
            object,
            message,
            retryable,
        } => {
            if object.is_some() {
                entry.object_name.clone_from(object);
            }
            fail_attempt(step_spec, entry, message, *retryable, now);
        }
    }
    summarise(spec, &mut next, now);
    next
}

/// Phase, counters, times and conditions from the step entries.
fn summarise(spec: &WorkflowSpec, status: &mut WorkflowStatus, now: Timestamp) {
    let total = status.steps.len();
    let succeeded = status
        .steps
        .iter()
        .filter(|s| s.phase == StepPhase::Succeeded)
        .count();
    status.total = i32::try_from(total).unwrap_or(i32::MAX);
    status.succeeded = i32::try_from(succeeded).unwrap_or(i32::MAX);
    let all_final = status.steps.iter().all(|s| s.phase.is_final());
    let started = status.steps.iter().any(|s| s.attempt > 0);
    let failed_for_good = spec.steps.iter().find(|s| {
        s.on_failure == OnFailure::Fail
            && entry(status, &s.name).is_some_and(|e| e.phase == StepPhase::Failed)
    });
    let phase = if all_final {
        if failed_for_good.is_some() {
            WorkflowPhase::Failed
        } else if status.steps.iter().any(|s| s.phase == StepPhase::Cancelled) {
            WorkflowPhase::Cancelled
        } else {
            WorkflowPhase::Succeeded
        }
    } else if started {
        WorkflowPhase::Running
    } else {
        WorkflowPhase::Pending
    };
    status.phase = Some(phase);
    if started && status.started_at.is_none() {
        status.started_at = status
            .steps
            .iter()
            .filter_map(|s| s.started_at.clone())
            .min_by_key(|t| t.0);
    }
    if phase.is_finished() {
        if status.finished_at.is_none() {
            status.finished_at = Some(at(now));
        }
    } else {
        status.finished_at = None;
    }
    let failed_name = failed_for_good.map(|s| s.name.clone());
    let (ready_reason, ready_message) = match phase {
        WorkflowPhase::Succeeded => (
            "Succeeded".to_owned(),
            format!("{succeeded}/{total} steps succeeded"),
        ),
        WorkflowPhase::Failed => (
            "StepFailed".to_owned(),
            format!("step {} failed", failed_name.clone().unwrap_or_default()),
        ),
        WorkflowPhase::Cancelled => (
            "Cancelled".to_owned(),
            "the workflow was cancelled".to_owned(),
        ),
        WorkflowPhase::Running => (
            "Running".to_owned(),
            format!("{succeeded}/{total} steps succeeded"),
        ),
        WorkflowPhase::Pending => ("Pending".to_owned(), "no step started yet".to_owned()),
    };
    let running: Vec<&str> = status
        .steps
        .iter()
        .filter(|s| s.phase == StepPhase::Running)
        .map(|s| s.name.as_str())
        .collect();
    let progressing_message = if running.is_empty() {
        ready_message.clone()
    } else {
        format!("running: {}", running.join(", "))
    };
    let desired = [
        DesiredCondition::new(
            READY,
            phase == WorkflowPhase::Succeeded,
            ready_reason.clone(),
            ready_message.clone(),
        ),
        DesiredCondition::new(
            PROGRESSING,
            !phase.is_finished(),
            ready_reason.clone(),
            progressing_message,
        ),
        DesiredCondition::new(
            FAILED,
            phase == WorkflowPhase::Failed,
            ready_reason,
            ready_message,
        ),
    ];
    status.conditions = conditions::merge(
        &status.conditions,
        &desired,
        status.observed_generation,
        now,
    );
}

/// The condition of `type_` in `conditions`, if any (for callers that render it).
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions::find(conditions, type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(2_000_000_000).expect("ts")
    }

    fn spec(value: serde_json::Value) -> WorkflowSpec {
        serde_json::from_value(value).expect("spec")
    }

    fn proposal() -> serde_json::Value {
        json!({"proposer": "p", "changeType": "CODE_PATCH", "target": {"kind": "File", "name": "x"}})
    }

    fn phases(status: &WorkflowStatus) -> Vec<StepPhase> {
        status.steps.iter().map(|s| s.phase).collect()
    }

    #[test]
    fn a_chain_starts_one_step_at_a_time_and_succeeds() {
        let s = spec(json!({"steps": [
            {"name": "a", "proposal": proposal()},
            {"name": "b", "proposal": proposal(), "dependsOn": ["a"]},
        ]}));
        let plan = next_actions("uid", Some(1), &s, None, now());
        assert_eq!(
            plan.actions,
            vec![Action::Start {
                step: "a".into(),
                attempt: 1,
                key: "uid/a/1".into()
            }]
        );
        assert_eq!(
            phases(&plan.status),
            vec![StepPhase::Running, StepPhase::Pending]
        );
        assert_eq!(plan.status.phase, Some(WorkflowPhase::Running));
        // Planning again from the written journal resumes with the same key.
        let again = next_actions("uid", Some(1), &s, Some(&plan.status), now());
        assert_eq!(
            again.actions,
            vec![Action::Resume {
                step: "a".into(),
                attempt: 1,
                key: "uid/a/1".into()
            }]
        );
        let done = record_outcome(
            &s,
            &plan.status,
            "a",
            "uid/a/1",
            &Outcome::Succeeded {
                digest: None,
                object: Some("x".into()),
                message: "ok".into(),
            },
            now(),
        );
        let plan = next_actions("uid", Some(1), &s, Some(&done), now());
        assert_eq!(
            plan.actions[0],
            Action::Start {
                step: "b".into(),
                attempt: 1,
                key: "uid/b/1".into()
            }
        );
        let done = record_outcome(
            &s,
            &plan.status,
            "b",
            "uid/b/1",
            &Outcome::Succeeded {
                digest: None,
                object: None,
                message: "ok".into(),
            },
            now(),
        );
        let last = next_actions("uid", Some(1), &s, Some(&done), now());
        assert!(last.actions.is_empty());
        assert_eq!(last.status.phase, Some(WorkflowPhase::Succeeded));
        assert_eq!(last.status.succeeded, 2);
        let ready = condition(&last.status.conditions, READY).expect("Ready");
        assert_eq!(ready.status, "True");
        // A steady state plans the same journal again: no write.
        assert_eq!(
            next_actions("uid", Some(1), &s, Some(&last.status), now()).status,
            last.status
        );
    }

    #[test]
    fn a_failure_is_retried_after_its_backoff_then_fails_the_workflow() {
        let s = spec(json!({"steps": [
            {"name": "a", "proposal": proposal(), "retry": {"limit": 1, "backoff": {"durationSeconds": 10}}},
            {"name": "b", "proposal": proposal(), "dependsOn": ["a"]},
        ]}));
        let plan = next_actions("u", None, &s, None, now());
        let failed = Outcome::Failed {
            object: None,
            message: "rejected".into(),
            retryable: true,
        };
        let after = record_outcome(&s, &plan.status, "a", "u/a/1", &failed, now());
        assert_eq!(after.steps[0].phase, StepPhase::Pending);
        assert_eq!(after.steps[0].retries, 1);
        let retry_at = after.steps[0].next_retry_at.clone().expect("nextRetryAt").0;
        assert_eq!(retry_at, now() + jiff::SignedDuration::from_secs(10));
        let early = next_actions("u", None, &s, Some(&after), now());
        assert!(early.actions.is_empty(), "not before nextRetryAt");
        assert_eq!(early.requeue_after, Some(Duration::from_secs(10)));
        let later = next_actions("u", None, &s, Some(&after), retry_at);
        assert_eq!(
            later.actions[0],
            Action::Start {
                step: "a".into(),
                attempt: 2,
                key: "u/a/2".into()
            }
        );
        let after = record_outcome(&s, &later.status, "a", "u/a/2", &failed, retry_at);
        let end = next_actions("u", None, &s, Some(&after), retry_at);
        assert_eq!(
            phases(&end.status),
            vec![StepPhase::Failed, StepPhase::Skipped]
        );
        assert_eq!(end.status.phase, Some(WorkflowPhase::Failed));
        // A manual retry resets both with a fresh budget and a new key.
        let mut retried = s.clone();
        retried.retry_generation = 1;
        let plan = next_actions("u", None, &retried, Some(&end.status), retry_at);
        assert_eq!(
            plan.actions[0],
            Action::Start {
                step: "a".into(),
                attempt: 3,
                key: "u/a/3".into()
            }
        );
        assert_eq!(plan.status.steps[0].retries, 0);
        assert_eq!(plan.status.steps[1].phase, StepPhase::Pending);
    }

    #[test]
    fn a_non_retryable_failure_with_continue_lets_independent_steps_finish() {
        let s = spec(json!({"steps": [
            {"name": "a", "proposal": proposal(), "onFailure": "Continue", "retry": {"limit": 3}},
            {"name": "b", "proposal": proposal(), "dependsOn": ["a"]},
            {"name": "c", "proposal": proposal()},
        ]}));
        let plan = next_actions("u", None, &s, None, now());
        assert_eq!(plan.actions.len(), 2);
        let denied = Outcome::Failed {
            object: None,
            message: "denied".into(),
            retryable: false,
        };
        let after = record_outcome(&s, &plan.status, "a", "u/a/1", &denied, now());
        let ok = Outcome::Succeeded {
            digest: None,
            object: None,
            message: "ok".into(),
        };
        let after = record_outcome(&s, &after, "c", "u/c/1", &ok, now());
        let end = next_actions("u", None, &s, Some(&after), now());
        assert_eq!(
            phases(&end.status),
            vec![StepPhase::Failed, StepPhase::Skipped, StepPhase::Succeeded]
        );
        assert_eq!(end.status.phase, Some(WorkflowPhase::Succeeded));
    }

    #[test]
    fn timeouts_fail_the_attempt_and_cancel_stops_new_starts() {
        let s = spec(json!({"steps": [
            {"name": "a", "proposal": proposal(), "timeoutSeconds": 5},
            {"name": "b", "proposal": proposal(), "dependsOn": ["a"]},
        ]}));
        let plan = next_actions("u", None, &s, None, now());
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(5)));
        let late = now() + jiff::SignedDuration::from_secs(6);
        let timed_out = next_actions("u", None, &s, Some(&plan.status), late);
        assert_eq!(timed_out.status.steps[0].phase, StepPhase::Failed);
        assert!(
            timed_out.status.steps[0]
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("timed out")
        );
        let mut cancelled = s.clone();
        cancelled.cancelled = true;
        let plan = next_actions("u", None, &cancelled, None, now());
        assert!(plan.actions.is_empty());
        assert_eq!(plan.status.phase, Some(WorkflowPhase::Cancelled));
    }

    #[test]
    fn messages_are_bounded() {
        let s = spec(json!({"steps": [{"name": "a", "proposal": proposal()}]}));
        let plan = next_actions("u", None, &s, None, now());
        let long = "x".repeat(10_000);
        let after = record_outcome(
            &s,
            &plan.status,
            "a",
            "u/a/1",
            &Outcome::Failed {
                object: None,
                message: long,
                retryable: false,
            },
            now(),
        );
        assert!(
            after.steps[0]
                .message
                .as_deref()
                .unwrap_or_default()
                .chars()
                .count()
                <= MAX_MESSAGE_CHARS
        );
    }

    /// A random DAG: step i depends on a subset of the steps before it.
    fn dag() -> impl Strategy<Value = WorkflowSpec> {
        (1usize..7)
            .prop_flat_map(|n| {
                (
                    prop::collection::vec(prop::collection::vec(any::<bool>(), 6), n),
                    prop::collection::vec(0i32..3, n),
                    prop::collection::vec(any::<bool>(), n),
                )
            })
            .prop_map(|(deps, limits, continues)| {
                let steps: Vec<serde_json::Value> = deps
                    .iter()
                    .enumerate()
                    .map(|(i, mask)| {
                        let depends: Vec<String> =
                            (0..i).filter(|j| mask[*j]).map(|j| format!("s{j}")).collect();
                        json!({"name": format!("s{i}"), "proposal": proposal(), "dependsOn": depends,
                               "retry": {"limit": limits[i], "backoff": {"durationSeconds": 1}},
                               "onFailure": if continues[i] { "Continue" } else { "Fail" }})
                    })
                    .collect();
                spec(json!({"steps": steps}))
            })
    }

    #[derive(Clone, Debug)]
    enum Event {
        /// Report an outcome for the i-th action of the last plan (0 success, 1 retryable
        /// failure, 2 final failure, 3 in progress).
        Report(usize, u8),
        /// The controller crashed before reporting: plan again from the written journal.
        Crash,
        /// Time passes.
        Tick(u8),
        /// Someone cancels.
        Cancel,
    }

    fn events() -> impl Strategy<Value = Vec<Event>> {
        prop::collection::vec(
            prop_oneof![
                6 => (0usize..4, 0u8..4).prop_map(|(i, o)| Event::Report(i, o)),
                2 => Just(Event::Crash),
                2 => (1u8..5).prop_map(Event::Tick),
                1 => Just(Event::Cancel),
            ],
            0..80,
        )
    }

    proptest! {
        #[test]
        fn the_planner_keeps_its_guarantees(spec in dag(), events in events()) {
            let mut spec = spec;
            let mut clock = now();
            let mut status: Option<WorkflowStatus> = None;
            let mut plan = next_actions("u", Some(1), &spec, None, clock);
            for event in events.into_iter().chain(std::iter::repeat_n(Event::Tick(2), 200)) {
                let journal = plan.status.clone();
                // Guarantees of the plan just made, against the journal it came from.
                for action in &plan.actions {
                    let step_spec = spec.steps.iter().find(|s| s.name == action.step()).expect("known step");
                    for dependency in &step_spec.depends_on {
                        let phase = journal.steps.iter().find(|s| &s.name == dependency).map(|s| s.phase);
                        prop_assert_eq!(phase, Some(StepPhase::Succeeded), "started before its dependency");
                    }
                    if let Some(before) = status.as_ref().and_then(|s| s.steps.iter().find(|e| e.name == action.step()))
                        && before.phase == StepPhase::Running
                    {
                        prop_assert_eq!(before.idempotency_key.as_deref(), Some(action.key()), "a Running step got a new key");
                        prop_assert!(matches!(action, Action::Resume { .. }), "a Running step was started again");
                    }
                    prop_assert!(!spec.cancelled, "acted after cancel");
                }
                for (entry, step_spec) in journal.steps.iter().zip(&spec.steps) {
                    let limit = step_spec.retry.as_ref().map_or(0, |r| r.limit);
                    prop_assert!(entry.retries <= limit, "retries beyond the limit");
                    prop_assert!(entry.attempt <= limit + 1, "more attempts than limit + 1");
                }
                let mut current = journal;
                match event {
                    Event::Report(i, outcome) => {
                        if let Some(action) = plan.actions.get(i) {
                            let outcome = match outcome {
                                0 => Outcome::Succeeded { digest: None, object: None, message: "ok".into() },
                                1 => Outcome::Failed { object: None, message: "flaky".into(), retryable: true },
                                2 => Outcome::Failed { object: None, message: "no".into(), retryable: false },
                                _ => Outcome::InProgress { object: None, message: "waiting".into() },
                            };
                            current = record_outcome(&spec, &current, action.step(), action.key(), &outcome, clock);
                        }
                    }
                    Event::Crash => {}
                    Event::Tick(seconds) => {
                        clock += jiff::SignedDuration::from_secs(i64::from(seconds));
                        // Whatever is running finishes well, so the workflow can end.
                        for action in plan.actions.clone() {
                            current = record_outcome(
                                &spec, &current, action.step(), action.key(),
                                &Outcome::Succeeded { digest: None, object: None, message: "ok".into() }, clock,
                            );
                        }
                    }
                    Event::Cancel => spec.cancelled = true,
                }
                status = Some(current.clone());
                plan = next_actions("u", Some(1), &spec, Some(&current), clock);
            }
            let end = plan.status.phase.expect("phase");
            prop_assert!(end.is_finished(), "the workflow ends: {:?}", plan.status);
            if spec.cancelled {
                prop_assert!(plan.status.steps.iter().all(|s| s.phase != StepPhase::Pending));
            }
        }
    }
}
