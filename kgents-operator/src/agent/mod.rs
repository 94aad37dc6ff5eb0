//! The Agent controller: an Agent becomes a Deployment, a Service, a ServiceAccount (unless its
//! Umwelt supplies one), a NetworkPolicy when its reach is restricted and a Memory when its
//! symbiont asks for one — all named after the Agent and applied with server-side apply.
//!
//! | module | what it holds |
//! |---|---|
//! | [`plan`] | pure: spec → desired children, or why the spec cannot be realised |
//! | [`observed`] | pure: the view of a Deployment the controller watches and reads |
//! | [`sidecar`] | pure: the symbiont native sidecar and its store volume, when the spec asks for it |
//! | [`status`] | pure: observed Deployment → phase, conditions, replica counts |
//! | `controller` | reconcile, error policy, watches and [`run`] |

pub(crate) mod controller;
pub mod observed;
pub mod plan;
pub mod sidecar;
pub mod status;

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::support::rule;

pub use controller::{CONTROLLER, run};

/// The Kubernetes permissions the Agent controller uses, and nothing more.
///
/// Children are watched (list, watch), applied with server-side apply (create for a new
/// object, patch) and deleted when no longer wanted (a NetworkPolicy of an Agent that is no
/// longer restricted, the children of an Agent switched to DRY_RUN). A Memory is never deleted
/// by this controller. An Umwelt's ServiceAccount is read (get) to report when it is missing.
/// The EndpointSlices of `default/kubernetes` are watched to know where the API server is.
pub fn required_rules() -> Vec<PolicyRule> {
    let watch_apply_delete = ["list", "watch", "create", "patch", "delete"];
    vec![
        rule("kgents.io", &["agents"], &["get", "list", "watch"]),
        rule("kgents.io", &["agents/status"], &["patch"]),
        rule(
            "kgents.io",
            &["memories"],
            &["list", "watch", "create", "patch"],
        ),
        rule("apps", &["deployments"], &watch_apply_delete),
        rule("", &["services"], &watch_apply_delete),
        rule(
            "",
            &["serviceaccounts"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule(
            "networking.k8s.io",
            &["networkpolicies"],
            &watch_apply_delete,
        ),
        // Where the API server is (restricted agents' NetworkPolicies allow egress there).
        rule("discovery.k8s.io", &["endpointslices"], &["list", "watch"]),
    ]
}
