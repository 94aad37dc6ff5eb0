//! # kgents-logos: the one AGENTESE resolver
//!
//! Every front-end (the `kgents` CLI, and later the Terrarium TUI, the MCP server, the Cortex
//! daemon and the symbiont sidecar) resolves an AGENTESE path through [`Logos::invoke`] instead
//! of talking to Kubernetes its own way (DESIGN §5):
//!
//! ```text
//! Logos::invoke(caller, path, args)
//!   1. parse the path                 → bad input (exit 2) naming the position
//!   2. the caller's affordances       → denied, explained (which globs exist, none matched)
//!   3. the registry (kgents-core)     → unknown path, naming the closest registered ones
//!   4. the handler                    → reads through a ClusterView, writes through a ClusterActor
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`logos`] | [`Logos`], [`Args`], the routing of each registry entry to its handler, the handlers, [`StatusReport`] |
//! | [`caller`] | [`Caller`]: an identity and its grant (unrestricted, or an Umwelt's affordances); the explained denial |
//! | [`outcome`] | [`Outcome`]: the typed, serde-serialisable results (the ghost snapshot types where they overlap) |
//! | [`view`] | the [`ClusterView`] (reads) and [`ClusterActor`] (writes) traits, [`Observed`] data with its [`Source`], [`Filter`], [`Scope`] |
//! | [`memory`] | [`MemoryCluster`]: an in-memory cluster implementing both traits (tests, demos, embedders' tests) |
//! | [`ghost`] | [`GhostView`]: reads through the kgents-ghost [`FallbackChain`](kgents_ghost::FallbackChain) (cache → API), and [`LiveLayer`], the API as a ghost layer |
//! | [`live`] | [`LiveView`] and [`KubeActor`]: the Kubernetes API through kube, every call with a deadline; Umwelt and agent callers |
//! | [`concept`] | the model paths `concept.define`, `concept.blend.forge`, `concept.refine`: prompts, output schemas, [`ConceptModel`], token budgets enforced |
//! | [`budget`] | [`budget::Ledger`]: each caller's daily model-token spending, reserved and settled (pure) |
//! | [`schema`] | the small JSON Schema checker the model answers pass through (pure) |
//! | [`approval`] | approve, reject and `whoami` under the authenticated identity (the operator re-exports them) |
//! | [`summary`] | pure conversions: resources → summaries, decayed pheromones, kind-name rules |
//! | `watched` | (feature `watch`) one kind's watch-fed cache: summaries by namespace and name, re-lists buffered until complete |
//! | [`table`] | pheromones from a server-side Table (the CRD's wide columns), so lists skip the objects |
//! | [`suggest`] | edit distance and the closest registered paths |
//! | [`wire`] | the API server's JSON answers without `managedFields` (cut from the bytes before decoding): a tower layer for kube's client and [`wire::client`] |
//! | [`error`] | [`Error`], [`ErrorKind`] (what a front-end maps to an exit code) and [`Result`] |
//!
//! The live view uses **list calls**, not reflectors: the CLI is a one-shot process whose
//! every command reads each kind once, and a list is one request where a reflector is a list
//! plus a watch connection that is torn down immediately. A long-running front-end (TUI,
//! daemon) wraps watch caches behind the same [`ClusterView`] trait.
#![forbid(unsafe_code)]

pub mod approval;
pub mod budget;
pub mod caller;
pub mod concept;
pub mod error;
pub mod ghost;
pub mod live;
pub mod logos;
pub mod memory;
pub mod outcome;
pub mod schema;
pub mod shard;
pub mod suggest;
pub mod summary;
pub mod table;
pub mod view;
#[cfg(feature = "watch")]
pub mod watched;
pub mod wire;

pub use caller::{Caller, Grant};
pub use concept::{ConceptAnswer, ConceptModel, ConceptOptions};
pub use error::{Error, ErrorKind, Result};
pub use ghost::{GhostView, LiveLayer, TokioTimer};
pub use live::{KubeActor, LiveView};
pub use logos::{Args, Logos, ReplayInput, StatusReport};
pub use memory::MemoryCluster;
pub use outcome::Outcome;
pub use view::{ClusterActor, ClusterView, Filter, Observed, Scope, Source};
