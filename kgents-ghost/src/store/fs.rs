//! [`FsGhostStore`]: the seed's directory tree under a root (default `~/.kgents/ghost/`).
//!
//! Writes are atomic and serialised: under an exclusive advisory lock on `<root>/_meta/.lock`
//! (inside `_meta/`, so the top level holds exactly the seed's tree), the bytes go to a
//! temporary file in the destination directory, which is fsynced, renamed over the destination,
//! and the directory is fsynced. Readers take no lock: a rename is atomic, so a
//! reader sees either the old or the new file. Reads check the size from the metadata before
//! reading and never read more than the limit even if the file grows meanwhile.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::{GhostStore, Lookup, MAX_FILE_BYTES, MissReason, codec, lookup, stability_of};
use crate::error::{Error, Result};
use crate::snapshot::{Payload, Snapshot, SnapshotKey, StabilityScore};

/// Environment variable that overrides the default cache root.
pub const GHOST_DIR_ENV: &str = "KGENTS_GHOST_DIR";

/// The lock file, relative to the root.
const LOCK_FILE: [&str; 2] = ["_meta", ".lock"];

/// The ghost cache on the filesystem.
#[derive(Debug, Clone)]
pub struct FsGhostStore {
    root: PathBuf,
}

/// Holds the exclusive advisory lock until dropped.
struct WriteLock {
    file: File,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock as well; unlocking first just makes the
        // release explicit. A failure here cannot be acted upon.
        let _ = self.file.unlock();
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

impl FsGhostStore {
    /// A store rooted at `root`. Nothing is created until the first write.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// A store at the default root (see [`FsGhostStore::default_root`]).
    ///
    /// # Errors
    /// [`Error::NoCacheRoot`] when neither variable is set.
    pub fn at_default_root() -> Result<Self> {
        Self::default_root().map(Self::new)
    }

    /// `$KGENTS_GHOST_DIR` if set and non-empty, else `$HOME/.kgents/ghost`.
    ///
    /// # Errors
    /// [`Error::NoCacheRoot`] when neither variable is set.
    pub fn default_root() -> Result<PathBuf> {
        Self::resolve_root(std::env::var_os(GHOST_DIR_ENV), std::env::var_os("HOME"))
    }

