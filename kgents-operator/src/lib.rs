//! K8-gents' Kubernetes adapters: the controllers that turn `kgents.io` resources into running,
//! scoped, observable workloads.
//!
//! # Public API
//!
//! What an embedder needs to run the operator or parts of it:
//!
//! | item | what it is |
//! |---|---|
//! | [`run`] | the operator process: CRD check, HTTP, leader election, every controller, shutdown |
//! | [`OperatorConfig`], [`ProbeConfig`], [`Context`] | settings, and what every controller shares (client, Event recorder, metrics, clock) |
//! | [`agent`], [`memory`], [`umwelt`], [`pheromone`], [`cognitive`], [`proposal`], [`workflow`] | the controllers: each a `run` function, its name in metrics, the RBAC rules it needs, the labels and annotations it writes |
//! | [`admission`] | the T-gent admission webhook over [`kgents_policy`]: HTTPS server and certificates |
//! | [`proposal::Reviewer`] | the trait a Proposal reviewer implements (an LLM-backed one is provided) |
//! | [`metrics`], [`http`] | the Prometheus registry, and `/metrics`, `/healthz`, `/readyz` |
//! | [`leader`] | Lease-based leader election; only the holder reconciles |
//! | [`rbac`] | the operator's ClusterRole, computed from the controllers' rules |
//! | [`witness`] | the witness recorder: each agent's history appended to a [`kgents_seance::WitnessStore`], buffered and bounded; [`witness::WitnessSetting`] |
//! | [`install`] | the operator in a cluster: the install plan, server-side apply with a dry run, status of each component, teardown; the embedded operator's webhook settings and samples |
//! | [`Error`] | the crate's error, with stable metric labels |
//!
//! # Inside
//!
//! | module | what it holds |
//! |---|---|
//! | `shared` | one watch and cache per kind for the whole process (Agents, Memories, managed ServiceAccounts, ConfigMaps, Roles, RoleBindings), read by every controller that needs the kind |
//! | `support` | the controller skeleton every controller uses: labels, desired hash, apply-if-changed, status, the reconcile wrapper, transition Events, error policy |
//! | `conditions` | conditions computed from observations; transition times move only on change |
//! | `workload` | the shape of an agent's workload shared by the Agent controller and the cognitive runner: labels, readiness gate, podinfo volume |
//! | `context`, `error` | re-exported at the crate root |
//!
//! Decisions (what children an Agent needs, when a pheromone evaporates, which RBAC rules an
//! Umwelt's affordances need) come from pure functions; this crate only observes, applies with
//! server-side apply, and reports.
#![forbid(unsafe_code)]

pub mod admission;
pub mod agent;
pub mod cognitive;
pub(crate) mod conditions;
mod context;
mod error;
pub mod http;
pub mod install;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod pheromone;
pub mod proposal;
pub mod rbac;
pub mod run;
pub(crate) mod shared;
pub(crate) mod support;
pub mod umwelt;
pub mod witness;
pub mod workflow;
pub(crate) mod workload;

#[cfg(test)]
mod tests;

pub use context::{Context, DEFAULT_SYMBIONT_IMAGE, FIELD_MANAGER, OperatorConfig, ProbeConfig};
pub use error::{Error, Result};
pub use workload::ApiServerEndpoint;
