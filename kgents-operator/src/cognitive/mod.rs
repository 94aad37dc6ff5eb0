//! Cognitive probes of live agents: HTTP 200 is not health.
//!
//! For every Agent with `spec.health.type: COGNITIVE_PROBE`, the runner poses the configured
//! probes (`kgents-probes`: Echo, Reasoning, Json) to the agent's model (`spec.model`), judges
//! the answers exactly, and feeds a per-agent [`HealthTracker`](kgents_probes::HealthTracker).
//! Agents with `health.type: HTTP` get nothing from it: ordinary Kubernetes probes only.
//!
//! | module | what it holds |
//! |---|---|
//! | `verdict` | the pure verdicts of [`kgents_probes::verdict`] in Kubernetes terms: `cognitiveHealth`, `CognitiveReady`, `lastProbe`, pod patches, Event types |
//! | `model` | `spec.model` + its Secret → a model client, or the field that is wrong |
//! | `runner` | the I/O: follows Agents (the shared watch) and pods, runs probes under the budget of [`kgents_probes::schedule`], writes what the verdicts say |
//!
//! # Schedule and cost
//!
//! One probe **call** per agent per round: round *n* runs `spec.health.probes[n mod len]`, so
//! the configured probes take turns and every call is one model request (the model clients
//! never retry inside a probe, so a call is exactly one request). Round *n + 1* is due
//! `intervalSeconds` after round *n* finished, ±10 % jitter derived from the agent's uid and
//! the round number (reproducible, and a thousand agents created at once spread out). Two
//! global limits hold across all agents ([`ProbeConfig`](crate::ProbeConfig)): at most
//! `max_concurrent` calls in flight and at most `calls_per_minute` calls started in any
//! 60-second window. Agents that are due beyond the budget wait in order of due time, so none
//! starves. At the default interval of 30 s an agent costs 120 model calls an hour; the default
//! budget of 600 calls a minute probes 300 such agents on time. Its Kubernetes API cost is a
//! read of its model Secret every five minutes (when `secretRef` is set), a status write on
//! every transition and otherwise at most every `status_refresh` (12 an hour by default), and
//! one patch per pod when its gate or safe mode changes.
//!
//! The probe timeout is `spec.health.timeoutSeconds`; a correct answer slower than half of it
//! is Degraded. `unhealthyThreshold` and `healthyThreshold` are the tracker's failure and
//! success thresholds, counted in probes.
//!
//! # What reaches Kubernetes
//!
//! - **Agent status**, written by this runner alone with server-side apply under its own field
//!   manager (`<field manager>-cognitive`): `cognitiveHealth`, `lastProbe` and the
//!   [`CONDITION`] (`CognitiveReady`) condition. The Agent controller owns every other status
//!   field and condition and never claims these, so each field has one writer and neither
//!   overwrites the other. Written on every change of health or of the condition's status or
//!   reason, otherwise at most every `status_refresh` (default 5 minutes).
//! - **A readiness gate**: the Agent controller gives the pods of a COGNITIVE_PROBE agent
//!   `readinessGates: [{conditionType: kgents.io/cognitive-ready}]` ([`READINESS_GATE`]), and
//!   this runner sets that pod condition on each of the agent's pods (`pods/status`): True when
//!   the tracker says ready (HEALTHY), False otherwise, including before the first verdict.
//!   Services stop routing to an agent that cannot think.
//! - **Events** on the Agent for every health transition, every new configuration problem,
//!   safe mode entered and left, and pods restarted.
//!
//! # Safe mode and restarts
//!
//! When an agent is UNRESPONSIVE and `spec.health.degradeToSafemode` is true (the default),
//! each of its pods is annotated [`SAFE_MODE_ANNOTATION`]` = "true"`; the annotation is removed
//! as soon as the agent is no longer UNRESPONSIVE. The pod template of a COGNITIVE_PROBE agent
//! mounts a downward-API volume at [`PODINFO_DIR`] whose file [`ANNOTATIONS_FILE`]
//! (`/etc/kgents/podinfo/annotations`) holds the pod's annotations, one `key="value"` per
//! line, and the kubelet refreshes it when they change (within its sync period, about a
//! minute). An agent runtime honours safe mode by watching that file for
//! `kgents.io/safe-mode="true"`: stop taking new work and filing Proposals, answer only from
//! cached knowledge, and resume when the line disappears. No restart is needed either way.
//!
//! When `degradeToSafemode` is false, the agent's pods are deleted (their Deployment recreates
//! them) once when it becomes UNRESPONSIVE — at most once per UNRESPONSIVE episode, with an
//! Event — and not again until it has recovered and failed anew.
//!
//! # Bad input
//!
//! A missing Secret or key, an unknown provider, an endpoint that is not a URL, provider `none`
//! or no `spec.model` at all: the agent is not probed, its `CognitiveReady` is False with a
//! reason and a message naming the field (e.g. `spec.model.secretRef.key`), its pods' gate is
//! False, a Warning Event says what to fix, and the configuration is checked again every
//! interval. Other agents are unaffected. A model that the provider says does not exist is the
//! same kind of fault: reason `ModelNotFound`, message starting `spec.model.name:` with the
//! provider's words; the tracker is not fed (the model was never judged), and the next round
//! asks again, so a model pulled or deployed later is picked up without a change to the Agent.
//!
//! # Leadership
//!
//! The runner is one of [`crate::run::controllers`] (named [`CONTROLLER`]), so it runs only on
//! the leading replica and stops when leadership is lost; every write checks leadership again.
//! Health is not lost on a hand-over: a new leader resumes each tracker from the
//! `cognitiveHealth` in status.

