//! [`Error`] and [`Result`]: what went wrong, where, and what to do.

use jiff::Timestamp;

/// Everything the witness record can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No record of the agent at all.
    #[error("no history of agent {agent} is recorded")]
    NoHistory {
        /// The agent (`namespace/name`).
        agent: String,
    },
    /// The time asked for is before the first record.
    #[error("agent {agent}'s history starts at {starts}; {at} is before it")]
    BeforeHistory {
        /// The agent.
        agent: String,
        /// The time asked for.
        at: Timestamp,
        /// When the history starts.
        starts: Timestamp,
    },
    /// A record does not apply to the state before it (out of order, or damaged).
    #[error("record {seq} of agent {agent} cannot be replayed: {reason}")]
    Replay {
        /// The agent.
        agent: String,
        /// The record's sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The store file exists but is not a readable witness store. The file is kept as it is.
    #[error(
        "the witness store at {path} is corrupt or not a witness store ({reason}); the file was left untouched: move it aside (a new store is then started) or restore it from a backup"
    )]
    Corrupt {
        /// Where the store is.
        path: String,
        /// What was found.
        reason: String,
    },
    /// Another process holds the store file open.
    #[error(
        "the witness store at {path} is open in another process (one operator, or a running seance); stop it, or read another copy of the file"
    )]
    InUse {
        /// Where the store is.
        path: String,
    },
    /// Any other storage failure.
    #[error("the witness store at {path}: {reason}")]
    Store {
        /// Where the store is (a file, or a database URL without its password).
        path: String,
        /// What happened.
        reason: String,
    },
    /// A record could not be encoded or decoded.
    #[error("the witness store at {path} holds a record that does not decode ({reason})")]
    Decode {
        /// Where the store is.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
