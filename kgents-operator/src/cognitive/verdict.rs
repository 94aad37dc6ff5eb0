//! The runner's verdicts in Kubernetes terms. The decisions themselves are pure and live in
//! [`kgents_probes::verdict`] (readiness, when a status write is due, what pods carry,
//! restarts, Events); this module turns them into the Agent status fields (`cognitiveHealth`,
//! `CognitiveReady`, `lastProbe`), the server-side apply body, pod patches and Event types.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kgents_crds::agent::{self as crd, AgentStatus};
use kgents_probes::verdict::{self as pure, PodWants, Problem, Readiness};
use kgents_probes::{HealthTracker, ProbeOutcome, Transition};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use super::model::ConfigProblem;
use super::{CONDITION, READINESS_GATE, SAFE_MODE_ANNOTATION};
use crate::conditions::{self, ConditionStatus, DesiredCondition};

pub(crate) use kgents_probes::verdict::{Remedy, WriteReason, event_action, remedy};

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

impl<'a> Observation<'a> {
    /// The observation in the pure verdict's terms.
    fn pure(&self) -> pure::Observation<'a> {
        pure::Observation {
            tracker: self.tracker,
            latest: self
                .last_probe
                .map(|p| p.message.as_deref().unwrap_or_default()),
            problem: self.problem.map(|p| Problem {
                reason: p.reason,
                message: &p.message,
            }),
        }
    }

    /// Whether the agent passes its readiness gate: the tracker says ready and nothing is
    /// wrong with its configuration.
    #[cfg(test)]
    pub fn ready(&self) -> bool {
        self.pure().ready()
    }
}

/// The runner's part of an Agent's status, as it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Health and the readiness condition.
    pub readiness: Readiness,
    /// `status.lastProbe`.
    pub last_probe: Option<crd::ProbeRecord>,
}

impl Desired {
    /// `status.cognitiveHealth`.
    pub fn health(&self) -> crd::CognitiveHealth {
        self.readiness.health
    }

    /// The `CognitiveReady` condition.
    pub fn condition(&self) -> DesiredCondition {
        DesiredCondition {
            type_: CONDITION.to_owned(),
            status: match self.readiness.status {
                Some(true) => ConditionStatus::True,
                Some(false) => ConditionStatus::False,
                None => ConditionStatus::Unknown,
            },
            reason: self.readiness.reason.clone(),
            message: self.readiness.message.clone(),
        }
    }
}

/// Computes the runner's part of the status from what it observed.
pub fn desired(observation: &Observation<'_>) -> Desired {
    Desired {
        readiness: pure::readiness(&observation.pure()),
        last_probe: observation.last_probe.cloned(),
    }
}

/// Whether to write the runner's part of the status now ([`pure::should_write`] over what
/// the Agent's status holds).
pub fn should_write(
    observed: Option<&AgentStatus>,
    desired: &Desired,
    last_write: Option<Timestamp>,
    now: Timestamp,
    refresh: Duration,
) -> Option<WriteReason> {
    let condition = observed.and_then(|s| conditions::find(&s.conditions, CONDITION));
    let observed_probe = observed.and_then(|s| s.last_probe.as_ref());
    let written = pure::Written {
        health: observed.and_then(|s| s.cognitive_health),
        condition: condition.map(|c| (c.status.as_str(), c.reason.as_str())),
        probe_time: observed_probe.map(|p| p.time.0),
    };
    let new_probe = desired.last_probe.is_some() && observed_probe != desired.last_probe.as_ref();
    pure::should_write(
        &written,
        &desired.readiness,
        new_probe,
        last_write,
        now,
        refresh,
    )
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
    let condition = conditions::merge(&existing, &[desired.condition()], generation, now);
    let mut status = json!({
        "cognitiveHealth": desired.health(),
        "conditions": condition,
    });
    if let Some(probe) = &desired.last_probe {
        status["lastProbe"] = json!(probe);
    }
    status
}

