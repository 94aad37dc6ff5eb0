//! K8-gents vocabulary: AGENTESE paths, genus, clock, half-life decay and the pheromone field.
//! Pure: no I/O, no Kubernetes, no async runtime.
//!
//! | module | what it holds |
//! |---|---|
//! | [`agentese`] | typed AGENTESE [`Path`](agentese::Path)s, the CLI ↔ path ↔ Kubernetes [`Registry`](agentese::Registry), affordance globs (deny by default) |
//! | [`genus`] | the agent [`Genus`](genus::Genus) letters A–Z, PSI, OMEGA |
//! | [`clock`] | the injected [`Clock`](clock::Clock) with a system and a settable manual clock |
//! | [`decay`] | [`Intensity`](decay::Intensity), [`HalfLife`](decay::HalfLife) and the half-life decay functions |
//! | [`field`] | [`PheromoneType`](field::PheromoneType), the [`Signal`](field::Signal) trait and [`PheromoneField`](field::PheromoneField) sensing |
//! | [`access`] | what an Umwelt's affordances allow on the Kubernetes API (the pure half of Umwelt → RBAC) |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//!
//! Intensity is always computed on read from `(initial, half-life, emitted_at, now)`; nothing in
//! this crate stores a decayed value.
#![forbid(unsafe_code)]

pub mod access;
pub mod agentese;
pub mod clock;
pub mod decay;
pub mod error;
pub mod field;
pub mod genus;

pub use error::{Error, Result};
