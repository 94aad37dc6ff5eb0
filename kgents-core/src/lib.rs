//! K8-gents vocabulary: AGENTESE paths, genus, clock, half-life decay and the pheromone field.
//! Pure: no I/O, no Kubernetes, no async runtime.
//!
//! | module | what it holds |
//! |---|---|
//! | [`agentese`] | typed AGENTESE [`Path`](agentese::Path)s, the CLI ↔ path ↔ Kubernetes [`Registry`](agentese::Registry), affordance globs (deny by default) |
//! | [`genus`] | the agent [`Genus`](genus::Genus) letters A–Z, PSI, OMEGA |
//! | [`clock`] | the injected [`Clock`](clock::Clock) with a system and a settable manual clock |
//! | [`timer`] | the injected monotonic [`Timer`](timer::Timer) (now + sleep) that budgets and timeouts use |
//! | [`decay`] | [`Intensity`](decay::Intensity), [`HalfLife`](decay::HalfLife) and the half-life decay functions |
//! | [`field`] | [`PheromoneType`](field::PheromoneType), the [`Signal`](field::Signal) trait and [`PheromoneField`](field::PheromoneField) sensing |
//! | [`access`] | what an Umwelt's affordances allow on the Kubernetes API (the pure half of Umwelt → RBAC) |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//!
//! With the `schemars` feature, the vocabulary enums ([`Genus`](genus::Genus),
//! [`PheromoneType`](field::PheromoneType)) implement `schemars::JsonSchema`, so the custom
//! resources of `kgents-crds` use them directly.
//!
//! Intensity is always computed on read from `(initial, half-life, emitted_at, now)`; nothing in
//! this crate stores a decayed value.
//!
//! ```
//! use kgents_core::agentese::{Affordances, Path, Registry};
//! use kgents_core::field::{Pheromone, PheromoneField, PheromoneType, SenseQuery};
//! use jiff::{SignedDuration, Timestamp};
//!
//! let path: Path = "world.cluster.agents.b-gent.tether".parse()?;
//! let registry = Registry::seed();
//! let found = registry.by_path(&path).expect("in the seed table");
//! assert_eq!(found.entry.command(), "tether");
//! assert_eq!(found.binding("agent").unwrap(), "b-gent");
//! assert!(!Affordances::parse_all(["self.memory.*"])?.allows(&path)); // deny by default
//!
//! let now = Timestamp::from_second(1_700_000_000)?;
//! let signals = [Pheromone::new(PheromoneType::Warning, "a-gent", now - SignedDuration::from_mins(10))];
//! let sensed = PheromoneField::new(&signals).sense(&SenseQuery::all(), now);
//! assert_eq!(sensed[0].intensity.get(), 0.5); // one 10-minute half-life later
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod access;
pub mod agentese;
pub mod clock;
pub mod decay;
pub mod error;
pub mod field;
pub mod genus;
pub mod timer;

pub use error::{Error, Result};
