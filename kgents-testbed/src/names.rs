//! Pure helpers: namespace names, ServiceAccount identities and fake nodes.

use k8s_openapi::api::core::v1::Node;

use crate::error::{Error, Result};

/// Longest prefix kept in a namespace name (names are at most 63 characters).
const MAX_PREFIX: usize = 40;

/// `<sanitised prefix>-<number>`: a valid DNS-1123 label for any prefix.
///
/// The prefix is lower-cased, every character outside `[a-z0-9-]` becomes
/// `-`, it is cut to 40 characters and trimmed of dashes; an empty result
/// becomes `test`.
pub fn namespace_name(prefix: &str, number: u64) -> String {
    let sanitised: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(MAX_PREFIX)
        .collect();
    let trimmed = sanitised.trim_matches('-');
    let base = if trimmed.is_empty() { "test" } else { trimmed };
    format!("{base}-{number}")
}

/// The user name and groups the apiserver gives a ServiceAccount token.
pub fn service_account_identity(namespace: &str, name: &str) -> Result<(String, Vec<String>)> {
    if namespace.is_empty() || name.is_empty() || namespace.contains(':') || name.contains(':') {
        return Err(Error::InvalidArgument(format!(
            "ServiceAccount namespace {namespace:?} and name {name:?} must be non-empty and free of ':'"
        )));
    }
    Ok((
        format!("system:serviceaccount:{namespace}:{name}"),
        vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_string(),
        ],
    ))
}

/// How many pods a fake node accepts (its `pods` capacity, kubelet's default).
pub const PODS_PER_NODE: usize = 110;

/// The manifest of fake node `kwok-node-<index>` (kwok's documented shape,
/// without the NoSchedule taint: the testbed has no real nodes to protect).
pub(crate) fn fake_node(index: usize) -> serde_json::Value {
    let name = format!("kwok-node-{index}");
    let resources =
        serde_json::json!({"cpu": "32", "memory": "256Gi", "pods": PODS_PER_NODE.to_string()});
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "kwok.x-k8s.io/node": "fake",
            },
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    })
}

/// True when the node's `Ready` condition is `True`.
pub(crate) fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn namespace_names_are_dns_labels(prefix in ".{0,80}", number in any::<u64>()) {
            let name = namespace_name(&prefix, number);
            prop_assert!(is_dns_label(&name), "{name:?}");
            let suffix = format!("-{number}");
            prop_assert!(name.ends_with(&suffix));
        }

        #[test]
        fn distinct_numbers_give_distinct_names(prefix in "[a-z]{1,10}", a in any::<u64>(), b in any::<u64>()) {
            prop_assume!(a != b);
            prop_assert_ne!(namespace_name(&prefix, a), namespace_name(&prefix, b));
        }
    }

    #[test]
    fn namespace_name_keeps_readable_prefixes() {
        assert_eq!(namespace_name("rbac", 3), "rbac-3");
        assert_eq!(namespace_name("My_Test", 0), "my-test-0");
        assert_eq!(namespace_name("--", 1), "test-1");
    }

    #[test]
    fn service_account_identity_matches_token_identity() {
        let (user, groups) = service_account_identity("ns1", "agent").expect("valid");
        assert_eq!(user, "system:serviceaccount:ns1:agent");
        assert_eq!(
            groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
        assert!(service_account_identity("", "agent").is_err());
        assert!(service_account_identity("ns", "a:b").is_err());
    }

    #[test]
    fn fake_nodes_deserialise_and_start_not_ready() {
        let node: Node = serde_json::from_value(fake_node(1)).expect("valid node");
        assert_eq!(node.metadata.name.as_deref(), Some("kwok-node-1"));
        assert!(!node_is_ready(&node));
    }
}
