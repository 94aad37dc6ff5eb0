//! The operator's own RBAC, computed from what its controllers declare.
//!
//! [`cluster_role_rules`] is the union of every controller's `required_rules()` plus what the
//! process itself needs (the leader Lease, Events). [`render_manifests`] turns it into the
//! ServiceAccount, ClusterRole and ClusterRoleBinding committed as `deploy/operator/rbac.yaml`,
//! followed by the T-gent webhook's Role and RoleBinding ([`webhook_role_manifests`]): its
//! certificate Secret is reachable in the operator's namespace only, and only by name, never
//! through the ClusterRole. A test fails when the committed file differs from what the code
//! generates, so the deployed permissions cannot drift from the code. To regenerate:
//! `KGENTS_WRITE_RBAC=1 cargo test -p kgents-operator --lib rbac`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{Error, Result, agent, memory, pheromone, umwelt};

/// Name of the operator's ServiceAccount, ClusterRole and ClusterRoleBinding.
pub const OPERATOR_NAME: &str = "kgents-operator";
/// Namespace the operator is deployed in (its ServiceAccount and Lease live there).
pub const OPERATOR_NAMESPACE: &str = "kgents-system";

/// The verbs in the order Kubernetes documentation lists them (keeps the YAML stable).
const VERB_ORDER: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn verb_rank(verb: &str) -> usize {
    VERB_ORDER
        .iter()
        .position(|v| *v == verb)
        .unwrap_or(VERB_ORDER.len())
}

/// What the process needs besides its controllers: the leader Lease (read, created once,
/// renewed with server-side apply) and Events (created, then patched into a series).
pub fn process_rules() -> Vec<PolicyRule> {
    vec![
        crate::support::rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "patch"],
        ),
        crate::support::rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}

/// Every controller's rules.
pub fn controller_rules() -> Vec<PolicyRule> {
    let mut rules = agent::required_rules();
    rules.extend(pheromone::required_rules());
    rules.extend(memory::required_rules());
    rules.extend(umwelt::required_rules());
    rules.extend(crate::cognitive::required_rules());
    rules.extend(crate::proposal::required_rules());
    rules.extend(crate::workflow::required_rules());
    rules.extend(crate::admission::server::required_rules());
    rules
}

/// Merges rules into one rule per (API group, resource) with the union of their verbs, sorted:
/// equal permission sets always render the same.
pub fn normalise(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut verbs: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                verbs
                    .entry((group.clone(), resource.clone()))
                    .or_default()
                    .extend(rule.verbs.iter().cloned());
            }
        }
    }
    verbs
        .into_iter()
        .map(|((group, resource), verbs)| {
            let mut verbs: Vec<String> = verbs.into_iter().collect();
            verbs.sort_by_key(|v| (verb_rank(v), v.clone()));
            PolicyRule {
                api_groups: Some(vec![group]),
                resources: Some(vec![resource]),
                verbs,
                ..PolicyRule::default()
            }
        })
        .collect()
}

/// The operator's ClusterRole rules: every controller's plus the process's, normalised.
pub fn cluster_role_rules() -> Vec<PolicyRule> {
    let mut rules = controller_rules();
    rules.extend(process_rules());
    normalise(&rules)
}

/// The operator's ServiceAccount, ClusterRole and ClusterRoleBinding.
pub fn manifests(namespace: &str) -> (ServiceAccount, ClusterRole, ClusterRoleBinding) {
    let labels = Some(BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            OPERATOR_NAME.to_owned(),
        ),
        ("app.kubernetes.io/part-of".to_owned(), "kgents".to_owned()),
    ]));
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(OPERATOR_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: labels.clone(),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(OPERATOR_NAME.to_owned()),
            labels: labels.clone(),
            ..ObjectMeta::default()
        },
        rules: Some(cluster_role_rules()),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(OPERATOR_NAME.to_owned()),
            labels,
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: OPERATOR_NAME.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: OPERATOR_NAME.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..Subject::default()
        }]),
    };
    (account, role, binding)
}

