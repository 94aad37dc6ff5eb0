//! # K8-gents
//!
//! Kubernetes as the body of a society of LLM agents. This facade crate re-exports the
//! workspace's library crates so that a service can depend on one crate:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`core`](kgents_core) | `kgents-core` | AGENTESE paths, genus, clock, half-life decay, pheromone field |
//! | [`risk`](kgents_risk) | `kgents-risk` | proposal risk calculus and decisions |
//! | [`ghost`](kgents_ghost) | `kgents-ghost` | the ghost protocol: layered fallback, freshness, snapshot store |
//! | [`probes`](kgents_probes) | `kgents-probes` | cognitive probe semantics and health tracking |
//! | [`crds`](kgents_crds) | `kgents-crds` | the `kgents.io/v1` custom resources |
//! | [`policy`](kgents_policy) | `kgents-policy` | the T-gent admission policy and decision (over the custom resources) |
//!
//! The pure crates (`core`, `risk`, `ghost`, `probes`) do no network I/O; the adapter crates bind
//! them to Kubernetes. Examples under `examples/` assemble them into binaries.
#![forbid(unsafe_code)]

pub use kgents_core;
pub use kgents_crds;
pub use kgents_ghost;
pub use kgents_operator;
pub use kgents_policy;
pub use kgents_probes;
pub use kgents_risk;
