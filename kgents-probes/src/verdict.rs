//! From a [`HealthTracker`] to what an agent's status and pods should say, purely: the
//! readiness condition (status, reason, message), whether that is worth a status write now,
//! what each pod should carry (readiness gate, safe mode), whether to restart pods, and the
//! Event of a health transition.
//!
//! Nothing here knows Kubernetes: a condition status is `Some(true)` (True), `Some(false)`
//! (False) or `None` (Unknown), times are [`jiff::Timestamp`]s, and an adapter (the operator's
//! cognitive runner) turns the answers into status patches, pod patches and Events.
//!
//! Guarantees (property-tested below):
//!
//! - **No write storm.** Between two health transitions, status writes are at least the
//!   refresh period apart, whatever the probe times; every transition is written at once.
//! - **At most one restart per UNRESPONSIVE episode**, never with safe mode, and always on
//!   entering an episode without safe mode.

use std::time::Duration;

use jiff::Timestamp;

use crate::tracker::{CognitiveHealth, HealthTracker, Transition};

/// Reason of the readiness condition while the probes pass.
pub const REASON_PASSING: &str = "ProbesPassing";
/// Reason of the readiness condition before the first verdict.
pub const REASON_AWAITING: &str = "AwaitingFirstProbe";
/// Reason of the readiness condition while verdicts disagree and the tracker has not decided.
pub const REASON_UNDECIDED: &str = "Undecided";
/// Reason of the readiness condition for a DEGRADED agent.
pub const REASON_DEGRADED: &str = "Degraded";
/// Reason of the readiness condition for an UNRESPONSIVE agent.
pub const REASON_UNRESPONSIVE: &str = "Unresponsive";

/// The spelling of a condition status: `True`, `False` or `Unknown` (`None`).
pub fn status_str(status: Option<bool>) -> &'static str {
    match status {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
}

/// Why an agent cannot be probed as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem<'a> {
    /// PascalCase reason, e.g. `SecretKeyNotFound`.
    pub reason: &'a str,
    /// What is wrong and what to do, naming the field.
    pub message: &'a str,
}

/// What is known about one agent.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The agent's tracker.
    pub tracker: &'a HealthTracker,
    /// The message of the latest probe, if any ran since the agent was adopted.
    pub latest: Option<&'a str>,
    /// Why the agent cannot be probed as configured, if it cannot.
    pub problem: Option<Problem<'a>>,
}

impl Observation<'_> {
    /// Whether the agent passes its readiness gate: the tracker says ready and nothing is
    /// wrong with its configuration.
    pub fn ready(&self) -> bool {
        self.problem.is_none() && self.tracker.ready()
    }
}

/// The agent's cognitive health and readiness condition, as they should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The health to report (UNKNOWN for an agent that could never be probed).
    pub health: CognitiveHealth,
    /// The condition's status (`None`: Unknown).
    pub status: Option<bool>,
    /// The condition's PascalCase reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

/// Computes health and readiness from what was observed.
pub fn readiness(observation: &Observation<'_>) -> Readiness {
    let health = observation.tracker.health();
    let latest = observation.latest.unwrap_or_default();
    let failing = observation.tracker.consecutive_failures();
    let (status, reason, message) = if let Some(problem) = observation.problem {
        (
            Some(false),
            problem.reason.to_owned(),
            problem.message.to_owned(),
        )
    } else {
        match health {
            CognitiveHealth::Unknown if observation.latest.is_none() => (
                None,
                REASON_AWAITING.to_owned(),
                "no probe has run yet".to_owned(),
            ),
            CognitiveHealth::Unknown => (
                None,
                REASON_UNDECIDED.to_owned(),
                format!("UNKNOWN: verdicts do not agree yet; latest: {latest}"),
            ),
            CognitiveHealth::Healthy => (
                Some(true),
                REASON_PASSING.to_owned(),
                format!("HEALTHY: latest: {latest}"),
            ),
            CognitiveHealth::Degraded | CognitiveHealth::Unresponsive => (
                Some(observation.tracker.ready()),
                if health == CognitiveHealth::Degraded {
                    REASON_DEGRADED
                } else {
                    REASON_UNRESPONSIVE
                }
                .to_owned(),
                format!("{health}: {failing} failing probe(s) in a row; latest: {latest}"),
            ),
        }
    };
    Readiness {
        health: if observation.problem.is_some() && observation.latest.is_none() {
            CognitiveHealth::Unknown
        } else {
            health
        },
        status,
        reason,
        message,
    }
}

