//! What an Umwelt compiles to (pure): the ServiceAccount, Role, RoleBinding and ConfigMap that
//! grant exactly the access its affordances need, or why it cannot be compiled.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kgents_core::access::{self, CompiledAccess};
use kgents_core::agentese::Affordances;
use kgents_crds::Umwelt;
use kube::ResourceExt;
use serde::Serialize;

use super::{CONFIG_KEY, UMWELT_LABEL};
use crate::support;
use crate::{Error, Result};

const SUFFIX: &str = "-umwelt";

/// The name of the ServiceAccount (and Role, RoleBinding and ConfigMap) generated for the
/// Umwelt `umwelt_name`: `<name>-umwelt`, so it never collides with an Agent's own
/// ServiceAccount, which is named after the Agent. A name too long for the suffix is cut and
/// made unique with a hash of the full name.
pub fn service_account_name(umwelt_name: &str) -> String {
    support::suffixed_name(umwelt_name, SUFFIX)
}

/// What the agent's runtime reads from the ConfigMap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeView<'a> {
    /// The Agent this umwelt belongs to.
    pub agent: &'a str,
    /// Personality dials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona: Option<&'a kgents_crds::umwelt::Persona>,
    /// Budgets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<&'a kgents_crds::umwelt::Constraints>,
    /// Free-form context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Which pheromone types the agent senses and emits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pheromone_sensitivity: Option<&'a kgents_crds::umwelt::PheromoneSensitivity>,
    /// Share of exploratory work.
    pub slop_budget: f64,
    /// Kind of work.
    pub workload: kgents_crds::umwelt::Workload,
    /// The affordance globs, as written.
    pub affordances: &'a [String],
    /// The cluster-touching AGENTESE paths they grant (what the Role allows).
    pub granted_paths: &'a [&'static str],
}

/// The children an Umwelt compiles to.
#[derive(Debug, Clone, PartialEq)]
pub struct UmweltChildren {
    /// The identity the agent runs as.
    pub service_account: ServiceAccount,
    /// Exactly the access the affordances need.
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// Persona, constraints and context for the runtime.
    pub config_map: ConfigMap,
    /// The compiled access (to report what was granted).
    pub access: CompiledAccess,
}

/// Why an Umwelt cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProblem {
    /// PascalCase reason for the condition and Event.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Turns compiled access into RBAC rules: one rule per API group and resource.
