//! What the daemon needs from the API server, as RBAC rules: [`required_rules`] is read from
//! what the code does (the watches in [`crate::watch`], the reads of the Logos' `LiveView`
//! behind the caches), and `deploy/cortex/rbac.yaml` must grant exactly these (a test compares
//! them). The in-cluster daemon is **read-only**: paths that write (emit, propose, approve,
//! workflow) answer the API server's refusal, explained; run a daemon with a writer's
//! credentials (a person's kubeconfig) to serve them.

use k8s_openapi::api::rbac::v1::PolicyRule;

/// The daemon's name: its ServiceAccount, ClusterRole, Deployment and Service.
pub const CORTEX_NAME: &str = "kgents-cortex";
/// The namespace the in-cluster daemon runs in (the operator's).
pub const CORTEX_NAMESPACE: &str = "kgents-system";
/// The gRPC port of the in-cluster Service and container.
pub const GRPC_PORT: u16 = 50051;
/// The metrics port of the in-cluster container.
pub const METRICS_PORT: u16 = 9464;

fn rule(group: &str, resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(owned(resources)),
        verbs: owned(verbs),
        resource_names: (!names.is_empty()).then(|| owned(names)),
        ..PolicyRule::default()
    }
}

/// The rules the daemon needs (see the [module docs](self)).
pub fn required_rules() -> Vec<PolicyRule> {
    let (_, operator) = kgents_logos::live::OPERATOR_DEPLOYMENT;
    vec![
        // One watch per kind, cluster-wide; one object read for `<agent>.manifest`.
        rule(
            "kgents.io",
            &["agents", "pheromones", "proposals"],
            &["get", "list", "watch"],
            &[],
        ),
        // Listed by their manifest paths; an Umwelt read for a restricted caller.
        rule("kgents.io", &["memories", "umwelts"], &["get", "list"], &[]),
        // Events of kgents objects, as the Observe thought stream.
        rule("events.k8s.io", &["events"], &["list", "watch"], &[]),
        // The cluster's health: its nodes, the operator, the webhook.
        rule("", &["nodes"], &["list"], &[]),
        rule("apps", &["deployments"], &["get"], &[operator]),
        rule(
            "admissionregistration.k8s.io",
            &["validatingwebhookconfigurations"],
            &["get"],
            &[kgents_logos::live::WEBHOOK_CONFIGURATION],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_only_read() {
        for rule in required_rules() {
            for verb in &rule.verbs {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "{verb} in {rule:?}"
                );
            }
        }
    }
}