/// Why a status write is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteReason {
    /// Health, or the condition's status or reason, differs from what status holds.
    Transition,
    /// Nothing changed but the latest probe is older in status than the refresh period.
    Refresh,
}

impl WriteReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteReason::Transition => "transition",
            WriteReason::Refresh => "refresh",
        }
    }
}

/// What the agent's status holds now, of the runner's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written<'a> {
    /// The health in status.
    pub health: Option<CognitiveHealth>,
    /// The readiness condition in status: its status as written (`True`, `False`, `Unknown`)
    /// and its reason.
    pub condition: Option<(&'a str, &'a str)>,
    /// When the probe recorded in status finished.
    pub probe_time: Option<Timestamp>,
}

/// Whether to write the runner's part of the status now.
///
/// At once when the health or the condition's status or reason differ from what status holds
/// (a transition, or a first write); otherwise, when there is a probe status does not hold yet
/// (`new_probe`), only once `refresh` has passed since the last write (`last_write`, or
/// failing that the time of the probe in status). A message or a probe that differs on its own
/// is not worth a write sooner.
pub fn should_write(
    written: &Written<'_>,
    desired: &Readiness,
    new_probe: bool,
    last_write: Option<Timestamp>,
    now: Timestamp,
    refresh: Duration,
) -> Option<WriteReason> {
    let health_differs = written.health != Some(desired.health);
    let condition_differs = written.condition.is_none_or(|(status, reason)| {
        status != status_str(desired.status) || reason != desired.reason
    });
    if health_differs || condition_differs {
        return Some(WriteReason::Transition);
    }
    if !new_probe {
        return None;
    }
    let stale = match last_write.or(written.probe_time) {
        None => true,
        Some(since) => {
            let refresh =
                jiff::SignedDuration::try_from(refresh).unwrap_or(jiff::SignedDuration::MAX);
            now.duration_since(since) >= refresh
        }
    };
    stale.then_some(WriteReason::Refresh)
}

/// What every pod of the agent should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodWants {
    /// The readiness gate: passed or not.
    pub gate: bool,
    /// The gate condition's reason.
    pub reason: String,
    /// The gate condition's message.
    pub message: String,
    /// Whether the pod is in safe mode.
    pub safe_mode: bool,
}

/// What every pod of the agent should carry: the gate follows readiness (closed before the
/// first verdict), and safe mode is on exactly while the agent is UNRESPONSIVE and
/// `degrade_to_safemode` is set.
pub fn pod_wants(observation: &Observation<'_>, degrade_to_safemode: bool) -> PodWants {
    let readiness = readiness(observation);
    PodWants {
        gate: observation.ready(),
        reason: readiness.reason,
        message: readiness.message,
        safe_mode: degrade_to_safemode
            && observation.tracker.health() == CognitiveHealth::Unresponsive,
    }
}

/// What to do about a health transition beyond reporting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Nothing (safe mode, when wanted, follows from [`pod_wants`]).
    Nothing,
    /// Delete the agent's pods so they are recreated.
    RestartPods,
}

/// Decides the remedy for `transition` and whether the current UNRESPONSIVE episode has had
/// its restart. Pods are restarted only when the agent becomes UNRESPONSIVE without safe mode,
/// and at most once per episode: the episode ends when the agent leaves UNRESPONSIVE.
pub fn remedy(
    transition: &Transition,
    degrade_to_safemode: bool,
    restarted_in_episode: bool,
) -> (Remedy, bool) {
    if transition.to != CognitiveHealth::Unresponsive {
        return (Remedy::Nothing, false);
    }
    if degrade_to_safemode || restarted_in_episode {
        return (Remedy::Nothing, restarted_in_episode);
    }
    (Remedy::RestartPods, true)
}

/// The Event of a health transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionEvent {
    /// A warning (away from HEALTHY) rather than a normal Event.
    pub warning: bool,
    /// PascalCase reason naming the new health, e.g. `CognitiveDegraded`.
    pub reason: &'static str,
    /// `cognitive health FROM -> TO: why`.
    pub note: String,
}

