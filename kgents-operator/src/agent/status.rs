//! An Agent's status, computed from what the operator observed (pure).
//!
//! The phase follows the Deployment truthfully: `Pending` until pods are ready, `Running` when
//! every desired replica is ready and up to date, `Degraded` when only some are, `Failed` with a
//! reason when the spec cannot be realised (an invalid spec, a child the API server refuses, a
//! missing ServiceAccount, pods the ReplicaSet cannot create). Conditions `Ready` and
//! `Available` carry `observedGeneration`; their transition times move only when their status
//! flips, so computing the same observation twice yields the same status and no write.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kgents_crds::agent::{AgentPhase, AgentStatus};

use super::observed::ObservedDeployment;
use crate::conditions::{self, ConditionStatus, DesiredCondition};

/// Condition type: the agent is running as asked.
pub const READY: &str = "Ready";
/// Condition type: the agent's Deployment has its minimum of available pods.
pub const AVAILABLE: &str = "Available";
/// The condition types this controller writes (others, e.g. cognitive health, belong to other
/// writers and are left alone).
pub const OWN_CONDITIONS: [&str; 2] = [READY, AVAILABLE];

/// How far the Agent's realisation got in this reconcile.
#[derive(Clone, Copy, Debug)]
pub enum Realisation<'a> {
    /// The spec cannot be realised as written.
    Invalid {
        /// PascalCase reason.
        reason: &'a str,
        /// What is wrong and what to do.
        message: &'a str,
    },
    /// The API server refused a child (quota, admission, validation, permissions).
    Rejected {
        /// PascalCase reason.
        reason: &'a str,
        /// The server's message, with the child named.
        message: &'a str,
    },
    /// The pods would run as a ServiceAccount that does not exist.
    MissingServiceAccount {
        /// Its name.
        name: &'a str,
    },
    /// DRY_RUN: nothing was created; this is what would have been.
    DryRun {
        /// One line per child.
        would_create: &'a [String],
    },
    /// The children are in place; the Deployment as last observed (if seen yet).
    Applied {
        /// The observed Deployment.
        deployment: Option<&'a ObservedDeployment>,
    },
}

/// Everything the status is computed from.
#[derive(Clone, Copy, Debug)]
pub struct StatusInput<'a> {
    /// `metadata.generation` of the Agent.
    pub generation: Option<i64>,
    /// `spec.replicas`.
    pub desired_replicas: i32,
    /// The Agent's name (its children's name).
    pub name: &'a str,
    /// `status.selector` (scale subresource).
    pub selector: &'a str,
    /// Name of the Agent's Memory, when it has one.
    pub memory: Option<&'a str>,
    /// Name of the Agent's Umwelt, when it has one.
    pub umwelt: Option<&'a str>,
    /// What happened.
    pub realisation: Realisation<'a>,
}

/// The part of a status this controller owns: everything but cognitive health, the last probe,
/// and conditions of other types.
pub fn own_part(status: &AgentStatus) -> AgentStatus {
    AgentStatus {
        cognitive_health: None,
        last_probe: None,
        conditions: status
            .conditions
            .iter()
            .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect(),
        ..status.clone()
    }
}

/// Whether writing `desired` would change what `existing` holds in this controller's fields.
pub fn needs_write(existing: Option<&AgentStatus>, desired: &AgentStatus) -> bool {
    match existing {
        Some(existing) => own_part(existing) != *desired,
        None => true,
    }
}

struct Verdict {
    phase: AgentPhase,
    ready_reason: String,
    message: String,
    available: (ConditionStatus, String, String),
}

fn not_available(reason: &str, message: &str) -> (ConditionStatus, String, String) {
    (
        ConditionStatus::False,
        reason.to_owned(),
        message.to_owned(),
    )
}

fn deployment_condition<'a>(
    deployment: &'a ObservedDeployment,
    type_: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    deployment
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

