//! K8-gents ghost protocol: layered fallback, freshness, stability and the snapshot store.
//!
//! A CLI read asks the Cortex daemon, then the ghost cache, then the Kubernetes API, each within
//! its own budget, so the CLI is never blind when the cluster or the daemon is away.
//!
//! | module | what it holds |
//! |---|---|
//! | [`chain`] | the [`Layer`] trait, [`FallbackChain`], [`CacheLayer`], the injected [`Timer`], [`Answer`] and [`Attempt`] |
//! | [`snapshot`] | [`Query`], [`SnapshotKey`] (the seed's cache layout), [`Snapshot`] kinds and their payloads, the JSON [`Envelope`](snapshot::Envelope) |
//! | [`freshness`] | FRESH / STALE / REFUSED by the adaptive threshold base × (1 + stability), age labels |
//! | [`stability`] | the stability score: an EWMA (α = 0.2, start 0) of live-fetch successes |
//! | [`store`] | the [`GhostStore`] trait, [`InMemoryGhostStore`], [`FsGhostStore`] (atomic, locked writes; reads that turn every bad file into a reasoned miss) |
//! | [`name`] | validated [`AgentName`] and [`PheromoneType`], the only names that reach paths |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//!
//! Time comes from an injected [`kgents_core::clock::Clock`]; budgets from an injected
//! [`Timer`]. The crate needs no async runtime.
#![forbid(unsafe_code)]

pub mod chain;
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
pub use name::{AgentName, PheromoneType};
pub use snapshot::{Payload, Query, Snapshot, SnapshotKey, SnapshotKind, StabilityScore};
pub use store::{FsGhostStore, GhostStore, InMemoryGhostStore, Lookup, Miss, MissReason};