/// The Event of a health transition: normal towards HEALTHY (or UNKNOWN), a warning otherwise.
pub fn transition_event(transition: &Transition) -> TransitionEvent {
    let (warning, reason) = match transition.to {
        CognitiveHealth::Healthy => (false, "CognitiveHealthy"),
        CognitiveHealth::Degraded => (true, "CognitiveDegraded"),
        CognitiveHealth::Unresponsive => (true, "CognitiveUnresponsive"),
        CognitiveHealth::Unknown => (false, "CognitiveUnknown"),
    };
    TransitionEvent {
        warning,
        reason,
        note: format!(
            "cognitive health {} -> {}: {}",
            transition.from, transition.to, transition.reason
        ),
    }
}

/// The Event `action` for an Event whose note is `note`: `Probe-` and a digest of the note.
///
/// kube's event `Recorder` folds an Event whose (type, reason, action, reporting controller,
/// regarding, related) equals one it published within the last six minutes into that Event's
/// series, keeping the FIRST note: with one fixed action, a second DEGRADED transition would
/// still show the first one's cause. With the note's digest in the action, only a repeat with
/// the very same note is folded (counted, and its note still true); a transition or problem
/// with another cause gets an Event of its own. Events stay one per transition or new
/// problem, never one per probe. Pure and stable across processes (FNV-1a).
pub fn event_action(note: &str) -> String {
    let digest = note.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("Probe-{digest:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Challenge, Operation, ProbeDetail, ProbeOutcome, Reply, TrackerConfig, Verdict};
    use proptest::prelude::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    fn outcome(verdict: Verdict) -> ProbeOutcome {
        ProbeOutcome::new(
            verdict,
            ProbeDetail {
                challenge: Challenge::Reasoning {
                    operation: Operation::Sum,
                    lhs: 5,
                    rhs: 7,
                },
                reply: Some(Reply::capture("112")),
                latency: Duration::from_millis(40),
                reason: match verdict {
                    Verdict::Unhealthy => "wrong answer: expected 12, got 112".to_owned(),
                    Verdict::Unresponsive => "no answer within the 10s timeout".to_owned(),
                    _ => "correct answer in 40ms".to_owned(),
                },
            },
        )
    }

    /// The message the runner records for a probe's outcome.
    fn message(outcome: &ProbeOutcome) -> String {
        format!(
            "reasoning probe: {}: {}",
            outcome.verdict(),
            outcome.reason()
        )
    }

    fn tracker_after(verdicts: &[Verdict]) -> (HealthTracker, Option<String>) {
        let mut tracker = HealthTracker::new(TrackerConfig::default()).expect("tracker");
        let mut last = None;
        for v in verdicts {
            let o = outcome(*v);
            tracker.observe(&o);
            last = Some(message(&o));
        }
        (tracker, last)
    }

    fn observe<'a>(tracker: &'a HealthTracker, latest: Option<&'a str>) -> Observation<'a> {
        Observation {
            tracker,
            latest,
            problem: None,
        }
    }

    /// What status holds after `r` was written at a probe finished at `probe_time`.
    fn written(r: &Readiness, probe_time: Timestamp) -> Written<'_> {
        Written {
            health: Some(r.health),
            condition: Some((status_str(r.status), r.reason.as_str())),
            probe_time: Some(probe_time),
        }
    }

    #[test]
    fn before_any_probe_the_condition_is_unknown_and_the_gate_closed() {
        let (tracker, last) = tracker_after(&[]);
        let obs = observe(&tracker, last.as_deref());
        let r = readiness(&obs);
        assert_eq!(r.health, CognitiveHealth::Unknown);
        assert_eq!(r.status, None);
        assert_eq!(r.reason, REASON_AWAITING);
        let wants = pod_wants(&obs, true);
        assert!(!wants.gate);
        assert!(!wants.safe_mode);
    }

    #[test]
    fn a_wrong_answer_streak_names_the_probe_and_the_answer() {
        use Verdict::*;
        let (tracker, last) = tracker_after(&[Healthy, Unhealthy, Unhealthy, Unhealthy]);
        let r = readiness(&observe(&tracker, last.as_deref()));
        assert_eq!(r.health, CognitiveHealth::Degraded);
        assert_eq!(r.status, Some(false));
        assert_eq!(r.reason, REASON_DEGRADED);
        assert!(
            r.message
                .contains("reasoning probe: Unhealthy: wrong answer: expected 12, got 112"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_config_problem_turns_the_condition_false_with_its_field() {
        let (tracker, _) = tracker_after(&[Verdict::Healthy]);
        let obs = Observation {
            tracker: &tracker,
            latest: None,
            problem: Some(Problem {
                reason: "SecretKeyNotFound",
                message: "spec.model.secretRef.key: Secret hive/llm has no key 'k'",
            }),
        };
        let r = readiness(&obs);
        assert_eq!(r.status, Some(false));
        assert_eq!(r.reason, "SecretKeyNotFound");
        assert_eq!(r.health, CognitiveHealth::Unknown, "never judged");
        assert!(r.message.starts_with("spec.model.secretRef.key"));
        assert!(!obs.ready());
        assert!(!pod_wants(&obs, true).gate);
    }

    #[test]
    fn unchanged_health_is_written_at_most_every_refresh() {
        use Verdict::*;
        let refresh = Duration::from_secs(300);
        let (tracker, last) = tracker_after(&[Healthy]);
        let first = readiness(&observe(&tracker, last.as_deref()));
        assert_eq!(
            should_write(&Written::default(), &first, true, None, at(100), refresh),
            Some(WriteReason::Transition)
        );
        let status = written(&first, at(100));
        // Same health, a newer probe: not yet.
        let (tracker, last) = tracker_after(&[Healthy, Healthy]);
        let later = readiness(&observe(&tracker, last.as_deref()));
        assert_eq!(
            should_write(&status, &later, true, Some(at(100)), at(399), refresh),
            None
        );
        assert_eq!(
            should_write(&status, &later, true, Some(at(100)), at(400), refresh),
            Some(WriteReason::Refresh)
        );
        // Without a remembered write (a new leader), the probe time in status counts.
        assert_eq!(
            should_write(&status, &later, true, None, at(399), refresh),
            None
        );
        // A transition is written at once.
        let (tracker, last) = tracker_after(&[Healthy, Unresponsive, Unresponsive, Unresponsive]);
        let down = readiness(&observe(&tracker, last.as_deref()));
        assert_eq!(down.health, CognitiveHealth::Unresponsive);
        assert_eq!(
            should_write(&status, &down, true, Some(at(100)), at(101), refresh),
            Some(WriteReason::Transition)
        );
        // Nothing new at all: nothing to write, however late.
        assert_eq!(
            should_write(&status, &first, false, Some(at(100)), at(10_000), refresh),
            None
        );
    }

    #[test]
    fn safe_mode_only_while_unresponsive_and_asked_for() {
        use Verdict::*;
        let (tracker, last) = tracker_after(&[Unresponsive, Unresponsive, Unresponsive]);
        let obs = observe(&tracker, last.as_deref());
        assert!(pod_wants(&obs, true).safe_mode);
        assert!(!pod_wants(&obs, false).safe_mode);
        let (tracker, last) = tracker_after(&[Unhealthy, Unhealthy, Unhealthy]);
        let obs = observe(&tracker, last.as_deref());
        assert!(!pod_wants(&obs, true).safe_mode, "DEGRADED still thinks");
    }

    fn transition(from: CognitiveHealth, to: CognitiveHealth) -> Transition {
        Transition {
            from,
            to,
            ready_before: from == CognitiveHealth::Healthy,
            ready_after: to == CognitiveHealth::Healthy,
            reason: "test".to_owned(),
        }
    }

    #[test]
    fn events_name_the_new_health() {
        let event = transition_event(&transition(
            CognitiveHealth::Healthy,
            CognitiveHealth::Unresponsive,
        ));
        assert!(event.warning);
        assert_eq!(event.reason, "CognitiveUnresponsive");
        assert!(
            event.note.contains("HEALTHY -> UNRESPONSIVE: test"),
            "{}",
            event.note
        );
        let back = transition_event(&transition(
            CognitiveHealth::Unresponsive,
            CognitiveHealth::Healthy,
        ));
        assert!(!back.warning);
        assert_eq!(back.reason, "CognitiveHealthy");
    }

    #[test]
    fn each_cause_gets_its_own_event_action_and_a_repeat_the_same() {
        let cause = |reason: &str| {
            let mut t = transition(CognitiveHealth::Healthy, CognitiveHealth::Degraded);
            t.reason = reason.to_owned();
            transition_event(&t).note
        };
        let first = cause("latest: wrong answer: expected 12, got \"UNHEALTHY\"");
        let second = cause("latest: wrong answer: expected 12, got 112");
        assert_ne!(event_action(&first), event_action(&second));
        assert_eq!(event_action(&first), event_action(&first.clone()));
        let action = event_action(&second);
        assert!(
            action.starts_with("Probe-") && action.len() <= 128,
            "{action}"
        );
        assert!(
            action
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
    }

    fn health_strategy() -> impl Strategy<Value = CognitiveHealth> {
        prop_oneof![
            Just(CognitiveHealth::Healthy),
            Just(CognitiveHealth::Degraded),
            Just(CognitiveHealth::Unresponsive),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// However health moves, pods are restarted at most once between two entries into
        /// UNRESPONSIVE, never with safe mode, and always on entering it without safe mode
        /// for the first time in an episode.
        #[test]
        fn at_most_one_restart_per_unresponsive_episode(
            path in prop::collection::vec(health_strategy(), 1..60),
            degrade in any::<bool>(),
        ) {
            let mut health = CognitiveHealth::Unknown;
            let mut restarted = false;
            let mut restarts_in_episode = 0;
            for next in path {
                if next == health {
                    continue;
                }
                let t = transition(health, next);
                if health == CognitiveHealth::Unresponsive {
                    restarts_in_episode = 0;
                }
                let (remedy, flag) = remedy(&t, degrade, restarted);
                if remedy == Remedy::RestartPods {
                    restarts_in_episode += 1;
                    prop_assert!(!degrade);
                    prop_assert_eq!(next, CognitiveHealth::Unresponsive);
                }
                if next == CognitiveHealth::Unresponsive && !degrade {
                    prop_assert_eq!(remedy, Remedy::RestartPods, "entering an episode restarts");
                }
                prop_assert!(restarts_in_episode <= 1);
                restarted = flag;
                health = next;
            }
        }

        /// Status writes between transitions are at least `refresh` apart, whatever the
        /// probe times, and every transition is written.
        #[test]
        fn no_write_storm(
            verdicts in prop::collection::vec(prop_oneof![Just(Verdict::Healthy), Just(Verdict::Unresponsive)], 1..200),
            gap in 5i64..60,
            refresh_secs in 30u64..600,
        ) {
            let refresh = Duration::from_secs(refresh_secs);
            let mut tracker = HealthTracker::new(TrackerConfig::default()).expect("tracker");
            // What status holds: the readiness and the probe time last written.
            let mut status: Option<(Readiness, Timestamp)> = None;
            let mut last_write: Option<Timestamp> = None;
            let mut previous_health = CognitiveHealth::Unknown;
            for (i, v) in verdicts.iter().enumerate() {
                let now = at(1_000 + gap * i as i64);
                let o = outcome(*v);
                tracker.observe(&o);
                let latest = message(&o);
                let desired = readiness(&observe(&tracker, Some(&latest)));
                let in_status = status
                    .as_ref()
                    .map(|(r, time)| written(r, *time))
                    .unwrap_or_default();
                // Every round brings a probe status does not hold yet.
                let decision = should_write(&in_status, &desired, true, last_write, now, refresh);
                if desired.health != previous_health {
                    prop_assert_eq!(decision, Some(WriteReason::Transition));
                }
                if decision == Some(WriteReason::Refresh) {
                    let since = last_write.expect("a refresh follows a write");
                    prop_assert!(now.duration_since(since).as_secs() >= refresh_secs as i64);
                }
                if decision.is_some() {
                    previous_health = desired.health;
                    status = Some((desired, now));
                    last_write = Some(now);
                } else {
                    previous_health = desired.health;
                }
            }
        }
    }
}