/// Name of the webhook's Role and RoleBinding in the operator's namespace.
pub const WEBHOOK_ROLE_NAME: &str = "kgents-webhook";

/// The webhook's rules in its own namespace
/// ([`crate::admission::server::namespaced_rules`]), limited to its certificate Secret by name.
pub fn webhook_role_rules(secret_name: &str) -> Vec<PolicyRule> {
    normalise(&crate::admission::server::namespaced_rules())
        .into_iter()
        .map(|mut rule| {
            rule.resource_names = Some(vec![secret_name.to_owned()]);
            rule
        })
        .collect()
}

/// The webhook's Role (its certificate Secret, named as in
/// [`crate::admission::WebhookConfig::in_cluster`]) and the RoleBinding that gives it to the
/// operator's ServiceAccount, both in `namespace`.
pub fn webhook_role_manifests(namespace: &str) -> (Role, RoleBinding) {
    let secret_name = crate::admission::WebhookConfig::in_cluster(namespace).secret_name;
    let metadata = ObjectMeta {
        name: Some(WEBHOOK_ROLE_NAME.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (
                "app.kubernetes.io/name".to_owned(),
                OPERATOR_NAME.to_owned(),
            ),
            ("app.kubernetes.io/part-of".to_owned(), "kgents".to_owned()),
        ])),
        ..ObjectMeta::default()
    };
    let role = Role {
        metadata: metadata.clone(),
        rules: Some(webhook_role_rules(&secret_name)),
    };
    let binding = RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: WEBHOOK_ROLE_NAME.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: OPERATOR_NAME.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..Subject::default()
        }]),
    };
    (role, binding)
}

/// Header of the generated file.
pub const HEADER: &str = "# Generated from the controllers' required_rules() in kgents-operator (src/rbac.rs).\n\
# Do not edit by hand: a test fails when this file differs from what the code generates.\n\
# Regenerate with: KGENTS_WRITE_RBAC=1 cargo test -p kgents-operator --lib rbac\n";

