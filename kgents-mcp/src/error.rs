//! The crate's [`Error`]: what stops a server from starting or serving.

use std::net::SocketAddr;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An HTTP server bound beyond loopback without a bearer token.
    #[error(
        "refusing to serve MCP over HTTP on {addr} without a bearer token: it is not a loopback address, so anyone who can reach it could act as this server's identity; set KGENTS_MCP_TOKEN (or --bearer-token-file), or bind 127.0.0.1"
    )]
    TokenRequired {
        /// The address.
        addr: SocketAddr,
    },
    /// A bearer token too short to resist guessing.
    #[error("the bearer token is {len} bytes; use at least {min} (e.g. `openssl rand -hex 32`)")]
    WeakToken {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving MCP: {0}")]
    Serve(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
