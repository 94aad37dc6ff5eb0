//! The crate's [`Error`] (starting, binding and serving the daemon, reaching it) and [`Result`].

use std::path::PathBuf;

/// What can go wrong starting, serving or reaching the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another daemon answers on the socket.
    #[error(
        "a Cortex daemon is already listening on {}; stop it first, or start this one with \
         --socket PATH (or ${}) elsewhere",
        path.display(),
        crate::socket::SOCKET_ENV
    )]
    AlreadyRunning {
        /// The socket.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error(
        "{} exists and is not a socket; it was left alone: remove it or choose another --socket",
        path.display()
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// No socket path could be found.
    #[error(
        "no place for the Cortex socket: set ${} (or HOME)",
        crate::socket::SOCKET_ENV
    )]
    NoSocketPath,
    /// A file-system or network operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC transport failed.
    #[error("{what}: {message}")]
    Transport {
        /// What was being done.
        what: String,
        /// The transport's message.
        message: String,
    },
    /// The TCP listener's TLS or token configuration is unusable, or exposure is refused.
    #[error("{0}")]
    Auth(String),
    /// The reflection service could not be built (the descriptor set did not decode).
    #[error("building the reflection service: {0}")]
    Reflection(String),
}

impl Error {
    /// An I/O error met while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
