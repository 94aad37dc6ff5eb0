//! An Umwelt's status (pure): what the reconcile observed → status, and which Umwelts an Agent
//! event concerns (their count of active agents may have changed).

use std::collections::HashMap;

use kgents_core::access::CompiledAccess;
use kgents_crds::umwelt::UmweltStatus;
use kgents_crds::{Agent, Umwelt};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::READY;
use super::plan::{PlanProblem, service_account_name};
use crate::conditions::{self, DesiredCondition};
use crate::shared::AgentEvent;

/// What the reconcile observed besides the Umwelt itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed {
    /// Whether `spec.secretRef` names an existing Secret (`None`: none named).
    pub secret_exists: Option<bool>,
    /// How many Agents name this Umwelt in `spec.umwelt` (`None`: not known yet — the Agent
    /// cache is still loading — so the last count stays).
    pub active_agents: Option<i32>,
    /// Whether this reconcile applied any child (then `lastApplied` is now).
    pub applied: bool,
}

/// The Agents of `umwelt`'s namespace whose `spec.umwelt` names it.
pub fn active_agents<'a>(umwelt: &Umwelt, agents: impl IntoIterator<Item = &'a Agent>) -> i32 {
    let name = umwelt.name_any();
    let namespace = umwelt.namespace();
    let count = agents
        .into_iter()
        .filter(|a| a.namespace() == namespace && a.spec.umwelt.as_deref() == Some(name.as_str()))
        .count();
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The Umwelts an Agent watch event concerns: the one the Agent names now and the one it
/// named before (`last` remembers each Agent's Umwelt between events), when they differ; for a
/// deleted Agent the one it named. An unchanged Agent concerns none (no recount).
pub fn umwelts_touched(
    last: &mut HashMap<String, String>,
    event: &AgentEvent,
) -> Vec<ObjectRef<Umwelt>> {
    let key = |a: &Agent| format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any());
    let umwelt_ref = |a: &Agent, name: &str| {
        ObjectRef::<Umwelt>::new(name).within(&a.namespace().unwrap_or_default())
    };
    match event {
        AgentEvent::Applied(agent) => {
            let now = agent.spec.umwelt.clone();
            let before = match &now {
                Some(name) => last.insert(key(agent), name.clone()),
                None => last.remove(&key(agent)),
            };
            if before == now {
                return Vec::new();
            }
            before
                .iter()
                .chain(now.iter())
                .map(|name| umwelt_ref(agent, name))
                .collect()
        }
        AgentEvent::Deleted(agent) => last
            .remove(&key(agent))
            .map(|name| umwelt_ref(agent, &name))
            .into_iter()
            .collect(),
        AgentEvent::Relisted => Vec::new(),
    }
}

/// The status an Umwelt should have. `compiled` is the plan's outcome (`Ok(granted paths)`).
pub fn desired_status(
    umwelt: &Umwelt,
    compiled: &std::result::Result<&CompiledAccess, &PlanProblem>,
    observed: Observed,
    now: jiff::Timestamp,
) -> UmweltStatus {
    let secret_exists = observed.secret_exists;
    let existing = umwelt
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let name = service_account_name(&umwelt.name_any());
    let ready = match (compiled, secret_exists) {
        (Err(problem), _) => DesiredCondition::new(READY, false, problem.reason, &problem.message),
        (Ok(_), Some(false)) => DesiredCondition::new(
            READY,
            false,
            "SecretNotFound",
            format!(
                "spec.secretRef names Secret {:?}, which does not exist in this namespace; create it or remove secretRef",
                umwelt
                    .spec
                    .secret_ref
                    .as_ref()
                    .map(|s| s.name.as_str())
                    .unwrap_or_default()
            ),
        ),
        (Ok(access), _) => DesiredCondition::new(
            READY,
            true,
            "Compiled",
            if access.granted_paths.is_empty() {
                "no affordance touches the cluster: the Role grants nothing".to_owned()
            } else {
                format!(
                    "the Role grants exactly: {}",
                    access.granted_paths.join(", ")
                )
            },
        ),
    };
    let compiled_ok = compiled.is_ok();
    UmweltStatus {
        observed_generation: umwelt.metadata.generation,
        service_account: compiled_ok.then(|| name.clone()),
        role: compiled_ok.then(|| name.clone()),
        config_map_name: compiled_ok.then(|| name.clone()),
        secret_valid: secret_exists,
        active_agents: observed
            .active_agents
            .or_else(|| umwelt.status.as_ref().and_then(|s| s.active_agents)),
        // Only a real apply moves it, so an unchanged Umwelt is never rewritten for it.
        last_applied: if observed.applied {
            Some(kgents_crds::common::Time(now))
        } else {
            umwelt.status.as_ref().and_then(|s| s.last_applied.clone())
        },
        conditions: conditions::merge(existing, &[ready], umwelt.metadata.generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::umwelt::tests::{agent_named, umwelt};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn active_agents_are_those_naming_the_umwelt_in_its_namespace() {
        let u = umwelt(json!({"affordances": []}));
        let mut elsewhere = agent_named("far", Some("scout"));
        elsewhere.metadata.namespace = Some("other".to_owned());
        let agents = [
            agent_named("a", Some("scout")),
            agent_named("b", Some("scout")),
            agent_named("c", Some("explorer")),
            agent_named("d", None),
            elsewhere,
        ];
        assert_eq!(active_agents(&u, &agents), 2);
    }

    #[test]
    fn an_agent_event_concerns_the_umwelts_it_names_now_and_before() {
        let mut last = HashMap::new();
        let names = |refs: Vec<ObjectRef<Umwelt>>| -> Vec<String> {
            refs.into_iter().map(|r| r.name).collect()
        };
        let apply = |a: Agent| AgentEvent::Applied(Arc::new(a));
        assert_eq!(
            names(umwelts_touched(
                &mut last,
                &apply(agent_named("a", Some("u1")))
            )),
            ["u1"]
        );
        assert!(
            umwelts_touched(&mut last, &apply(agent_named("a", Some("u1")))).is_empty(),
            "unchanged: no recount"
        );
        assert_eq!(
            names(umwelts_touched(
                &mut last,
                &apply(agent_named("a", Some("u2")))
            )),
            ["u1", "u2"],
            "moved: both counts change"
        );
        assert_eq!(
            names(umwelts_touched(&mut last, &apply(agent_named("a", None)))),
            ["u2"]
        );
        assert!(umwelts_touched(&mut last, &apply(agent_named("b", None))).is_empty());
        umwelts_touched(&mut last, &apply(agent_named("c", Some("u3"))));
        assert_eq!(
            names(umwelts_touched(
                &mut last,
                &AgentEvent::Deleted(Arc::new(agent_named("c", Some("u3"))))
            )),
            ["u3"]
        );
        assert!(
            last.is_empty(),
            "nothing remembered of gone or umwelt-less agents"
        );
    }
}
