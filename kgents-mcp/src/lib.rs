//! # kgents-mcp: the society as an MCP server
//!
//! Every resource and tool is an AGENTESE invocation through the Logos
//! ([`kgents_logos::Logos::invoke`]) as one caller (the kubeconfig's identity, or an Umwelt's
//! affordances); nothing here talks to Kubernetes another way (DESIGN §5).
//!
//! | resource | path |
//! |---|---|
//! | `kgents://agents`, `kgents://agents/{namespace}/{name}` | `world.cluster.agents.manifest`, `world.cluster.agents.<agent>.manifest` |
//! | `kgents://pheromones`, `kgents://pheromones/{type}` | `void.pheromone.sense` |
//! | `kgents://proposals`, `kgents://proposals/{namespace}/{name}` | `world.cluster.proposals.manifest` |
//! | `kgents://cluster/status` | the three above and the cluster's health ([`kgents_logos::Logos::status`]) |
//!
//! | tool | path | writes |
//! |---|---|---|
//! | `status` | as `kgents://cluster/status` | no |
//! | `sense` | `void.pheromone.sense` | no |
//! | `emit` | `void.pheromone.emit` | yes |
//! | `propose` | `self.deployment.define`: preview and server-side dry run first, then filed | yes |
//! | `invoke` | any path the caller may use (writing paths only with writes allowed) | maybe |
//!
//! - **Read-only by default**: write tools are not listed, a forced call is refused, and the
//!   front-end builds the Logos without a writer, so no path can write either.
//! - **Bounded**: compact rows unless `detail=full`; opaque cursors; each rendering (structured
//!   JSON, text) at most [`McpConfig::max_bytes`], with a note saying how to read on.
//! - **No credentials out**: no tool reads Secrets or the kubeconfig, and every result is
//!   passed through [`redact`].
//! - **Both protocol eras** (rmcp): 2026-07-28 (`server/discover`, `subscriptions/listen`) and
//!   the 2025-11-25 `initialize` handshake (`resources/subscribe`).
//!
//! | module | what it holds |
//! |---|---|
//! | [`server`] | [`KgentsMcp`] (the tools, resources and rmcp `ServerHandler`), [`McpConfig`] |
//! | [`transport`] | [`serve_stdio`], [`serve_http`] (bearer token beyond loopback) |
//! | [`watch`] | change notifications: the pure [`watch::diff`] and the poller |
//! | [`uri`] | `kgents://` URIs: parsing, the catalogue of resources and templates |
//! | [`page`] | opaque cursors, pages bounded by count and bytes, the byte cap |
//! | [`args`] | each tool's typed input and schema; parsing that names the field at fault |
//! | [`redact`] | masking credentials by key and by shape |
//! | [`render`] | compact rows and text renderings |
//! | [`error`] | [`Error`], [`Result`] |
#![forbid(unsafe_code)]

pub mod args;
pub mod error;
pub mod page;
pub mod redact;
pub mod render;
pub mod server;
pub mod transport;
pub mod uri;
pub mod watch;

pub use error::{Error, Result};
pub use server::{KgentsMcp, McpConfig, ToolKind};
pub use tokio_util::sync::CancellationToken;
pub use transport::{HttpOptions, serve_http, serve_stdio};
