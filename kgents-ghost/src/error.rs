//! The crate's error type.

use std::path::PathBuf;

use crate::chain::Attempt;
use crate::snapshot::{Query, SnapshotKey};

/// What the CLI tells a person to run when no layer could answer.
pub const REMEDY: &str = "Run `kgents infra init` to start the cluster and the Cortex daemon \
(or `kgents infra status` to see what is down).";

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the ghost protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name that would become part of a cache path breaks the naming rules.
    #[error("invalid {what} {name:?}: {reason}; use a Kubernetes-style name")]
    InvalidName {
        /// What the name was for (`agent name`, `pheromone type`).
        what: &'static str,
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A snapshot's content breaks an invariant, so it is not written.
    #[error("refusing to cache {key}: {problem}; fix the producer of this snapshot")]
    InvalidSnapshot {
        /// Where it would have been written.
        key: SnapshotKey,
        /// What is wrong with it.
        problem: String,
    },

    /// A snapshot encodes to more bytes than the store will ever read back.
    #[error(
        "refusing to cache {key}: it encodes to {bytes} bytes, over the {limit}-byte limit; \
         narrow the query"
    )]
    SnapshotTooLarge {
        /// Where it would have been written.
        key: SnapshotKey,
        /// Encoded size.
        bytes: u64,
        /// The limit ([`crate::store::MAX_FILE_BYTES`]).
        limit: u64,
    },

    /// A snapshot could not be encoded as JSON.
    #[error("could not encode {key} as JSON: {source}")]
    Encode {
        /// Where it would have been written.
        key: SnapshotKey,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// A filesystem operation of the store failed.
    #[error("could not {action} {}: {source}; check that the directory exists and is writable, \
             or point KGENTS_GHOST_DIR elsewhere", path.display())]
    Io {
        /// What the store was doing (`create directory`, `lock`, `rename into place`, …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Neither `KGENTS_GHOST_DIR` nor `HOME` is set, so there is no default cache root.
    #[error("no ghost cache directory: neither KGENTS_GHOST_DIR nor HOME is set; set one of them")]
    NoCacheRoot,

    /// A chain was built without any layer.
    #[error("the fallback chain has no layers; add at least one layer before fetching")]
    NoLayers,

    /// Every layer of the fallback chain failed.
    #[error("{}", render_all_failed(query, attempts))]
    AllLayersFailed {
        /// What was asked.
        query: Query,
        /// Each layer's attempt, in order.
        attempts: Vec<Attempt>,
    },
}

fn render_all_failed(query: &Query, attempts: &[Attempt]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("no layer could answer the {query}:");
    for attempt in attempts {
        let _ = write!(out, "\n  - {attempt}");
    }
    let _ = write!(out, "\n{REMEDY}");
    out
}
