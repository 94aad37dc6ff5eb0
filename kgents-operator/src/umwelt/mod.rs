//! The Umwelt controller: an Umwelt's affordances become a ServiceAccount, a Role and a
//! RoleBinding that grant exactly the Kubernetes access those AGENTESE paths need — nothing
//! more — and its persona, constraints and context a ConfigMap the agent's runtime reads.
//!
//! The access comes from the pure `kgents_core::access::compile` (`plan` turns it into the
//! children); a reconcile applies only the children whose desired state changed (a steady state
//! costs reads, never writes), checks that `secretRef` names an existing Secret, and writes the
//! status only when it changed. Affordance globs that do not parse grant nothing: the Role and
//! RoleBinding are removed, the Ready condition turns False with the parse error, and an Event
//! says why.
//!
//! | module | what it holds |
//! |---|---|
//! | `plan` | pure: an Umwelt → its ServiceAccount, Role, RoleBinding and ConfigMap, or why not |
//! | `status` | pure: what was observed → status; which Umwelts an Agent event concerns |
//! | `controller` | reconcile, error policy, watches and [`run`] |

pub(crate) mod controller;
pub(crate) mod plan;
pub(crate) mod status;

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;
use kgents_core::access::ACCESS_TABLE;

use crate::support;

pub use controller::run;
pub use plan::{RuntimeView, policy_rules, service_account_name};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "umwelt";

/// Label naming the Umwelt a child belongs to.
pub const UMWELT_LABEL: &str = "kgents.io/umwelt";

/// The key of the ConfigMap entry holding the runtime view (JSON).
pub const CONFIG_KEY: &str = "umwelt.json";

/// The Ready condition: affordances compiled and applied (and the secret, if named, exists).
pub const READY: &str = "Ready";

/// The Kubernetes permissions the Umwelt controller uses, and nothing more.
///
/// It watches Umwelts and their children, applies children (get to compare, create and patch
/// through server-side apply), deletes the Role and RoleBinding of an Umwelt whose affordances
/// stopped parsing, reads Secret metadata (get only: it checks `secretRef` exists, never lists
/// or reads data it does not name), and publishes Events. Finally it holds every access an
/// Umwelt can grant (the rows of `kgents_core::access::ACCESS_TABLE`): the API server lets a
/// subject create a Role or RoleBinding only with permissions it holds itself, which keeps the
/// operator from needing the broader `escalate` and `bind` verbs.
pub fn required_rules() -> Vec<PolicyRule> {
    let children = ["get", "list", "watch", "create", "patch"];
    let rbac_children = ["get", "list", "watch", "create", "patch", "delete"];
    let mut rules = vec![
        support::rule("kgents.io", &["umwelts"], &["list", "watch"]),
        support::rule("kgents.io", &["umwelts/status"], &["patch"]),
        // Agents are watched to count those using each Umwelt.
        support::rule("kgents.io", &["agents"], &["list", "watch"]),
        support::rule("", &["serviceaccounts", "configmaps"], &children),
        support::rule(
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
            &rbac_children,
        ),
        support::rule("", &["secrets"], &["get"]),
        support::rule("events.k8s.io", &["events"], &["create", "patch"]),
        // Every Umwelt's Role lets its agent's symbiont report its own Memory's use.
        support::rule("kgents.io", &["memories/status"], &["patch"]),
    ];
    let mut grantable: BTreeMap<(&str, &str), std::collections::BTreeSet<&str>> = BTreeMap::new();
    for row in ACCESS_TABLE {
        grantable
            .entry((row.api_group, row.resource))
            .or_default()
            .extend(row.verbs.iter().map(|v| v.as_str()));
    }
    rules.extend(grantable.into_iter().map(|((group, resource), verbs)| {
        let verbs: Vec<&str> = verbs.into_iter().collect();
        support::rule(group, &[resource], &verbs)
    }));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use kgents_core::access;
    use kgents_core::agentese::Affordances;
    use kgents_crds::{Agent, Umwelt, UmweltSpec};
    use serde_json::json;

    pub(super) fn agent_named(name: &str, umwelt: Option<&str>) -> Agent {
        let mut agent = Agent::new(
            name,
            serde_json::from_value(json!({"genus": "B", "umwelt": umwelt})).expect("agent spec"),
        );
        agent.metadata.namespace = Some("hive".to_owned());
        agent
    }

    pub(super) fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).expect("ts")
    }

    pub(super) fn umwelt(spec: serde_json::Value) -> Umwelt {
        let mut spec = spec;
        spec["agent"] = json!("scout");
        let spec: UmweltSpec = serde_json::from_value(spec).expect("valid spec");
        let mut u = Umwelt::new("scout", spec);
        u.metadata.namespace = Some("hive".into());
        u.metadata.uid = Some("uid-scout-umwelt".into());
        u.metadata.generation = Some(1);
        u
    }

    #[test]
    fn the_operator_may_grant_everything_an_umwelt_can_ask_for() {
        let everything =
            Affordances::parse_all(["world.*", "self.*", "void.*", "time.*", "concept.*"]);
        let granted = policy_rules(&access::compile(&everything.expect("globs")));
        let held = required_rules();
        for rule in granted {
            for verb in &rule.verbs {
                assert!(
                    held.iter().any(|h| h.api_groups == rule.api_groups
                        && h.resources
                            .as_ref()
                            .is_some_and(|r| r.contains(&rule.resources.as_ref().expect("r")[0]))
                        && h.verbs.contains(verb)),
                    "the operator lacks {verb} on {:?}",
                    rule.resources
                );
            }
        }
    }
}