fn observe_deployment(input: &StatusInput<'_>, deployment: &ObservedDeployment) -> Verdict {
    let status = deployment.status.clone().unwrap_or_default();
    let desired = input.desired_replicas;
    let ready = status.ready_replicas.unwrap_or(0);
    let current = status.replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let observed = match (status.observed_generation, deployment.metadata.generation) {
        (Some(seen), Some(generation)) => seen >= generation,
        _ => false,
    };
    let spec_replicas = deployment.spec.replicas;
    let available = match deployment_condition(deployment, "Available") {
        Some(c) => (
            if c.status.as_deref() == Some("True") {
                ConditionStatus::True
            } else if c.status.as_deref() == Some("False") {
                ConditionStatus::False
            } else {
                ConditionStatus::Unknown
            },
            c.reason
                .clone()
                .unwrap_or_else(|| "DeploymentAvailability".to_owned()),
            c.message.clone().unwrap_or_default(),
        ),
        None => (
            ConditionStatus::Unknown,
            "DeploymentPending".to_owned(),
            format!("Deployment {} reports no availability yet", input.name),
        ),
    };
    let progress = format!("{ready} of {desired} pod(s) ready");

    if let Some(c) = deployment_condition(deployment, "ReplicaFailure")
        .filter(|c| c.status.as_deref() == Some("True"))
    {
        let message = format!(
            "pods of Deployment {} cannot be created: {} ({progress})",
            input.name,
            c.message.clone().unwrap_or_default()
        );
        return Verdict {
            phase: if ready > 0 {
                AgentPhase::Degraded
            } else {
                AgentPhase::Failed
            },
            ready_reason: c
                .reason
                .clone()
                .unwrap_or_else(|| "ReplicaFailure".to_owned()),
            message,
            available,
        };
    }
    if let Some(c) = deployment_condition(deployment, "Progressing").filter(|c| {
        c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Verdict {
            phase: if ready > 0 {
                AgentPhase::Degraded
            } else {
                AgentPhase::Failed
            },
            ready_reason: "ProgressDeadlineExceeded".to_owned(),
            message: format!(
                "Deployment {} made no progress: {} ({progress})",
                input.name,
                c.message.clone().unwrap_or_default()
            ),
            available,
        };
    }
    // The Deployment must have seen the current spec before its counts mean anything.
    let settled = observed && spec_replicas == Some(desired);
    if desired == 0 {
        return Verdict {
            phase: AgentPhase::Pending,
            ready_reason: if settled && current == 0 {
                "ScaledToZero"
            } else {
                "ScalingDown"
            }
            .to_owned(),
            message: format!(
                "replicas is 0 ({current} pod(s) still present); scale the Agent up to run it"
            ),
            available,
        };
    }
    if settled && ready == desired && updated == desired && current == desired {
        return Verdict {
            phase: AgentPhase::Running,
            ready_reason: "AllReplicasReady".to_owned(),
            message: format!("all {desired} pod(s) ready and up to date"),
            available,
        };
    }
    if ready == 0 {
        return Verdict {
            phase: AgentPhase::Pending,
            ready_reason: "PodsNotReady".to_owned(),
            message: format!("waiting for pods: {progress}"),
            available,
        };
    }
    Verdict {
        phase: AgentPhase::Degraded,
        ready_reason: if ready >= desired {
            "RolloutInProgress"
        } else {
            "PartiallyReady"
        }
        .to_owned(),
        message: format!("{progress}, {updated} up to date, {current} present"),
        available,
    }
}

/// Computes this controller's part of the Agent's status.
pub fn compute(
    input: &StatusInput<'_>,
    existing: Option<&AgentStatus>,
    now: Timestamp,
) -> AgentStatus {
    let mut replicas = 0;
    let mut ready_replicas = 0;
    let mut children_named = true;
    let verdict = match input.realisation {
        Realisation::Invalid { reason, message } => {
            children_named = false;
            Verdict {
                phase: AgentPhase::Failed,
                ready_reason: reason.to_owned(),
                message: message.to_owned(),
                available: not_available(reason, "the spec cannot be realised"),
            }
        }
        Realisation::Rejected { reason, message } => Verdict {
            phase: AgentPhase::Failed,
            ready_reason: reason.to_owned(),
            message: message.to_owned(),
            available: not_available(reason, "a child was refused by the API server"),
        },
        Realisation::MissingServiceAccount { name } => Verdict {
            phase: AgentPhase::Failed,
            ready_reason: "ServiceAccountNotFound".to_owned(),
            message: format!(
                "ServiceAccount {name} does not exist; the pods cannot run as it. Create the Umwelt {} (its controller creates the account) or remove spec.umwelt",
                input.umwelt.unwrap_or(name)
            ),
            available: not_available("ServiceAccountNotFound", "no pods can be created"),
        },
        Realisation::DryRun { would_create } => {
            children_named = false;
            Verdict {
                phase: AgentPhase::Pending,
                ready_reason: "DryRun".to_owned(),
                message: format!(
                    "DRY_RUN: nothing created; would create {}",
                    would_create.join("; ")
                ),
                available: not_available("DryRun", "DRY_RUN creates no pods"),
            }
        }
        Realisation::Applied { deployment: None } => Verdict {
            phase: AgentPhase::Pending,
            ready_reason: "DeploymentPending".to_owned(),
            message: format!("waiting for Deployment {} to be observed", input.name),
            available: not_available("DeploymentPending", "no Deployment observed yet"),
        },
        Realisation::Applied {
            deployment: Some(deployment),
        } => {
            let status = deployment.status.clone().unwrap_or_default();
            replicas = status.replicas.unwrap_or(0);
            ready_replicas = status.ready_replicas.unwrap_or(0);
            observe_deployment(input, deployment)
        }
    };
    let desired = [
        DesiredCondition::new(
            READY,
            verdict.phase == AgentPhase::Running,
            verdict.ready_reason,
            verdict.message,
        ),
        DesiredCondition {
            type_: AVAILABLE.to_owned(),
            status: verdict.available.0,
            reason: verdict.available.1,
            message: verdict.available.2,
        },
    ];
    let existing_conditions: Vec<Condition> =
        existing.map(|s| s.conditions.clone()).unwrap_or_default();
    AgentStatus {
        phase: Some(verdict.phase),
        observed_generation: input.generation,
        replicas: Some(replicas),
        ready_replicas: Some(ready_replicas),
        selector: Some(input.selector.to_owned()),
        deployment: children_named.then(|| input.name.to_owned()),
        service: children_named.then(|| input.name.to_owned()),
        memory: if children_named {
            input.memory.map(str::to_owned)
        } else {
            None
        },
        umwelt: input.umwelt.map(str::to_owned),
        cognitive_health: None,
        last_probe: None,
        conditions: conditions::merge(&existing_conditions, &desired, input.generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::observed::ObservedDeploymentSpec;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    fn input(realisation: Realisation<'_>) -> StatusInput<'_> {
        StatusInput {
            generation: Some(3),
            desired_replicas: 2,
            name: "scout",
            selector: "app.kubernetes.io/instance=scout,app.kubernetes.io/name=kgents-agent",
            memory: Some("scout"),
            umwelt: None,
            realisation,
        }
    }

    fn deployment(
        replicas: i32,
        ready: i32,
        updated: i32,
        current: i32,
        observed: i64,
    ) -> ObservedDeployment {
        ObservedDeployment {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                generation: Some(5),
                ..Default::default()
            },
            spec: ObservedDeploymentSpec {
                replicas: Some(replicas),
            },
            status: Some(DeploymentStatus {
                replicas: Some(current),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                observed_generation: Some(observed),
                ..Default::default()
            }),
        }
    }

    fn condition<'a>(status: &'a AgentStatus, type_: &str) -> &'a Condition {
        conditions::find(&status.conditions, type_).expect("condition")
    }

    #[test]
    fn running_only_when_every_replica_is_ready_and_current() {
        let d = deployment(2, 2, 2, 2, 5);
        let s = compute(
            &input(Realisation::Applied {
                deployment: Some(&d),
            }),
            None,
            at(1),
        );
        assert_eq!(s.phase, Some(AgentPhase::Running));
        assert_eq!(condition(&s, READY).status, "True");
        assert_eq!(condition(&s, READY).observed_generation, Some(3));
        assert_eq!(s.replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.deployment.as_deref(), Some("scout"));
        assert_eq!(s.memory.as_deref(), Some("scout"));
    }

    #[test]
    fn pending_degraded_and_stale_observations() {
        let cases = [
            (
                deployment(2, 0, 2, 2, 5),
                AgentPhase::Pending,
                "PodsNotReady",
            ),
            (
                deployment(2, 1, 2, 2, 5),
                AgentPhase::Degraded,
                "PartiallyReady",
            ),
            // Ready counts from an older generation of the Deployment do not make it Running.
            (
                deployment(2, 2, 2, 2, 4),
                AgentPhase::Degraded,
                "RolloutInProgress",
            ),
            // Surplus old pods still present.
            (
                deployment(2, 2, 2, 3, 5),
                AgentPhase::Degraded,
                "RolloutInProgress",
            ),
            // The Deployment has not caught up with a scale of the Agent yet.
            (
                deployment(1, 1, 1, 1, 5),
                AgentPhase::Degraded,
                "PartiallyReady",
            ),
        ];
        for (d, phase, reason) in cases {
            let s = compute(
                &input(Realisation::Applied {
                    deployment: Some(&d),
                }),
                None,
                at(1),
            );
            assert_eq!(s.phase, Some(phase), "{d:?}");
            assert_eq!(condition(&s, READY).reason, reason);
            assert_eq!(condition(&s, READY).status, "False");
        }
        let s = compute(
            &input(Realisation::Applied { deployment: None }),
            None,
            at(1),
        );
        assert_eq!(s.phase, Some(AgentPhase::Pending));
        assert_eq!(s.replicas, Some(0));
    }

    #[test]
    fn replica_failures_fail_the_agent_with_the_reason() {
        let mut d = deployment(2, 0, 0, 0, 5);
        d.status.as_mut().expect("status").conditions = Some(vec![DeploymentCondition {
            type_: Some("ReplicaFailure".to_owned()),
            status: Some("True".to_owned()),
            reason: Some("FailedCreate".to_owned()),
            message: Some("pods \"scout-x\" is forbidden: exceeded quota: q".to_owned()),
            ..Default::default()
        }]);
        let s = compute(
            &input(Realisation::Applied {
                deployment: Some(&d),
            }),
            None,
            at(1),
        );
        assert_eq!(s.phase, Some(AgentPhase::Failed));
        assert_eq!(condition(&s, READY).reason, "FailedCreate");
        assert!(condition(&s, READY).message.contains("exceeded quota"));
        d.status.as_mut().expect("status").ready_replicas = Some(1);
        let s = compute(
            &input(Realisation::Applied {
                deployment: Some(&d),
            }),
            None,
            at(1),
        );
        assert_eq!(
            s.phase,
            Some(AgentPhase::Degraded),
            "one pod runs despite the failure"
        );
    }

    #[test]
    fn failures_and_dry_run_are_reported() {
        let s = compute(
            &input(Realisation::Invalid {
                reason: "MissingImage",
                message: "set spec.image",
            }),
            None,
            at(1),
        );
        assert_eq!(s.phase, Some(AgentPhase::Failed));
        assert_eq!(condition(&s, READY).reason, "MissingImage");
        assert!(s.deployment.is_none());

        let s = compute(
            &input(Realisation::MissingServiceAccount { name: "explorer" }),
            None,
            at(1),
        );
        assert_eq!(s.phase, Some(AgentPhase::Failed));
        assert_eq!(condition(&s, READY).reason, "ServiceAccountNotFound");

        let lines = ["Deployment scout".to_owned(), "Service scout".to_owned()];
        let s = compute(
            &input(Realisation::DryRun {
                would_create: &lines,
            }),
            None,
            at(1),
        );
        assert_eq!(s.phase, Some(AgentPhase::Pending));
        assert_eq!(condition(&s, READY).reason, "DryRun");
        assert!(
            condition(&s, READY)
                .message
                .contains("would create Deployment scout; Service scout")
        );
        assert!(s.deployment.is_none() && s.memory.is_none());
    }

    #[test]
    fn the_same_observation_needs_no_write_and_foreign_fields_are_ignored() {
        let d = deployment(2, 1, 2, 2, 5);
        let first = compute(
            &input(Realisation::Applied {
                deployment: Some(&d),
            }),
            None,
            at(1),
        );
        assert!(needs_write(None, &first));
        let mut stored = first.clone();
        stored.cognitive_health = Some(kgents_crds::agent::CognitiveHealth::Healthy);
        stored.conditions.push(Condition {
            type_: "CognitiveHealthy".to_owned(),
            status: "True".to_owned(),
            reason: "ProbesPass".to_owned(),
            message: String::new(),
            observed_generation: Some(3),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)),
        });
        let second = compute(
            &input(Realisation::Applied {
                deployment: Some(&d),
            }),
            Some(&stored),
            at(99),
        );
        assert_eq!(first, second, "transition times do not move without a flip");
        assert!(!needs_write(Some(&stored), &second));

        let ready = deployment(2, 2, 2, 2, 5);
        let third = compute(
            &input(Realisation::Applied {
                deployment: Some(&ready),
            }),
            Some(&stored),
            at(120),
        );
        assert!(needs_write(Some(&stored), &third));
        assert_eq!(
            condition(&third, READY).last_transition_time,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(120))
        );
    }
}