/// What every pod of the agent should carry ([`pure::pod_wants`]).
pub fn pod_wants(observation: &Observation<'_>, degrade_to_safemode: bool) -> PodWants {
    pure::pod_wants(&observation.pure(), degrade_to_safemode)
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
    let gate_status = ConditionStatus::from(wants.gate).as_str();
    let gate = match current {
        Some(c) if c.status == gate_status && c.reason.as_deref() == Some(&wants.reason) => None,
        _ => Some(json!({
            "status": {"conditions": [{
                "type": READINESS_GATE,
                "status": gate_status,
                "reason": wants.reason,
                "message": wants.message,
                "lastProbeTime": now,
                "lastTransitionTime": match current {
                    Some(c) if c.status == gate_status => {
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

/// The Event of a health transition ([`pure::transition_event`]): Normal towards HEALTHY,
/// Warning otherwise; its reason and note.
pub fn transition_event(transition: &Transition) -> (EventType, &'static str, String) {
    let event = pure::transition_event(transition);
    let type_ = if event.warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    (type_, event.reason, event.note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use kgents_probes::verdict::{REASON_PASSING, REASON_UNRESPONSIVE};
    use kgents_probes::{Challenge, CognitiveHealth, ProbeDetail, Reply, TrackerConfig, Verdict};

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
            cognitive_health: Some(d.health()),
            last_probe: d.last_probe.clone(),
            conditions: vec![Condition {
                type_: CONDITION.to_owned(),
                status: d.condition().status.as_str().to_owned(),
                reason: d.condition().reason,
                message: d.condition().message,
                observed_generation: None,
                last_transition_time: Time(now),
            }],
            ..AgentStatus::default()
        }
    }

    #[test]
    fn the_desired_status_speaks_the_crd_and_a_config_problem_names_its_field() {
        let (tracker, last) = tracker_after(&[Verdict::Healthy]);
        let d = observe(&tracker, last.as_ref());
        assert_eq!(d.health(), crd::CognitiveHealth::Healthy);
        assert_eq!(d.condition().type_, CONDITION);
        assert_eq!(d.condition().status, ConditionStatus::True);
        assert!(
            d.condition().message.contains("reasoning probe: Healthy"),
            "{}",
            d.condition().message
        );
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
        assert_eq!(d.condition().status, ConditionStatus::False);
        assert_eq!(d.condition().reason, "SecretKeyNotFound");
        assert!(!obs.ready());
        assert!(!pod_wants(&obs, true).gate);
    }

    #[test]
    fn a_written_status_is_compared_field_by_field() {
        let refresh = Duration::from_secs(300);
        let (tracker, last) = tracker_after(&[Verdict::Healthy]);
        let first = observe(&tracker, last.as_ref());
        assert_eq!(
            should_write(None, &first, None, at(100), refresh),
            Some(WriteReason::Transition)
        );
        let written = status_of(&first, at(100));
        assert_eq!(
            should_write(Some(&written), &first, Some(at(100)), at(10_000), refresh),
            None,
            "the same probe is not new"
        );
        let (tracker, last) = tracker_after(&[Verdict::Healthy, Verdict::Healthy]);
        let later = observe(&tracker, last.as_ref());
        assert_eq!(
            should_write(Some(&written), &later, Some(at(100)), at(400), refresh),
            Some(WriteReason::Refresh)
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
            gate: true,
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
            gate: false,
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
    fn transitions_become_events_of_the_right_type() {
        let transition = Transition {
            from: CognitiveHealth::Healthy,
            to: CognitiveHealth::Unresponsive,
            ready_before: true,
            ready_after: false,
            reason: "test".to_owned(),
        };
        let (type_, reason, note) = transition_event(&transition);
        assert_eq!(type_, EventType::Warning);
        assert_eq!(reason, "CognitiveUnresponsive");
        assert!(note.contains("HEALTHY -> UNRESPONSIVE: test"), "{note}");
    }
}
