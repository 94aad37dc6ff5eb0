//! [`Error`] and [`Result`]: what went wrong, where, and what to do.

use std::path::PathBuf;

/// Everything the symbiont can fail at. Each message says what was wrong and what to do; the
/// HTTP layer maps each variant to a status ([`Error::status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A memory key breaks the key rules ([`crate::limits::check_key`]).
    #[error("bad key {key:?}: {reason}")]
    BadKey {
        /// The key (shortened).
        key: String,
        /// Which rule it breaks, and what to use instead.
        reason: String,
    },
    /// A value (or journal record) is larger than the limit.
    #[error(
        "the value is {size} bytes, over the limit of {limit} bytes: store large data elsewhere and keep a reference here"
    )]
    ValueTooLarge {
        /// The value's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The Memory is full: the write would take it over its size limit.
    #[error(
        "the Memory is full: {used} of {limit} bytes used and this write needs {needed} more; delete keys you no longer need, or raise spec.symbiont.memory.size"
    )]
    Full {
        /// Bytes used now.
        used: u64,
        /// The Memory's size limit in bytes.
        limit: u64,
        /// Extra bytes the refused write would have taken.
        needed: u64,
    },
    /// The volume under the store has no room for the write (checked before it is made).
    #[error(
        "the volume holding the memory store at {path} is full: {free} bytes free, and a write of {needed} bytes needs room for itself twice over plus a reserve kept for deletes; nothing of this write was kept and everything stored before is intact: delete keys you no longer need (DELETE /memory/{{key}}) or give the Memory a larger volume"
    )]
    VolumeFull {
        /// The store file.
        path: PathBuf,
        /// Bytes free on the volume.
        free: u64,
        /// Bytes the refused write holds.
        needed: u64,
    },
    /// The volume ran out of space in the middle of a commit (another writer filled it past
    /// the check of [`Error::VolumeFull`]). redb then refuses every operation until the store
    /// is reopened.
    #[error(
        "the volume holding the memory store at {path} ran out of space mid-commit ({source}); nothing of this write was kept and everything acknowledged before is on disk, but the store refuses further use until it is reopened: restart the symbiont, then delete keys or give the Memory a larger volume"
    )]
    OutOfSpace {
        /// The store file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store file exists but is not a readable redb database. The file is kept as it is.
    #[error(
        "the memory store at {path} is corrupt or not a redb database ({reason}); the file was left untouched: move it aside (the symbiont then starts with an empty store) or restore it from a backup"
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What redb reported.
        reason: String,
    },
    /// Another process holds the store open.
    #[error(
        "the memory store at {path} is already open in another process: run one symbiont per Memory volume"
    )]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The store failed in another way (I/O, a transaction).
    #[error("the memory store at {path} failed: {reason}")]
    Store {
        /// The store file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A request body or query is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The named key does not exist.
    #[error("no key {0:?} in the memory: PUT /memory/{0} stores one")]
    NotFound(String),
    /// A configuration file (annotations, Umwelt) could not be read.
    #[error("{what} at {path} could not be read: {reason}")]
    Config {
        /// Which file.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// This symbiont was started without a connection to the API server.
    #[error(
        "{0} needs the API server, and this symbiont runs without one: start it with a kubeconfig or in a pod (in-cluster configuration)"
    )]
    NoCluster(&'static str),
    /// The API server (through the Logos) refused or failed.
    #[error(transparent)]
    Logos(#[from] kgents_logos::Error),
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadKey { .. } | Error::BadRequest(_) => 400,
            Error::ValueTooLarge { .. } => 413,
            Error::Full { .. } | Error::VolumeFull { .. } | Error::OutOfSpace { .. } => 507,
            Error::NotFound(_) => 404,
            Error::NoCluster(_) => 501,
            Error::Corrupt { .. }
            | Error::InUse { .. }
            | Error::Store { .. }
            | Error::Config { .. } => 500,
            Error::Logos(e) => match e.kind() {
                kgents_logos::ErrorKind::Usage => 400,
                kgents_logos::ErrorKind::Denied => 403,
                kgents_logos::ErrorKind::Unavailable => 503,
                kgents_logos::ErrorKind::NotFound => 404,
                kgents_logos::ErrorKind::Failed => 502,
            },
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
