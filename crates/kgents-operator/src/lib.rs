//! K8-gents' Kubernetes adapters: the controllers that turn `kgents.io` resources into running,
//! scoped, observable workloads.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`agent`] | the Agent controller: plan, status, reconcile |
//! | [`context`] | the shared [`Context`]: client, Event recorder, metrics, clock, settings |
//! | [`conditions`] | conditions computed from observations; transition times move only on change |
//! | [`metrics`] | Prometheus metrics: reconciles, errors, durations, objects per phase |
//! | [`http`] | `/metrics`, `/healthz`, `/readyz` |
//! | [`leader`] | Lease-based leader election; only the holder reconciles |
//! | [`error`] | the crate's [`Error`] with stable metric labels |
//!
//! Decisions (what children an Agent needs, when a pheromone evaporates, which RBAC rules an
//! Umwelt's affordances need) come from pure functions; this crate only observes, applies with
//! server-side apply, and reports.
#![forbid(unsafe_code)]

pub mod agent;
pub mod conditions;
pub mod context;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;

#[cfg(test)]
mod fixtures;

pub use context::{Context, FIELD_MANAGER, OperatorConfig};
pub use error::{Error, Result};