pub(crate) mod model;
pub(crate) mod runner;
pub(crate) mod verdict;

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::support::rule;

pub use crate::workload::{
    ANNOTATIONS_FILE, PODINFO_DIR, PODINFO_VOLUME, READINESS_GATE, SAFE_MODE_ANNOTATION,
    is_cognitive, podinfo_mount, podinfo_volume, readiness_gate,
};
pub use runner::run;

/// The runner's name in logs, metrics and [`crate::run::controllers`].
pub const CONTROLLER: &str = "cognitive";
/// The Agent condition this runner writes.
pub const CONDITION: &str = "CognitiveReady";
/// Suffix of the field manager this runner writes Agent status with.
pub const FIELD_MANAGER_SUFFIX: &str = "-cognitive";

/// The field manager the runner applies Agent status with: the operator's plus
/// [`FIELD_MANAGER_SUFFIX`].
pub fn field_manager(operator_field_manager: &str) -> String {
    format!("{operator_field_manager}{FIELD_MANAGER_SUFFIX}")
}

/// The Kubernetes permissions the runner uses, and nothing more.
///
/// Agents are watched and their status patched (its own fields); agent pods are watched, their
/// readiness-gate condition patched (`pods/status`), their safe-mode annotation patched
/// (`pods`) and, for agents without safe mode, deleted to restart them; the API key is read
/// from the Secret an Agent's `spec.model.secretRef` names (get only: Secrets are never
/// listed or watched).
pub fn required_rules() -> Vec<PolicyRule> {
    vec![
        rule("kgents.io", &["agents"], &["get", "list", "watch"]),
        rule("kgents.io", &["agents/status"], &["patch"]),
        rule("", &["pods"], &["get", "list", "watch", "patch", "delete"]),
        rule("", &["pods/status"], &["patch"]),
        rule("", &["secrets"], &["get"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgents_crds::agent::AgentSpec;

    #[test]
    fn the_annotations_file_is_the_pods_annotations_mounted_read_only() {
        let volume = podinfo_volume();
        let file = &volume
            .downward_api
            .as_ref()
            .expect("downward API")
            .items
            .as_ref()
            .expect("items")[0];
        assert_eq!(file.path, ANNOTATIONS_FILE);
        assert_eq!(
            file.field_ref.as_ref().expect("field").field_path,
            "metadata.annotations"
        );
        let mount = podinfo_mount();
        assert_eq!(mount.name, volume.name);
        assert_eq!(
            format!("{}/{}", mount.mount_path, ANNOTATIONS_FILE),
            "/etc/kgents/podinfo/annotations"
        );
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(readiness_gate().condition_type, "kgents.io/cognitive-ready");
    }

    #[test]
    fn only_cognitive_probe_agents_are_probed() {
        let spec = |health: serde_json::Value| -> AgentSpec {
            serde_json::from_value(serde_json::json!({"genus": "B", "health": health}))
                .expect("spec")
        };
        assert!(is_cognitive(&spec(
            serde_json::json!({"type": "COGNITIVE_PROBE"})
        )));
        assert!(!is_cognitive(&spec(serde_json::json!({"type": "HTTP"}))));
        assert!(!is_cognitive(&spec(serde_json::Value::Null)));
    }

    #[test]
    fn the_runner_writes_status_under_its_own_field_manager() {
        assert_eq!(
            field_manager("kgents-operator"),
            "kgents-operator-cognitive"
        );
    }
}
