//! From verdicts to Kubernetes, purely: what an Agent's `cognitiveHealth`, `CognitiveReady`
//! and `lastProbe` should say, whether that is worth a status write now, what each pod's
//! readiness-gate condition and safe-mode annotation should be, and whether to restart pods.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kgents_crds::agent::{self as crd, AgentStatus};
use kgents_probes::{CognitiveHealth, HealthTracker, ProbeOutcome, Transition};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use super::model::ConfigProblem;
use super::{CONDITION, READINESS_GATE, SAFE_MODE_ANNOTATION};
use crate::conditions::{self, ConditionStatus, DesiredCondition};

/// Reason of `CognitiveReady` while the probes pass.
pub const REASON_PASSING: &str = "ProbesPassing";
/// Reason of `CognitiveReady` before the first verdict.
pub const REASON_AWAITING: &str = "AwaitingFirstProbe";
/// Reason of `CognitiveReady` while verdicts disagree and the tracker has not decided.
pub const REASON_UNDECIDED: &str = "Undecided";
/// Reason of `CognitiveReady` for a DEGRADED agent.
pub const REASON_DEGRADED: &str = "Degraded";
/// Reason of `CognitiveReady` for an UNRESPONSIVE agent.
pub const REASON_UNRESPONSIVE: &str = "Unresponsive";

/// The lower-case name of a probe kind, for messages and metrics.
pub fn kind_name(kind: crd::ProbeKind) -> &'static str {
    match kind {
        crd::ProbeKind::Echo => "echo",
        crd::ProbeKind::Reasoning => "reasoning",
        crd::ProbeKind::Json => "json",
    }
}

/// The `lastProbe` record of an outcome of the `kind` probe, finished at `time`. A wrong
/// answer (Unhealthy) is recorded as `Degraded`, the status enum's "partly wrong", with the
/// reason in the message.
pub fn record(outcome: &ProbeOutcome, kind: crd::ProbeKind, time: Timestamp) -> crd::ProbeRecord {
    crd::ProbeRecord {
        kind,
        outcome: outcome.verdict().into(),
        latency_ms: Some(i64::try_from(outcome.latency().as_millis()).unwrap_or(i64::MAX)),
        message: Some(format!(
            "{} probe: {}: {}",
            kind_name(kind),
            outcome.verdict(),
            outcome.reason()
        )),
        time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(time),
    }
}

/// What the runner knows about one agent.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The agent's tracker.
    pub tracker: &'a HealthTracker,
    /// The latest probe, if any ran since the runner adopted the agent.
    pub last_probe: Option<&'a crd::ProbeRecord>,
    /// Why the agent cannot be probed as configured, if it cannot.
    pub problem: Option<&'a ConfigProblem>,
}

impl Observation<'_> {
    /// Whether the agent passes its readiness gate: the tracker says ready and nothing is
    /// wrong with its configuration.
    pub fn ready(&self) -> bool {
        self.problem.is_none() && self.tracker.ready()
    }
}

/// The runner's part of an Agent's status, as it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// `status.cognitiveHealth`.
    pub health: crd::CognitiveHealth,
    /// The `CognitiveReady` condition.
    pub condition: DesiredCondition,
    /// `status.lastProbe`.
    pub last_probe: Option<crd::ProbeRecord>,
}

