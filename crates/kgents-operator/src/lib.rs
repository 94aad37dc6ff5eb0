//! K8-gents' Kubernetes adapters: the controllers that turn `kgents.io` resources into running,
//! scoped, observable workloads.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`admission`] | the T-gent admission webhook: pure decision, CEL policy, HTTPS server, certificates |
//! | [`agent`] | the Agent controller: plan, status, reconcile |
//! | [`context`] | the shared [`Context`]: client, Event recorder, metrics, clock, settings |
//! | [`conditions`] | conditions computed from observations; transition times move only on change |
//! | [`metrics`] | Prometheus metrics: reconciles, errors, durations, objects per phase |
//! | [`http`] | `/metrics`, `/healthz`, `/readyz` |
//! | [`leader`] | Lease-based leader election; only the holder reconciles |
//! | [`proposal`] | the Proposal controller: phase machine, review, approval, execution |
//! | [`error`] | the crate's [`Error`] with stable metric labels |
//!
//! Decisions (what children an Agent needs, when a pheromone evaporates, which RBAC rules an
//! Umwelt's affordances need) come from pure functions; this crate only observes, applies with
//! server-side apply, and reports.
#![forbid(unsafe_code)]

pub mod admission;
pub mod agent;
pub mod conditions;
pub mod context;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod proposal;

#[cfg(test)]
mod fixtures;

pub use context::{Context, FIELD_MANAGER, OperatorConfig};
pub use error::{Error, Result};
