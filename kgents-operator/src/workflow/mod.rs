//! The Workflow controller: a durable DAG of AGENTESE and Proposal steps whose status is the
//! journal.
//!
//! The guarantees (after Argo Workflows and Temporal):
//! - **Write before acting.** A step's intent — Running, its attempt and idempotency key — is
//!   written to status (with the resourceVersion it was planned from) before its effect.
//! - **Idempotent effects.** The key is the workflow's uid, the step and the attempt; the
//!   effect's object is named from it (a Proposal; the Pheromone of a `void.pheromone.emit`
//!   step), owned by the Workflow and labelled with it. Re-issuing after a restart finds the
//!   object (AlreadyExists) instead of creating a second one.
//! - **Retry timing in status.** A failed attempt with retries left goes back to Pending with
//!   `nextRetryAt`; the controller requeues for it (never sleeps), so it survives restarts.
//! - **Bounded status.** Messages are cut to 512 characters; results are kept as digests.
//!
//! | module | what it holds |
//! |---|---|
//! | `plan` | pure: spec + journal + now → next journal and actions; outcomes folded in |
//! | `controller` | reconcile (plan, write, act, record), the effects, watches and [`run`] |

pub(crate) mod controller;
pub mod plan;

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::support;

pub use controller::{JournalHook, WorkflowOptions, object_name, run, run_with};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "workflow";
/// Label naming the Workflow a step's object (Proposal) belongs to.
pub const WORKFLOW_LABEL: &str = "kgents.io/workflow";
/// Annotation holding the idempotency key of the attempt that created an object.
pub const KEY_ANNOTATION: &str = "kgents.io/idempotency-key";

/// The Kubernetes permissions the Workflow controller uses, and nothing more.
///
/// It watches Workflows and replaces their status (the journal); creates and reads the
/// Proposals of proposal steps (watched by the Proposal controller already); reads Umwelts (the
/// affordances path steps run with); and, for path steps, whatever the paths do through the
/// Logos — the operator's rules for Pheromones and Proposals cover the writes the registry
/// has, its read rules the reads. Publishes Events.
pub fn required_rules() -> Vec<PolicyRule> {
    vec![
        support::rule("kgents.io", &["workflows"], &["get", "list", "watch"]),
        support::rule("kgents.io", &["workflows/status"], &["update"]),
        support::rule(
            "kgents.io",
            &["proposals"],
            &["get", "list", "watch", "create"],
        ),
        support::rule(
            "kgents.io",
            &["pheromones"],
            &["get", "list", "watch", "create"],
        ),
        support::rule("kgents.io", &["umwelts"], &["get", "list", "watch"]),
        support::rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}
