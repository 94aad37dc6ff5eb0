//! # kgents-seance: an agent's witness record and its replay
//!
//! The operator appends each agent's history as it happens (spec changes with their diffs,
//! phase, condition and verdict transitions, proposals filed, decided and executed, pheromones
//! emitted, Events); `kgents seance` and `time.witness.<agent>.replay` rebuild the agent at any
//! recorded time from the record alone: nothing is re-run and no model is called.
//!
//! | module | what it holds |
//! |---|---|
//! | [`record`] | [`WitnessRecord`], [`NewRecord`], [`RecordKind`], [`AgentRef`] |
//! | [`state`] | [`AgentState`], the fold [`reconstruct`] and [`steps`] (each record with its diff) |
//! | [`observe`] | pure diffs of a new object version against the recorded state → records |
//! | [`retention`] | [`Retention`] per agent (count, age) as a pure [`Plan`] |
//! | `batch` | how a writer gathers records into one append: up to 5 ms or 1,000 records (feature `batching`) |
//! | [`store`] | the [`WitnessStore`] trait, [`apply_retention`], the embedded redb store (feature `embedded`, default) and the PostgreSQL store (feature `postgres`) |
//! | [`error`] | [`Error`] and [`Result`] |
//!
//! Pure except [`store`]: the record, the fold, the diffs and the retention plan do no I/O.
#![forbid(unsafe_code)]

#[cfg(feature = "batching")]
pub mod batch;
pub mod error;
pub mod observe;
pub mod record;
pub mod retention;
pub mod state;
pub mod store;

pub use error::{Error, Result};
pub use record::{AgentRef, NewRecord, RecordKind, WitnessRecord};
pub use retention::{Plan, Retention};
pub use state::{AgentState, Step, reconstruct, steps};
#[cfg(feature = "postgres")]
pub use store::PgWitnessStore;
#[cfg(feature = "embedded")]
pub use store::RedbWitnessStore;
pub use store::{Recorded, RetentionReport, TimeRange, WitnessStore, apply_retention};
