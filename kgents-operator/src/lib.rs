//! K8-gents' Kubernetes adapters: the controllers that turn `kgents.io` resources into running,
//! scoped, observable workloads.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`admission`] | the T-gent admission webhook over [`kgents_policy`]: HTTPS server, policy and ledger watches, certificates |
//! | [`agent`] | the Agent controller: plan, status, reconcile |
//! | [`cognitive`] | cognitive probes of live agents: schedule, budget, verdicts, readiness gate, safe mode |
//! | [`context`] | the shared [`Context`]: client, Event recorder, metrics, clock, settings |
//! | [`conditions`] | conditions computed from observations; transition times move only on change |
//! | [`metrics`] | Prometheus metrics: reconciles, errors, durations, objects per phase |
//! | [`http`] | `/metrics`, `/healthz`, `/readyz` |
//! | [`leader`] | Lease-based leader election; only the holder reconciles |
//! | [`memory`] | the Memory controller: plan (claim, metadata ConfigMap, grants), status, retention, compost sweep |
//! | [`pheromone`] | the Pheromone controller: status once, requeue exactly at fading and evaporation |
//! | [`proposal`] | the Proposal controller over [`kgents_policy`]: phase machine, review, approval, execution |
//! | [`shared`] | one watch and cache per kind for the whole process (Agents, Memories, managed ServiceAccounts, ConfigMaps, Roles, RoleBindings), read by every controller that needs the kind |
//! | [`run`] | the operator process: CRD check, HTTP, leader election, every controller, shutdown |
//! | [`rbac`] | the operator's ClusterRole, computed from the controllers' rules |
//! | [`support`] | the controller skeleton every controller uses: labels, desired hash, apply-if-changed, status, the reconcile wrapper, transition Events, error policy |
//! | [`umwelt`] | the Umwelt controller: affordances compiled to a ServiceAccount, Role, RoleBinding, ConfigMap |
//! | [`workload`] | the shape of an agent's workload shared by the Agent controller and the cognitive runner: labels, readiness gate, podinfo volume |
//! | [`error`] | the crate's [`Error`] with stable metric labels |
//!
//! Decisions (what children an Agent needs, when a pheromone evaporates, which RBAC rules an
//! Umwelt's affordances need) come from pure functions; this crate only observes, applies with
//! server-side apply, and reports.
#![forbid(unsafe_code)]

pub mod admission;
pub mod agent;
pub mod cognitive;
pub mod conditions;
pub mod context;
pub mod error;
pub mod http;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod pheromone;
pub mod proposal;
pub mod rbac;
pub mod run;
pub mod shared;
pub mod support;
pub mod umwelt;
pub mod workload;

#[cfg(test)]
mod tests;

pub use context::{Context, FIELD_MANAGER, OperatorConfig, ProbeConfig};
pub use error::{Error, Result};
