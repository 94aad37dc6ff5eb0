//! # kgents-cortex: the Cortex daemon
//!
//! The Logos over gRPC (`kgents.cortex.v1.Cortex`, `proto/kgents/cortex/v1/cortex.proto`,
//! compiled by protox: no system protoc). The daemon serves the **same** resolver every
//! front-end uses ([`kgents_logos::Logos::invoke`]); it does not grow a second API (DESIGN §5).
//!
//! | RPC | what |
//! |---|---|
//! | `Invoke(path, args_json, namespace, selector, caller)` | any AGENTESE path, as the caller (an Umwelt's or agent's affordances, else the daemon's identity); the Outcome as JSON with its kind and source |
//! | `GetStatus(namespace, caller)` | the Logos `StatusReport` as JSON, with typed counts |
//! | `GetSnapshot(key)` | one ghost snapshot from the watch caches (the CLI's first ghost layer) |
//! | `Observe(namespace, kinds, caller)` | pheromones (decayed intensity when sent), agent and proposal changes, Events of kgents objects; bounded per subscriber |
//!
//! plus `grpc.health.v1.Health` and reflection v1 and v1alpha. `Invoke` serves the model paths
//! (`concept.*`) when the daemon is given a model ([`daemon::Options::model`]), with the tokens
//! they use in the metrics. TCP is plain text on loopback only; elsewhere it needs TLS and a
//! bearer token ([`auth`]).
//!
//! ```text
//!  watches (Agents, Pheromones, Proposals, Events) ──▶ WatchCache ──▶ Logos ──▶ CortexService
//!                       │                                  │                   (Unix socket, 0600)
//!                       ├──▶ Hub (bounded per subscriber) ──┼──▶ Observe streams
//!                       └──▶ ghost snapshots (≤ 1/s each)   └──▶ GetSnapshot ◀── CortexLayer (CLI)
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`auth`] | the TCP listener's protection: TLS files, the bearer token checked in constant time, exposure rules |
//! | [`server`] | [`CortexService`], the message limits, [`server::router`] with health and reflection |
//! | [`daemon`] | [`daemon::serve`]: the whole daemon assembled over a kube client (what `kgents cortex serve` runs) |
//! | [`cache`] | [`WatchCache`]: the caches as a `ClusterView`; [`cache::Debounce`] |
//! | [`watch`] | the I/O edge: one watch per kind feeding the caches, the hub and the ghost snapshots |
//! | [`metrics`] | [`metrics::Metrics`]: requests by method, path template and code, latency, subscribers, drops, cache sizes |
//! | [`rbac`] | [`rbac::required_rules`]: the read-only API access the daemon needs (what `deploy/cortex/rbac.yaml` grants) |
//! | [`fanout`] | [`fanout::Hub`]: `Observe`'s fan-out with a bounded buffer per subscriber, and its drop policy |
//! | [`request`] | pure mapping: request fields to Logos arguments, snapshot keys, Logos errors to gRPC codes |
//! | [`socket`] | the socket's path, binding it (0600, stale replaced, a live daemon refused) |
//! | [`client`] | [`client::connect`] over the socket, and [`CortexLayer`], the ghost chain's daemon layer |
//! | [`pb`] | the generated messages, client and server |
//! | [`error`] | [`Error`], [`Result`] |
#![forbid(unsafe_code)]

pub mod auth;
pub mod cache;
pub mod client;
pub mod daemon;
pub mod error;
pub mod fanout;
pub mod metrics;
pub mod rbac;
pub mod request;
pub mod server;
pub mod socket;
pub mod watch;

/// The generated `kgents.cortex.v1` messages, client ([`pb::cortex_client`]) and server
/// ([`pb::cortex_server`]).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("kgents.cortex.v1");
}

pub use cache::WatchCache;
pub use client::CortexLayer;
pub use error::{Error, Result};
pub use server::CortexService;