/// `deploy/operator/rbac.yaml`: the ServiceAccount, ClusterRole and ClusterRoleBinding, then the
/// webhook's Role and RoleBinding, as a multi-document YAML file.
pub fn render_manifests(namespace: &str) -> Result<String> {
    let (account, role, binding) = manifests(namespace);
    let (webhook_role, webhook_binding) = webhook_role_manifests(namespace);
    let render = |value: serde_json::Value| {
        serde_saphyr::to_string(&value).map_err(|e| Error::InvalidSpec {
            kind: "ClusterRole",
            name: OPERATOR_NAME.to_owned(),
            message: format!("cannot render the RBAC manifests as YAML: {e}"),
        })
    };
    let mut out = HEADER.to_owned();
    for value in [
        serde_json::to_value(&account)?,
        serde_json::to_value(&role)?,
        serde_json::to_value(&binding)?,
        serde_json::to_value(&webhook_role)?,
        serde_json::to_value(&webhook_binding)?,
    ] {
        out.push_str("---\n");
        out.push_str(&render(value)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/operator/rbac.yaml");

    #[test]
    fn committed_rbac_matches_the_code() {
        let generated = render_manifests(OPERATOR_NAMESPACE).expect("render");
        if std::env::var_os("KGENTS_WRITE_RBAC").is_some() {
            std::fs::write(COMMITTED, &generated).expect("write deploy/operator/rbac.yaml");
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "deploy/operator/rbac.yaml differs from the rules the controllers declare; regenerate it with `KGENTS_WRITE_RBAC=1 cargo test -p kgents-operator --lib rbac` and review the diff"
        );
    }

    #[test]
    fn nothing_broad_is_granted() {
        let rules = cluster_role_rules();
        for rule in &rules {
            let groups = rule.api_groups.clone().unwrap_or_default();
            let resources = rule.resources.clone().unwrap_or_default();
            assert!(!groups.iter().any(|g| g == "*"), "{rule:?}");
            assert!(!resources.iter().any(|r| r == "*"), "{rule:?}");
            assert!(
                !rule
                    .verbs
                    .iter()
                    .any(|v| v == "*" || v == "escalate" || v == "bind" || v == "impersonate"),
                "{rule:?}"
            );
            let read_only = |verbs: &[&str]| rule.verbs.iter().all(|v| verbs.contains(&v.as_str()));
            if resources.iter().any(|r| r == "pods/log") {
                // An Umwelt may afford observing pods and the operator must hold what it grants.
                assert!(read_only(&["get", "list", "watch"]), "{rule:?}");
            }
            if resources.iter().any(|r| r == "pods") {
                // The cognitive runner annotates agent pods (safe mode) and deletes them
                // (restart of an unresponsive agent); creating pods is never needed.
                assert!(
                    read_only(&["get", "list", "watch", "patch", "delete"]),
                    "{rule:?}"
                );
            }
            if resources.iter().any(|r| r == "secrets") {
                // The Umwelt controller checks that a named Secret exists; it never lists them.
                assert!(read_only(&["get"]), "{rule:?}");
            }
            for forbidden in [
                "pods/exec",
                "nodes",
                "clusterroles",
                "clusterrolebindings",
                "customresourcedefinitions",
            ] {
                assert!(
                    !resources.iter().any(|r| r == forbidden),
                    "{forbidden} granted: {rule:?}"
                );
            }
            assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        }
    }

    #[test]
    fn the_webhook_secret_is_granted_in_the_operator_namespace_only_and_by_name() {
        let webhook = crate::admission::WebhookConfig::in_cluster(OPERATOR_NAMESPACE);
        let (role, binding) = webhook_role_manifests(OPERATOR_NAMESPACE);
        assert_eq!(
            role.metadata.namespace.as_deref(),
            Some(webhook.namespace.as_str())
        );
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources, Some(vec!["secrets".to_owned()]));
        assert_eq!(
            rules[0].resource_names,
            Some(vec![webhook.secret_name.clone()])
        );
        assert_eq!(rules[0].verbs, ["get", "create", "patch"]);
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", OPERATOR_NAME, Some(OPERATOR_NAMESPACE))
        );
        assert_eq!(binding.role_ref.name, WEBHOOK_ROLE_NAME);
        // Never cluster-wide: the ClusterRole may at most read Secrets (the Umwelt check).
        for rule in cluster_role_rules() {
            if rule.resources.iter().flatten().any(|r| r == "secrets") {
                assert_eq!(rule.verbs, ["get"], "{rule:?}");
            }
        }
    }

    #[test]
    fn normalising_merges_and_orders() {
        let rules = normalise(&[
            crate::support::rule("apps", &["deployments"], &["patch", "get"]),
            crate::support::rule("apps", &["deployments"], &["list", "get"]),
            crate::support::rule("", &["services"], &["watch"]),
        ]);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].resources, Some(vec!["services".to_owned()]));
        assert_eq!(rules[1].verbs, ["get", "list", "patch"]);
    }

    #[test]
    fn every_controller_and_the_process_are_covered() {
        let rules = cluster_role_rules();
        let has = |group: &str, resource: &str, verb: &str| {
            rules.iter().any(|r| {
                r.api_groups.as_deref() == Some(&[group.to_owned()])
                    && r.resources.as_deref() == Some(&[resource.to_owned()])
                    && r.verbs.iter().any(|v| v == verb)
            })
        };
        assert!(has("kgents.io", "agents", "watch"));
        assert!(has("kgents.io", "agents/status", "patch"));
        assert!(has("apps", "deployments", "patch"));
        assert!(has("kgents.io", "pheromones", "delete"));
        assert!(has("coordination.k8s.io", "leases", "patch"));
        assert!(has("events.k8s.io", "events", "create"));
    }
}
