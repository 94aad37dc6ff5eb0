//! The snapshot store: the [`GhostStore`] trait, an in-memory store and the filesystem store.
//!
//! A read never fails: it is a [`Lookup::Hit`] or a [`Lookup::Miss`] with the reason (a missing
//! file is an ordinary miss; anything else is also logged as a warning). A file that cannot be
//! used is left where it is, for a person to inspect; the next successful write replaces it.

pub mod codec;
#[cfg(feature = "fs")]
mod fs;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;

#[cfg(feature = "fs")]
pub use fs::{FsGhostStore, GHOST_DIR_ENV};

use crate::error::Result;
use crate::snapshot::{Payload, Snapshot, SnapshotKey, SnapshotKind, StabilityScore};

/// Largest cache file that is read (64 MiB); larger files are a miss, larger snapshots are not
/// written.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a stored snapshot could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissReason {
    /// Nothing is stored under the key.
    NotFound,
    /// The path exists but is a directory or another non-file.
    NotAFile,
    /// The file is larger than the read limit.
    TooLarge {
        /// Its size.
        bytes: u64,
        /// [`MAX_FILE_BYTES`].
        limit: u64,
    },
    /// The file exists but could not be read (permissions, I/O error).
    Unreadable {
        /// The OS error.
        detail: String,
    },
    /// The file is not UTF-8 text.
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The JSON ends early (an interrupted write by an older tool, a full disk).
    Truncated {
        /// The parser's message.
        detail: String,
    },
    /// The file is not a valid envelope.
    Corrupt {
        /// The parser's message.
        detail: String,
    },
    /// The file was written with another schema version.
    WrongVersion {
        /// The version in the file.
        found: u32,
        /// The version this crate reads.
        supported: u32,
    },
    /// The envelope holds another kind of snapshot.
    WrongKind {
        /// The kind in the file.
        found: String,
        /// The kind the key calls for.
        expected: SnapshotKind,
    },
    /// The data belongs under another key (an agent file holding another agent).
    WrongKey {
        /// Where the data belongs.
        found: SnapshotKey,
    },
    /// The content breaks an invariant (an intensity outside `[0, 1]`, …).
    Invalid {
        /// What is wrong.
        detail: String,
    },
}

impl MissReason {
    /// Whether this miss deserves a warning (everything except a file that does not exist).
    #[must_use]
    pub fn is_warning(&self) -> bool {
        !matches!(self, Self::NotFound)
    }
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("nothing cached yet"),
            Self::NotAFile => f.write_str("the path is not a regular file"),
            Self::TooLarge { bytes, limit } => {
                write!(f, "the file is {bytes} bytes, over the {limit}-byte limit")
            }
            Self::Unreadable { detail } => write!(f, "the file cannot be read: {detail}"),
            Self::NotUtf8 { valid_up_to } => {
                write!(
                    f,
                    "the file is not UTF-8 text (invalid byte at offset {valid_up_to})"
                )
            }
            Self::Truncated { detail } => write!(f, "the file is truncated: {detail}"),
            Self::Corrupt { detail } => write!(f, "the file is not a valid snapshot: {detail}"),
            Self::WrongVersion { found, supported } => write!(
                f,
                "the file has schema version {found}, this version of kgents reads {supported}"
            ),
            Self::WrongKind { found, expected } => {
                write!(
                    f,
                    "the file holds a {found:?} snapshot, expected {expected}"
                )
            }
            Self::WrongKey { found } => write!(f, "the file holds the data of {found}"),
            Self::Invalid { detail } => write!(f, "the file's content is invalid: {detail}"),
        }
    }
}

/// A snapshot that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// What was looked up.
    pub key: SnapshotKey,
    /// Why it could not be used.
    pub reason: MissReason,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// The result of a read.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The stored snapshot.
    Hit(Snapshot),
    /// No usable snapshot.
    Miss(Miss),
}

impl Lookup {
    /// The snapshot, if it was a hit.
    #[must_use]
    pub fn hit(self) -> Option<Snapshot> {
        match self {
            Self::Hit(s) => Some(s),
            Self::Miss(_) => None,
        }
    }
}

