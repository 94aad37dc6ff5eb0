//! The `kgents.io/v1` custom resources of K8-gents: the whole public API that users write with
//! kubectl, agents create and the operator reconciles.
//!
//! | module | what it holds |
//! |---|---|
//! | [`agent`] | `Agent` (`ag`): a genus of agent run as a Deployment; scale subresource |
//! | [`pheromone`] | `Pheromone` (`ph`): an immutable, decaying signal |
//! | [`memory`] | `Memory` (`mem`): an agent's storage and its retention policy |
//! | [`umwelt`] | `Umwelt` (`uw`): what an agent perceives and may do (compiled to RBAC) |
//! | [`proposal`] | `Proposal` (`prop`): an immutable request to change the cluster, gated by risk |
//! | [`workflow`] | `Workflow` (`wf`): a durable DAG of AGENTESE and Proposal steps, its status the journal; [`validate_spec`] for what CEL cannot check (cycles, unregistered paths) |
//! | [`convert`] | into `kgents-core` / `kgents-risk`: a Pheromone is a `Signal`, a Proposal a risk input |
//! | [`common`] | genus and pheromone types (`kgents-core`'s), secret references, `metav1.Condition` |
//! | [`manifest`] | [`crds()`] and the YAML committed under `deploy/crds/` |
//! | [`error`] | [`Error`] and [`Result`] |
//!
//! Every kind is namespaced, has a status subresource, a short name, the category `kgents`,
//! printer columns, field documentation (for `kubectl explain`), defaults and CEL
//! `x-kubernetes-validations` rules with messages. With the `kube/cel` feature (always on here)
//! each root type has `validate_cel()` / `validate_cel_update(&old)` that evaluate the same rules
//! client-side.
//!
//! The vocabulary enums are the pure crates' own, used directly with the JSON schemas of their
//! `schemars` feature: [`Genus`] and [`PheromoneType`] (`kgents-core`), `ChangeType`,
//! `RiskLevel`, `RiskDecision` and `ProposerKind` (`kgents-risk`), `CognitiveHealth`,
//! `ProbeKind` and `ProbeOutcome` (`kgents-probes`). Nothing converts between twins.
//!
//! This crate enables no `k8s-openapi` version feature; the final binary chooses one.
#![forbid(unsafe_code)]

pub mod agent;
pub mod common;
pub mod convert;
pub mod error;
pub mod manifest;
pub mod memory;
pub mod pheromone;
pub mod proposal;
pub mod umwelt;
pub mod workflow;

pub use agent::{Agent, AgentSpec, AgentStatus};
pub use common::{Condition, Genus, PheromoneType, Time};
pub use convert::PheromoneSignal;
pub use error::{Error, Result};
pub use manifest::{crds, manifests};
pub use memory::{Memory, MemorySpec, MemoryStatus};
pub use pheromone::{Pheromone, PheromoneSpec, PheromoneStatus};
pub use proposal::{Proposal, ProposalSpec, ProposalStatus};
pub use umwelt::{Umwelt, UmweltSpec, UmweltStatus, validate_affordances};
pub use workflow::{Workflow, WorkflowSpec, WorkflowStatus, validate_spec};