/// Computes the runner's part of the status from what it observed.
pub fn desired(observation: &Observation<'_>) -> Desired {
    let health = observation.tracker.health();
    let latest = observation
        .last_probe
        .and_then(|p| p.message.clone())
        .unwrap_or_default();
    let failing = observation.tracker.consecutive_failures();
    let (status, reason, message) = if let Some(problem) = observation.problem {
        (
            ConditionStatus::False,
            problem.reason.to_owned(),
            problem.message.clone(),
        )
    } else {
        match health {
            CognitiveHealth::Unknown if observation.last_probe.is_none() => (
                ConditionStatus::Unknown,
                REASON_AWAITING.to_owned(),
                "no probe has run yet".to_owned(),
            ),
            CognitiveHealth::Unknown => (
                ConditionStatus::Unknown,
                REASON_UNDECIDED.to_owned(),
                format!("UNKNOWN: verdicts do not agree yet; latest: {latest}"),
            ),
            CognitiveHealth::Healthy => (
                ConditionStatus::True,
                REASON_PASSING.to_owned(),
                format!("HEALTHY: latest: {latest}"),
            ),
            CognitiveHealth::Degraded | CognitiveHealth::Unresponsive => (
                ConditionStatus::from(observation.tracker.ready()),
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
    Desired {
        health: if observation.problem.is_some() && observation.last_probe.is_none() {
            crd::CognitiveHealth::Unknown
        } else {
            health
        },
        condition: DesiredCondition {
            type_: CONDITION.to_owned(),
            status,
            reason,
            message,
        },
        last_probe: observation.last_probe.cloned(),
    }
}

/// Why a status write is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteReason {
    /// Health, or the condition's status or reason, differs from what status holds.
    Transition,
    /// Nothing changed but `lastProbe` is older than the refresh period.
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

/// Whether to write the runner's part of the status now.
///
/// At once when `cognitiveHealth` or the `CognitiveReady` condition's status or reason differ
/// from what the Agent's status holds (a transition, or a first write); otherwise, when the
/// latest probe is not yet in status, only once `refresh` has passed since the last write
/// (`last_write`, or failing that the time of the `lastProbe` in status). A message or a
/// `lastProbe` that differs on its own is not worth a write sooner.
pub fn should_write(
    observed: Option<&AgentStatus>,
    desired: &Desired,
    last_write: Option<Timestamp>,
    now: Timestamp,
    refresh: Duration,
) -> Option<WriteReason> {
    let observed_condition = observed.and_then(|s| conditions::find(&s.conditions, CONDITION));
    let health_differs = observed.and_then(|s| s.cognitive_health) != Some(desired.health);
    let condition_differs = observed_condition.is_none_or(|c| {
        c.status != desired.condition.status.as_str() || c.reason != desired.condition.reason
    });
    if health_differs || condition_differs {
        return Some(WriteReason::Transition);
    }
    let observed_probe = observed.and_then(|s| s.last_probe.as_ref());
    if desired.last_probe.is_none() || observed_probe == desired.last_probe.as_ref() {
        return None;
    }
    let since = last_write.or_else(|| observed_probe.map(|p| p.time.0));
    let stale = match since {
        None => true,
        Some(since) => {
            let refresh =
                jiff::SignedDuration::try_from(refresh).unwrap_or(jiff::SignedDuration::MAX);
            now.duration_since(since) >= refresh
        }
    };
    stale.then_some(WriteReason::Refresh)
}

/// The `status` part of the server-side apply body: the runner's three fields only.
pub fn status_body(
    desired: &Desired,
    observed: Option<&AgentStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> Value {
    let existing: Vec<_> = observed
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ == CONDITION)
        .collect();
    let condition = conditions::merge(
        &existing,
        std::slice::from_ref(&desired.condition),
        generation,
        now,
    );
    let mut status = json!({
        "cognitiveHealth": desired.health,
        "conditions": condition,
    });
    if let Some(probe) = &desired.last_probe {
        status["lastProbe"] = json!(probe);
    }
    status
}

/// What one pod of the agent should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodWants {
    /// The readiness-gate condition's status.
    pub gate: ConditionStatus,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// Whether the pod carries `kgents.io/safe-mode: "true"`.
    pub safe_mode: bool,
}

/// What every pod of the agent should carry: the gate follows readiness (False before the
/// first verdict), and safe mode is on exactly while the agent is UNRESPONSIVE and
/// `degradeToSafemode` is set.
pub fn pod_wants(observation: &Observation<'_>, degrade_to_safemode: bool) -> PodWants {
    let desired = desired(observation);
    PodWants {
        gate: ConditionStatus::from(observation.ready()),
        reason: desired.condition.reason,
        message: desired.condition.message,
        safe_mode: degrade_to_safemode
            && observation.tracker.health() == CognitiveHealth::Unresponsive,
    }
}

/// The patches one pod needs (none when it already carries what it should).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodPatches {
    /// Strategic-merge patch of `pods/status` setting the readiness-gate condition.
    pub gate: Option<Value>,
    /// Merge patch of the pod's metadata adding or removing the safe-mode annotation.
    pub safe_mode: Option<Value>,
}

impl PodPatches {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.gate.is_none() && self.safe_mode.is_none()
    }
}