    /// The rule of [`FsGhostStore::default_root`] as a pure function of the two variables.
    ///
    /// # Errors
    /// [`Error::NoCacheRoot`] when both are unset or empty.
    pub fn resolve_root(ghost_dir: Option<OsString>, home: Option<OsString>) -> Result<PathBuf> {
        match (ghost_dir, home) {
            (Some(dir), _) if !dir.is_empty() => Ok(PathBuf::from(dir)),
            (_, Some(home)) if !home.is_empty() => {
                Ok(PathBuf::from(home).join(".kgents").join("ghost"))
            }
            _ => Err(Error::NoCacheRoot),
        }
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`. Keys hold only validated names, so this is always inside the
    /// root.
    #[must_use]
    pub fn path_of(&self, key: &SnapshotKey) -> PathBuf {
        key.relative_path()
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn lock(&self) -> Result<WriteLock> {
        let meta = self.root.join(LOCK_FILE[0]);
        fs::create_dir_all(&meta).map_err(io_error("create directory", &meta))?;
        let path = meta.join(LOCK_FILE[1]);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open lock file", &path))?;
        file.lock().map_err(io_error("lock", &path))?;
        Ok(WriteLock { file })
    }

    fn read_bytes(path: &Path) -> Result<Vec<u8>, MissReason> {
        let unreadable = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => MissReason::NotFound,
            _ => MissReason::Unreadable {
                detail: e.to_string(),
            },
        };
        let metadata = fs::metadata(path).map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(MissReason::NotAFile);
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(MissReason::TooLarge {
                bytes: metadata.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        let file = File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        // One byte over the limit is enough to notice a file that grew after the size check.
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        Ok(bytes)
    }

    fn read_key(&self, key: &SnapshotKey) -> Result<Snapshot, MissReason> {
        let bytes = Self::read_bytes(&self.path_of(key))?;
        codec::decode(&bytes, key)
    }

    /// Replaces the file of `key` with `bytes`; the caller holds the write lock.
    fn replace_locked(&self, key: &SnapshotKey, bytes: &[u8]) -> Result<()> {
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let mut temp = tempfile::Builder::new()
            .prefix(".")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io_error("create a temporary file in", dir))?;
        temp.write_all(bytes)
            .map_err(io_error("write temporary file", temp.path()))?;
        temp.as_file()
            .sync_all()
            .map_err(io_error("fsync temporary file", temp.path()))?;
        temp.persist(&path)
            .map_err(|e| io_error("rename into place", &path)(e.error))?;
        sync_dir(dir)
    }
}

/// Makes the rename durable. Directories cannot be opened for fsync on every platform; where
/// they cannot, the rename is still atomic, only its durability across a power loss is left to
/// the OS.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("fsync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl GhostStore for FsGhostStore {
    fn read(&self, key: &SnapshotKey) -> Lookup {
        lookup(key, self.read_key(key))
    }

    fn write(&self, snapshot: &Snapshot) -> Result<()> {
        let bytes = codec::encode(snapshot)?;
        let _lock = self.lock()?;
        self.replace_locked(&snapshot.key(), &bytes)
    }

    fn update_stability(&self, outcomes: &[bool], now: Timestamp) -> Result<StabilityScore> {
        let key = SnapshotKey::StabilityScore;
        let _lock = self.lock()?;
        let score = stability_of(lookup(&key, self.read_key(&key))).observe_all(outcomes);
        let bytes = codec::encode(&Snapshot::new(now, Payload::StabilityScore(score)))?;
        self.replace_locked(&key, &bytes)?;
        Ok(score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolution() {
        let root = |g: Option<&str>, h: Option<&str>| {
            FsGhostStore::resolve_root(g.map(OsString::from), h.map(OsString::from))
        };
        assert_eq!(
            root(Some("/x"), Some("/home/u")).unwrap(),
            PathBuf::from("/x")
        );
        assert_eq!(
            root(Some(""), Some("/home/u")).unwrap(),
            PathBuf::from("/home/u/.kgents/ghost")
        );
        assert_eq!(
            root(None, Some("/home/u")).unwrap(),
            PathBuf::from("/home/u/.kgents/ghost")
        );
        assert!(matches!(root(None, Some("")), Err(Error::NoCacheRoot)));
        assert!(matches!(root(None, None), Err(Error::NoCacheRoot)));
    }

    #[test]
    fn paths_follow_the_seed_layout() {
        use crate::name::AgentName;
        use crate::snapshot::Query;
        use kgents_core::field::PheromoneType;
        let store = FsGhostStore::new("/g");
        let p = |k: SnapshotKey| store.path_of(&k);
        assert_eq!(
            p(Query::AgentsIndex.into()),
            Path::new("/g/agents/_index.json")
        );
        assert_eq!(
            p(Query::Agent(AgentName::new("l-gent").unwrap()).into()),
            Path::new("/g/agents/l-gent.json")
        );
        assert_eq!(
            p(Query::ActivePheromones.into()),
            Path::new("/g/pheromones/active.json")
        );
        assert_eq!(
            p(Query::PheromonesByType(PheromoneType::Dream).into()),
            Path::new("/g/pheromones/by_type/DREAM.json")
        );
        assert_eq!(
            p(Query::PendingProposals.into()),
            Path::new("/g/proposals/pending.json")
        );
        assert_eq!(
            p(Query::RejectedProposals.into()),
            Path::new("/g/proposals/rejected.json")
        );
        assert_eq!(
            p(Query::ClusterStatus.into()),
            Path::new("/g/cluster/status.json")
        );
        assert_eq!(
            p(SnapshotKey::StabilityScore),
            Path::new("/g/_meta/stability_score.json")
        );
    }
}