/// Builds a lookup from a decode result, logging unusual misses.
pub(crate) fn lookup(key: &SnapshotKey, decoded: Result<Snapshot, MissReason>) -> Lookup {
    match decoded {
        Ok(snapshot) => Lookup::Hit(snapshot),
        Err(reason) => {
            if reason.is_warning() {
                tracing::warn!(key = %key, %reason, "ghost cache entry ignored");
            } else {
                tracing::debug!(key = %key, "ghost cache miss");
            }
            Lookup::Miss(Miss {
                key: key.clone(),
                reason,
            })
        }
    }
}

/// Storage of the ghost cache's snapshots.
///
/// Implementations must make each write atomic (a reader sees the old or the new snapshot,
/// never a mix) and serialise concurrent writers.
pub trait GhostStore: Send + Sync {
    /// Reads the snapshot stored under `key`. Never fails: problems are a [`Lookup::Miss`].
    fn read(&self, key: &SnapshotKey) -> Lookup;

    /// Stores `snapshot` under its own key, replacing what was there.
    ///
    /// # Errors
    /// An invalid or oversized snapshot, or an I/O failure of the store.
    fn write(&self, snapshot: &Snapshot) -> Result<()>;

    /// Applies live-fetch outcomes (oldest first) to the stored stability score in one
    /// read-modify-write that concurrent writers cannot interleave, stamps it `now`, and returns
    /// the new score. A missing or unusable stored score starts from [`crate::stability::INITIAL`].
    ///
    /// # Errors
    /// An I/O failure of the store.
    fn update_stability(&self, outcomes: &[bool], now: Timestamp) -> Result<StabilityScore>;

    /// The stored stability score, or [`crate::stability::INITIAL`] if there is none usable.
    fn stability(&self) -> StabilityScore {
        stability_of(self.read(&SnapshotKey::StabilityScore))
    }
}

/// The stability score held by a lookup, or the initial score.
pub(crate) fn stability_of(lookup: Lookup) -> StabilityScore {
    match lookup {
        Lookup::Hit(Snapshot {
            payload: Payload::StabilityScore(score),
            ..
        }) => score,
        _ => crate::stability::INITIAL,
    }
}

/// A store in memory, for tests and for embedding without a filesystem. It keeps the encoded
/// bytes, so reads and writes go through the same codec (and the same checks) as the files of
/// [`FsGhostStore`].
#[derive(Debug, Default)]
pub struct InMemoryGhostStore {
    entries: Mutex<BTreeMap<SnapshotKey, Vec<u8>>>,
}

impl InMemoryGhostStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores raw bytes under `key`, bypassing the codec (to model foreign or damaged entries).
    pub fn insert_raw(&self, key: SnapshotKey, bytes: Vec<u8>) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, bytes);
    }

    /// The keys that hold something, usable or not.
    #[must_use]
    pub fn keys(&self) -> Vec<SnapshotKey> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

impl GhostStore for InMemoryGhostStore {
    fn read(&self, key: &SnapshotKey) -> Lookup {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let decoded = match entries.get(key) {
            Some(bytes) => codec::decode(bytes, key),
            None => Err(MissReason::NotFound),
        };
        drop(entries);
        lookup(key, decoded)
    }

    fn write(&self, snapshot: &Snapshot) -> Result<()> {
        let bytes = codec::encode(snapshot)?;
        self.insert_raw(snapshot.key(), bytes);
        Ok(())
    }

    fn update_stability(&self, outcomes: &[bool], now: Timestamp) -> Result<StabilityScore> {
        let key = SnapshotKey::StabilityScore;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let decoded = match entries.get(&key) {
            Some(bytes) => codec::decode(bytes, &key),
            None => Err(MissReason::NotFound),
        };
        let score = stability_of(lookup(&key, decoded)).observe_all(outcomes);
        let bytes = codec::encode(&Snapshot::new(now, Payload::StabilityScore(score)))?;
        entries.insert(key, bytes);
        Ok(score)
    }
}