/// Compares a pod with what it should carry. The gate is rewritten when its status or
/// reason differs (not for a new message alone); a pod being deleted is left alone.
pub fn pod_patches(pod: &Pod, wants: &PodWants, now: Timestamp) -> PodPatches {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodPatches::default();
    }
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == READINESS_GATE));
    let gate = match current {
        Some(c)
            if c.status == wants.gate.as_str() && c.reason.as_deref() == Some(&wants.reason) =>
        {
            None
        }
        _ => Some(json!({
            "status": {"conditions": [{
                "type": READINESS_GATE,
                "status": wants.gate.as_str(),
                "reason": wants.reason,
                "message": wants.message,
                "lastProbeTime": now,
                "lastTransitionTime": match current {
                    Some(c) if c.status == wants.gate.as_str() => {
                        c.last_transition_time.as_ref().map_or(now, |t| t.0)
                    }
                    _ => now,
                },
            }]}
        })),
    };
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SAFE_MODE_ANNOTATION))
        .is_some_and(|v| v == "true");
    let safe_mode = match (wants.safe_mode, annotated) {
        (true, false) => Some(json!({"metadata": {"annotations": {SAFE_MODE_ANNOTATION: "true"}}})),
        (false, true) => Some(json!({"metadata": {"annotations": {SAFE_MODE_ANNOTATION: null}}})),
        _ => None,
    };
    PodPatches { gate, safe_mode }
}

/// What to do about a health transition beyond reporting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Nothing (safe mode, when wanted, follows from [`pod_wants`]).
    Nothing,
    /// Delete the agent's pods so their Deployment recreates them.
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

/// The Event of a health transition: Normal towards HEALTHY, Warning otherwise.
pub fn transition_event(transition: &Transition) -> (EventType, &'static str, String) {
    let (type_, reason) = match transition.to {
        CognitiveHealth::Healthy => (EventType::Normal, "CognitiveHealthy"),
        CognitiveHealth::Degraded => (EventType::Warning, "CognitiveDegraded"),
        CognitiveHealth::Unresponsive => (EventType::Warning, "CognitiveUnresponsive"),
        CognitiveHealth::Unknown => (EventType::Normal, "CognitiveUnknown"),
    };
    (
        type_,
        reason,
        format!(
            "cognitive health {} -> {}: {}",
            transition.from, transition.to, transition.reason
        ),
    )
}

