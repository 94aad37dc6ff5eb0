//! # kgents-symbiont: the sidecar in every agent pod
//!
//! The agent's membrane to the body: a small HTTP server on localhost that gives an agent
//! runtime, in any language, its memory (D-gent), its persona and context (K-gent), its
//! pheromones and AGENTESE, without a Kubernetes client of its own.
//!
//! | endpoint | what it does |
//! |---|---|
//! | `GET/PUT/DELETE /memory/{key}` | the Memory's durable key-value store ([`store`]) |
//! | `GET /memory?prefix=&after=&limit=` | keys in order, with value sizes |
//! | `POST/GET /journal` | the append-only journal ([`journal`]) |
//! | `GET /umwelt` | persona, constraints and context from the Umwelt ConfigMap, reloaded live ([`umwelt`]) |
//! | `GET /safe-mode` | the pod's safe-mode annotation from the downward-API file ([`podinfo`]) |
//! | `POST /pheromones`, `GET /pheromones?type=&source=&limit=` | emit (as the pod's ServiceAccount) and sense from the watch cache ([`sensing`]), through the Logos |
//! | `POST /invoke {path, args}` | any AGENTESE path, the agent's Umwelt as the caller |
//!
//! | module | what it holds |
//! |---|---|
//! | [`limits`] | key rules, value size limit, the Memory's size accounting (pure) |
//! | [`journal`] | the journal record format (pure) |
//! | [`store`] | [`MemoryStore`] and [`RedbStore`]: fsync on commit, corrupt files refused and kept |
//! | [`podinfo`] | the downward-API annotations file and safe mode (pure parsing) |
//! | [`umwelt`] | the Umwelt's runtime view: from a file or a watched ConfigMap |
//! | [`sensing`] | [`sensing::PheromoneWatch`]: the namespace's pheromones kept by one watch, sensed in place, stale with its age when the API server is away |
//! | [`server`] | the axum router, its state and the JSON error answers |
//! | [`report`] | the Memory's `sizeUsed` and `lastAccess`, written to its status by the symbiont |
//! | [`run`] | [`run::Config`] and [`run::start`]: the store, the cluster link and the listener assembled |
//! | [`error`] | [`Error`] (with its HTTP status) and [`Result`] |
#![forbid(unsafe_code)]

pub mod error;
pub mod journal;
pub mod limits;
pub mod podinfo;
pub mod report;
pub mod run;
pub mod sensing;
pub mod server;
pub mod store;
pub mod umwelt;

pub use error::{Error, Result};
pub use store::{MemoryStore, RedbStore, StoreLimits};
