//! AGENTESE: typed paths, the CLI ↔ path ↔ Kubernetes registry, and affordance globs.
//!
//! - [`path`]: [`Path`], [`Context`], [`Aspect`], [`Segment`], [`PathError`] — the grammar and
//!   how an aspect is told apart from a segment.
//! - [`registry`]: [`Registry`], [`RegistryEntry`], [`PathTemplate`] — the seed's command table.
//! - [`affordance`]: [`AffordanceGlob`], [`Affordances`] — grants, denied when nothing matches.

pub mod affordance;
pub mod path;
pub mod registry;

pub use affordance::{AffordanceGlob, Affordances};
pub use path::{Aspect, Context, MAX_PATH_LEN, MAX_SEGMENTS, Path, PathError, Segment};
pub use registry::{
    Binding, K8sOperation, PathTemplate, Registry, RegistryEntry, RegistryMatch, TemplateSegment,
};