/// The Event `action` for an Event of this runner whose note is `note`: `Probe-` and a digest
/// of the note.
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
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use kgents_probes::{Challenge, ProbeDetail, Reply, TrackerConfig, Verdict};
    use proptest::prelude::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    fn outcome(verdict: Verdict) -> ProbeOutcome {
        ProbeOutcome::new(
            verdict,
            ProbeDetail {
                challenge: Challenge::Reasoning {
                    operation: kgents_probes::Operation::Sum,
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

    fn tracker_after(verdicts: &[Verdict]) -> (HealthTracker, Option<crd::ProbeRecord>) {
        let mut tracker = HealthTracker::new(TrackerConfig::default()).expect("tracker");
        let mut last = None;
        for (i, v) in verdicts.iter().enumerate() {
            let o = outcome(*v);
            tracker.observe(&o);
            last = Some(record(&o, crd::ProbeKind::Reasoning, at(100 + i as i64)));
        }
        (tracker, last)
    }

    fn observe(tracker: &HealthTracker, last: Option<&crd::ProbeRecord>) -> Desired {
        desired(&Observation {
            tracker,
            last_probe: last,
            problem: None,
        })
    }

    fn status_of(d: &Desired, now: Timestamp) -> AgentStatus {
        AgentStatus {
            cognitive_health: Some(d.health),
            last_probe: d.last_probe.clone(),
            conditions: vec![Condition {
                type_: CONDITION.to_owned(),
                status: d.condition.status.as_str().to_owned(),
                reason: d.condition.reason.clone(),
                message: d.condition.message.clone(),
                observed_generation: None,
                last_transition_time: Time(now),
            }],
            ..AgentStatus::default()
        }
    }

    #[test]
    fn before_any_probe_the_condition_is_unknown_and_the_gate_false() {
        let (tracker, last) = tracker_after(&[]);
        let obs = Observation {
            tracker: &tracker,
            last_probe: last.as_ref(),
            problem: None,
        };
        let d = desired(&obs);
        assert_eq!(d.health, crd::CognitiveHealth::Unknown);
        assert_eq!(d.condition.status, ConditionStatus::Unknown);
        assert_eq!(d.condition.reason, REASON_AWAITING);
        let wants = pod_wants(&obs, true);
        assert_eq!(wants.gate, ConditionStatus::False);
        assert!(!wants.safe_mode);
    }

    #[test]
    fn a_wrong_answer_streak_names_the_probe_and_the_answer() {
        use Verdict::*;
        let (tracker, last) = tracker_after(&[Healthy, Unhealthy, Unhealthy, Unhealthy]);
        let d = observe(&tracker, last.as_ref());
        assert_eq!(d.health, crd::CognitiveHealth::Degraded);
        assert_eq!(d.condition.status, ConditionStatus::False);
        assert_eq!(d.condition.reason, REASON_DEGRADED);
        assert!(
            d.condition
                .message
                .contains("reasoning probe: Unhealthy: wrong answer: expected 12, got 112"),
            "{}",
            d.condition.message
        );
        let probe = d.last_probe.expect("last probe");
        assert_eq!(probe.outcome, crd::ProbeOutcome::Degraded);
        assert_eq!(probe.latency_ms, Some(40));
    }

    #[test]
    fn a_config_problem_turns_the_condition_false_with_its_field() {
        let (tracker, _) = tracker_after(&[Verdict::Healthy]);
        let problem = ConfigProblem {
            reason: "SecretKeyNotFound",
            field: "spec.model.secretRef.key".to_owned(),
            message: "spec.model.secretRef.key: Secret hive/llm has no key 'k'".to_owned(),
        };
        let obs = Observation {
            tracker: &tracker,
            last_probe: None,
            problem: Some(&problem),
        };
        let d = desired(&obs);
        assert_eq!(d.condition.status, ConditionStatus::False);
        assert_eq!(d.condition.reason, "SecretKeyNotFound");
        assert!(d.condition.message.starts_with("spec.model.secretRef.key"));
        assert!(!obs.ready());
        assert_eq!(pod_wants(&obs, true).gate, ConditionStatus::False);
    }

    #[test]
    fn unchanged_health_is_written_at_most_every_refresh() {
        use Verdict::*;
        let refresh = Duration::from_secs(300);
        let (tracker, last) = tracker_after(&[Healthy]);
        let first = observe(&tracker, last.as_ref());
        assert_eq!(
            should_write(None, &first, None, at(100), refresh),
            Some(WriteReason::Transition)
        );
        let written = status_of(&first, at(100));
        // Same health, a newer probe: not yet.
        let (tracker, last) = tracker_after(&[Healthy, Healthy]);
        let later = observe(&tracker, last.as_ref());
        assert_eq!(
            should_write(Some(&written), &later, Some(at(100)), at(399), refresh),
            None
        );
        assert_eq!(
            should_write(Some(&written), &later, Some(at(100)), at(400), refresh),
            Some(WriteReason::Refresh)
        );
        // Without a remembered write (a new leader), the lastProbe time in status counts.
        assert_eq!(
            should_write(Some(&written), &later, None, at(399), refresh),
            None
        );
        // A transition is written at once.
        let (tracker, last) = tracker_after(&[Healthy, Unresponsive, Unresponsive, Unresponsive]);
        let down = observe(&tracker, last.as_ref());
        assert_eq!(down.health, crd::CognitiveHealth::Unresponsive);
        assert_eq!(
            should_write(Some(&written), &down, Some(at(100)), at(101), refresh),
            Some(WriteReason::Transition)
        );
        // Nothing new at all: nothing to write, however late.
        assert_eq!(
            should_write(Some(&written), &first, Some(at(100)), at(10_000), refresh),
            None
        );
    }

    #[test]
    fn the_status_body_holds_only_the_runners_fields_and_keeps_transition_times() {
        let (tracker, last) = tracker_after(&[Verdict::Healthy]);
        let d = observe(&tracker, last.as_ref());
        let mut observed = status_of(&d, at(50));
        observed.phase = Some(crd::AgentPhase::Running);
        observed.conditions.push(Condition {
            type_: "Ready".to_owned(),
            status: "True".to_owned(),
            reason: "AllReplicasReady".to_owned(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(at(1)),
        });
        let body = status_body(&d, Some(&observed), Some(2), at(900));
        assert_eq!(body["cognitiveHealth"], "HEALTHY");
        assert!(body.get("phase").is_none());
        let conditions = body["conditions"].as_array().expect("conditions");
        assert_eq!(conditions.len(), 1, "{body}");
        assert_eq!(conditions[0]["type"], CONDITION);
        assert_eq!(conditions[0]["lastTransitionTime"], "1970-01-01T00:00:50Z");
        assert_eq!(body["lastProbe"]["kind"], "Reasoning");
    }

    fn pod(gate: Option<(&str, &str)>, safe_mode: bool) -> Pod {
        let mut pod = Pod::default();
        if safe_mode {
            pod.metadata.annotations = Some(
                [(SAFE_MODE_ANNOTATION.to_owned(), "true".to_owned())]
                    .into_iter()
                    .collect(),
            );
        }
        pod.status = Some(PodStatus {
            conditions: gate.map(|(status, reason)| {
                vec![PodCondition {
                    type_: READINESS_GATE.to_owned(),
                    status: status.to_owned(),
                    reason: Some(reason.to_owned()),
                    ..PodCondition::default()
                }]
            }),
            ..PodStatus::default()
        });
        pod
    }

    #[test]
    fn pods_are_patched_only_where_they_differ() {
        let wants = PodWants {
            gate: ConditionStatus::True,
            reason: REASON_PASSING.to_owned(),
            message: "HEALTHY".to_owned(),
            safe_mode: false,
        };
        assert!(pod_patches(&pod(Some(("True", REASON_PASSING)), false), &wants, at(1)).is_empty());
        let patches = pod_patches(&pod(None, true), &wants, at(1));
        let gate = patches.gate.expect("gate");
        assert_eq!(gate["status"]["conditions"][0]["type"], READINESS_GATE);
        assert_eq!(gate["status"]["conditions"][0]["status"], "True");
        assert_eq!(
            patches.safe_mode.expect("annotation removed"),
            json!({"metadata": {"annotations": {SAFE_MODE_ANNOTATION: null}}})
        );
        let down = PodWants {
            gate: ConditionStatus::False,
            reason: REASON_UNRESPONSIVE.to_owned(),
            message: "UNRESPONSIVE".to_owned(),
            safe_mode: true,
        };
        let patches = pod_patches(&pod(Some(("True", REASON_PASSING)), false), &down, at(1));
        assert_eq!(
            patches.gate.expect("gate")["status"]["conditions"][0]["status"],
            "False"
        );
        assert_eq!(
            patches.safe_mode.expect("annotation added"),
            json!({"metadata": {"annotations": {SAFE_MODE_ANNOTATION: "true"}}})
        );
    }

    #[test]
    fn safe_mode_only_while_unresponsive_and_asked_for() {
        use Verdict::*;
        let (tracker, last) = tracker_after(&[Unresponsive, Unresponsive, Unresponsive]);
        let obs = Observation {
            tracker: &tracker,
            last_probe: last.as_ref(),
            problem: None,
        };
        assert!(pod_wants(&obs, true).safe_mode);
        assert!(!pod_wants(&obs, false).safe_mode);
        let (tracker, last) = tracker_after(&[Unhealthy, Unhealthy, Unhealthy]);
        let obs = Observation {
            tracker: &tracker,
            last_probe: last.as_ref(),
            problem: None,
        };
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
        let (type_, reason, note) = transition_event(&transition(
            CognitiveHealth::Healthy,
            CognitiveHealth::Unresponsive,
        ));
        assert_eq!(type_, EventType::Warning);
        assert_eq!(reason, "CognitiveUnresponsive");
        assert!(note.contains("HEALTHY -> UNRESPONSIVE: test"), "{note}");
    }

    #[test]
    fn each_cause_gets_its_own_event_action_and_a_repeat_the_same() {
        let cause = |reason: &str| {
            let mut t = transition(CognitiveHealth::Healthy, CognitiveHealth::Degraded);
            t.reason = reason.to_owned();
            transition_event(&t).2
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
            let mut status: Option<AgentStatus> = None;
            let mut last_write: Option<Timestamp> = None;
            let mut previous_health = crd::CognitiveHealth::Unknown;
            for (i, v) in verdicts.iter().enumerate() {
                let now = at(1_000 + gap * i as i64);
                let o = outcome(*v);
                tracker.observe(&o);
                let last = record(&o, crd::ProbeKind::Echo, now);
                let d = observe(&tracker, Some(&last));
                let decision = should_write(status.as_ref(), &d, last_write, now, refresh);
                if d.health != previous_health {
                    prop_assert_eq!(decision, Some(WriteReason::Transition));
                }
                if decision == Some(WriteReason::Refresh) {
                    let since = last_write.expect("a refresh follows a write");
                    prop_assert!(now.duration_since(since).as_secs() >= refresh_secs as i64);
                }
                if decision.is_some() {
                    status = Some(status_of(&d, now));
                    last_write = Some(now);
                }
                previous_health = d.health;
            }
        }
    }
}
