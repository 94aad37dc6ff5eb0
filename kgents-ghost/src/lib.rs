//! K8-gents ghost protocol: layered fallback, freshness, stability and the snapshot store.
//!
//! A CLI read asks the Cortex daemon, then the ghost cache, then the Kubernetes API, each within
//! its own budget, so the CLI is never blind when the cluster or the daemon is away.
//!
//! | module | what it holds |
//! |---|---|
//! | [`chain`] | the [`Layer`] trait, [`FallbackChain`], [`CacheLayer`], the injected [`Timer`], [`Answer`] and [`Attempt`] |
//! | [`snapshot`] | [`Query`], [`SnapshotKey`] (the seed's cache layout), [`Snapshot`] kinds and their payloads, the JSON [`Envelope`](snapshot::Envelope) |
//! | [`digest`] | the status digest: agents counted, pheromones grouped by type and half-life (decaying from the digest), waiting proposals, per namespace |
//! | [`freshness`] | FRESH / STALE / REFUSED by the adaptive threshold base × (1 + stability), age labels |
//! | [`stability`] | the stability score: an EWMA (α = 0.2, start 0) of live-fetch successes |
//! | [`store`] | the [`GhostStore`] trait, [`InMemoryGhostStore`], `FsGhostStore` (feature `fs`, on by default: atomic, locked writes; reads that turn every bad file into a reasoned miss) |
//! | [`name`] | the validated [`AgentName`], which (with a pheromone type) is the only name that reaches a path |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//!
//! Time comes from an injected [`kgents_core::clock::Clock`]; budgets from an injected
//! [`Timer`] (`kgents_core::timer::Timer`, re-exported). The crate needs no async runtime.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use kgents_core::clock::SystemClock;
//! use kgents_ghost::snapshot::ClusterStatus;
//! use kgents_ghost::{
//!     FallbackChain, GhostStore, InMemoryGhostStore, Layer, LayerError, Payload, Query,
//!     Snapshot, ThreadTimer,
//! };
//!
//! /// A daemon that is not running.
//! struct NoDaemon;
//! #[async_trait]
//! impl Layer for NoDaemon {
//!     fn name(&self) -> &str { "cortex" }
//!     fn is_live(&self) -> bool { true }
//!     async fn fetch(&self, _: &Query) -> Result<Snapshot, LayerError> {
//!         Err(LayerError::Unavailable("connection refused".into()))
//!     }
//! }
//!
//! /// An API server that answers.
//! struct Api;
//! #[async_trait]
//! impl Layer for Api {
//!     fn name(&self) -> &str { "kubernetes" }
//!     fn is_live(&self) -> bool { true }
//!     async fn fetch(&self, _: &Query) -> Result<Snapshot, LayerError> {
//!         let status = ClusterStatus { nodes_ready: 1, nodes_total: 1, ..Default::default() };
//!         Ok(Snapshot::new(jiff::Timestamp::now(), Payload::ClusterStatus(status)))
//!     }
//! }
//!
//! let store = Arc::new(InMemoryGhostStore::new());
//! let chain = FallbackChain::standard(
//!     NoDaemon, Api, store.clone(), Arc::new(SystemClock), Arc::new(ThreadTimer),
//! );
//! let answer = futures::executor::block_on(chain.fetch(&Query::ClusterStatus))?;
//! assert_eq!(answer.layer, "kubernetes");
//! // The live answer was written through, so the next read survives an API outage.
//! assert!(store.read(&Query::ClusterStatus.into()).hit().is_some());
//! # Ok::<(), kgents_ghost::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod chain;
pub mod digest;
pub mod error;
pub mod freshness;
pub mod name;
pub mod snapshot;
pub mod stability;
pub mod store;

pub use chain::{
    Answer, Attempt, AttemptOutcome, CacheLayer, FallbackChain, Layer, LayerError, Provenance,
    ThreadTimer, Timer,
};
pub use error::{Error, REMEDY, Result};
pub use freshness::{FreshnessPolicy, FreshnessReport, Verdict};
pub use name::AgentName;
pub use snapshot::{Payload, Query, Snapshot, SnapshotKey, SnapshotKind, StabilityScore};
#[cfg(feature = "fs")]
pub use store::FsGhostStore;
pub use store::{GhostStore, InMemoryGhostStore, Lookup, Miss, MissReason};