pub fn policy_rules(access: &CompiledAccess) -> Vec<PolicyRule> {
    access
        .rules
        .iter()
        .map(|rule| PolicyRule {
            api_groups: Some(vec![rule.api_group.clone()]),
            resources: Some(vec![rule.resource.clone()]),
            verbs: rule.verbs.iter().map(|v| v.as_str().to_owned()).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

/// What every agent may do to itself whatever its affordances: read its Umwelt (the symbiont
/// resolves the agent's caller from it) and the Umwelt's ConfigMap (the symbiont watches it to
/// serve `/umwelt` live; a watch with a `metadata.name` field selector is authorised by
/// resourceNames), and report its own Memory's use (`status.sizeUsed`, `status.lastAccess`,
/// written by the symbiont). Named objects only.
pub fn self_rules(umwelt: &str, config_map: &str, agent: &str) -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            api_groups: Some(vec!["kgents.io".to_owned()]),
            resources: Some(vec!["memories/status".to_owned()]),
            resource_names: Some(vec![agent.to_owned()]),
            verbs: vec!["patch".to_owned()],
            ..PolicyRule::default()
        },
        PolicyRule {
            api_groups: Some(vec!["kgents.io".to_owned()]),
            resources: Some(vec!["umwelts".to_owned()]),
            resource_names: Some(vec![umwelt.to_owned()]),
            verbs: vec!["get".to_owned()],
            ..PolicyRule::default()
        },
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            resource_names: Some(vec![config_map.to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
            ..PolicyRule::default()
        },
    ]
}

/// Plans an Umwelt's children (pure). Errors when a glob does not parse, or the object was not
/// read from the API server (no namespace or uid).
pub fn plan(umwelt: &Umwelt) -> Result<std::result::Result<UmweltChildren, PlanProblem>> {
    let namespace = umwelt
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let owner = support::owner_reference(umwelt)?;
    let affordances = match Affordances::parse_all(&umwelt.spec.affordances) {
        Ok(affordances) => affordances,
        Err(e) => {
            return Ok(Err(PlanProblem {
                reason: "InvalidAffordances",
                message: format!(
                    "spec.affordances: {e}; nothing is granted until every glob parses (e.g. world.*.manifest, void.pheromone.sense)"
                ),
            }));
        }
    };
    let access = access::compile(&affordances);
    let name = service_account_name(&umwelt.name_any());
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        labels: Some(
            support::child_labels("umwelt", UMWELT_LABEL, &umwelt.name_any())
                .into_iter()
                .chain([("kgents.io/agent".to_owned(), umwelt.spec.agent.clone())])
                .collect(),
        ),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    let view = RuntimeView {
        agent: &umwelt.spec.agent,
        persona: umwelt.spec.persona.as_ref(),
        constraints: umwelt.spec.constraints.as_ref(),
        context: umwelt.spec.context.as_ref(),
        pheromone_sensitivity: umwelt.spec.pheromone_sensitivity.as_ref(),
        slop_budget: umwelt.spec.slop_budget,
        workload: umwelt.spec.workload,
        affordances: &umwelt.spec.affordances,
        granted_paths: &access.granted_paths,
    };
    let view_json = serde_json::to_string_pretty(&view)?;
    Ok(Ok(UmweltChildren {
        service_account: ServiceAccount {
            metadata: meta.clone(),
            // The agent needs its token to call the API server as itself.
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        },
        role: Role {
            metadata: meta.clone(),
            rules: Some(
                policy_rules(&access)
                    .into_iter()
                    .chain(self_rules(&umwelt.name_any(), &name, &umwelt.spec.agent))
                    .collect(),
            ),
        },
        role_binding: RoleBinding {
            metadata: meta.clone(),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".to_owned()),
                kind: "Role".to_owned(),
                name: name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: name.clone(),
                namespace: Some(namespace),
                ..Subject::default()
            }]),
        },
        config_map: ConfigMap {
            metadata: meta,
            data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), view_json)])),
            ..ConfigMap::default()
        },
        access,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::umwelt::status::{Observed, desired_status};
    use crate::umwelt::tests::{now, umwelt};
    use serde_json::json;

    #[test]
    fn names_carry_a_suffix_and_stay_valid_when_long() {
        assert_eq!(service_account_name("scout"), "scout-umwelt");
        let long = "a".repeat(253);
        let name = service_account_name(&long);
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with("-umwelt"));
        assert_ne!(name, service_account_name(&"a".repeat(252)));
    }

    #[test]
    fn sense_only_compiles_to_read_pheromones_bound_to_the_account() {
        let u = umwelt(json!({"affordances": ["void.pheromone.sense"]}));
        let children = plan(&u).expect("plannable").expect("valid globs");
        let rules = children.role.rules.expect("rules");
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[1..], self_rules("scout", "scout-umwelt", "scout"));
        assert_eq!(rules[0].api_groups, Some(vec!["kgents.io".to_owned()]));
        assert_eq!(rules[0].resources, Some(vec!["pheromones".to_owned()]));
        assert_eq!(rules[0].verbs, vec!["get", "list", "watch"]);
        let binding = children.role_binding;
        assert_eq!(binding.role_ref.name, "scout-umwelt");
        let subjects = binding.subjects.expect("subjects");
        assert_eq!(subjects[0].name, "scout-umwelt");
        assert_eq!(subjects[0].namespace.as_deref(), Some("hive"));
        let owner = &children
            .service_account
            .metadata
            .owner_references
            .expect("owned")[0];
        assert_eq!(owner.uid, "uid-scout-umwelt");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn an_umwelt_without_cluster_affordances_grants_only_its_own_objects() {
        let u = umwelt(json!({"affordances": ["concept.*.refine"]}));
        let children = plan(&u).expect("plannable").expect("valid globs");
        let rules = children.role.rules.expect("rules");
        assert_eq!(rules, self_rules("scout", "scout-umwelt", "scout"));
        for rule in &rules {
            assert!(rule.resource_names.as_ref().is_some_and(|n| n.len() == 1));
            let status = rule.resources.as_deref() == Some(&["memories/status".to_owned()][..]);
            let allowed: &[&str] = if status {
                &["patch"]
            } else {
                &["get", "list", "watch"]
            };
            assert!(rule.verbs.iter().all(|v| allowed.contains(&v.as_str())));
        }
    }

    #[test]
    fn the_config_map_carries_what_the_runtime_reads() {
        let u = umwelt(json!({
            "affordances": ["void.pheromone.*"],
            "persona": {"warmth": 0.9},
            "constraints": {"tokenBudget": 1000},
            "context": {"project": "hive"},
            "workload": "urgent"
        }));
        let children = plan(&u).expect("plannable").expect("valid globs");
        let data = children.config_map.data.expect("data");
        let view: serde_json::Value = serde_json::from_str(&data[CONFIG_KEY]).expect("JSON");
        assert_eq!(view["agent"], "scout");
        assert_eq!(view["persona"]["warmth"], 0.9);
        assert_eq!(view["constraints"]["tokenBudget"], 1000);
        assert_eq!(view["context"]["project"], "hive");
        assert_eq!(view["workload"], "urgent");
        assert_eq!(
            view["grantedPaths"],
            json!(["void.pheromone.sense", "void.pheromone.emit"])
        );
    }

    #[test]
    fn a_bad_glob_is_a_problem_not_a_grant() {
        let u = umwelt(json!({"affordances": ["void.pheromone.sense", "nowhere..x"]}));
        let problem = plan(&u).expect("plannable").expect_err("bad glob");
        assert_eq!(problem.reason, "InvalidAffordances");
        assert!(
            problem.message.contains("spec.affordances"),
            "{}",
            problem.message
        );
        let status = desired_status(&u, &Err(&problem), Observed::default(), now());
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.role, None);
    }
}
