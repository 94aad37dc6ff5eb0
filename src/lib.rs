//! # K8-gents
//!
//! Kubernetes as the body of a society of LLM agents. This facade crate re-exports the
//! workspace's library crates so that a service can depend on one crate:
//!
//! | module | crate | feature | what it holds |
//! |---|---|---|---|
//! | [`core`](kgents_core) | `kgents-core` | always | AGENTESE paths, genus, clock and timer, half-life decay, pheromone field |
//! | [`risk`](kgents_risk) | `kgents-risk` | always | proposal risk calculus and decisions |
//! | [`ghost`](kgents_ghost) | `kgents-ghost` | always | the ghost protocol: layered fallback, freshness, snapshot store |
//! | [`probes`](kgents_probes) | `kgents-probes` | always | cognitive probes over the `LlmClient` trait, health tracking |
//! | `crds` | `kgents-crds` | `crds` | the `kgents.io/v1` custom resources |
//! | `llm` | `kgents-llm` | `llm` | model runtimes (Anthropic, OpenAI-compatible, `claude -p`) implementing `LlmClient` |
//! | `operator` | `kgents-operator` | `operator` (implies `crds`, `llm`, `policy`, `logos`) | controllers, admission webhook, leader election, metrics |
//! | `policy` | `kgents-policy` | `policy` (implies `crds`) | the T-gent admission policy and decision over the custom resources (pure) |
//! | `logos` | `kgents-logos` | `logos` (implies `crds`, `policy`) | the AGENTESE resolver every front-end uses: `Logos::invoke(caller, path, args)`, live and ghost views |
//! | `mcp` | `kgents-mcp` | `mcp` (implies `logos`) | the MCP server: `kgents://` resources and the status, sense, emit, propose and invoke tools over stdio or streamable HTTP |
//! | `cortex` | `kgents-cortex` | `cortex` (implies `logos`) | the Cortex daemon: `Invoke`, `GetStatus`, `GetSnapshot` and a bounded `Observe` stream over gRPC on a Unix socket; the CLI's daemon ghost layer |
//! | `seance` | `kgents-seance` | `seance` (`seance-postgres` adds the PostgreSQL store) | an agent's witness record: the records, the replay fold, retention, the embedded redb store |
//! | `symbiont` | `kgents-symbiont` | `symbiont` (implies `logos`) | the sidecar in every agent pod: memory (redb), journal, persona, safe mode, pheromones and AGENTESE over localhost HTTP |
//!
//! With default features only the pure crates are compiled: they do no network I/O and pull in
//! no Kubernetes client, HTTP stack, TLS or async runtime. The adapter crates bind them to
//! Kubernetes and to model providers; enable their features to use them through this crate.
//! Examples under `examples/` assemble them into binaries.
#![forbid(unsafe_code)]

pub use kgents_core;
#[cfg(feature = "cortex")]
pub use kgents_cortex;
#[cfg(feature = "crds")]
pub use kgents_crds;
pub use kgents_ghost;
#[cfg(feature = "llm")]
pub use kgents_llm;
#[cfg(feature = "logos")]
pub use kgents_logos;
#[cfg(feature = "mcp")]
pub use kgents_mcp;
#[cfg(feature = "operator")]
pub use kgents_operator;
#[cfg(feature = "policy")]
pub use kgents_policy;
pub use kgents_probes;
pub use kgents_risk;
#[cfg(feature = "seance")]
pub use kgents_seance;
#[cfg(feature = "symbiont")]
pub use kgents_symbiont;
