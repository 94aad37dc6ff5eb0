//! [`RedbWitnessStore`]: the embedded store, one redb file.
//!
//! Each append is one transaction committed with fsync (redb's immediate durability), so a
//! batch the writer acknowledges survives a crash. The file is opened in redb's single-writer
//! mode: one process (the operator) writes, and any number of readers (`kgents seance`) open it
//! read-only at the same time and see every committed batch.
//!
//! A file that is not a readable witness store is never repaired by deleting or truncating it:
//! opening refuses with [`Error::Corrupt`] and leaves it as it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition,
};

use super::{Recorded, TimeRange, WitnessStore};
use crate::error::{Error, Result};
use crate::record::{AgentRef, NewRecord, WitnessRecord};

/// (agent key, sequence number) → the record as JSON.
const RECORDS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("witness_records");
/// agent key → how many records it has.
const AGENTS: TableDefinition<&str, u64> = TableDefinition::new("witness_agents");
/// Bookkeeping: the last sequence number given, and the format marker.
const META: TableDefinition<&str, u64> = TableDefinition::new("witness_meta");
const LAST_SEQ: &str = "last_seq";
const FORMAT: &str = "format";
const FORMAT_VERSION: u64 = 1;

const CACHE_BYTES: usize = 16 << 20;

enum Db {
    Writer(Database),
    Reader(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> std::result::Result<ReadTransaction, redb::TransactionError> {
        match self {
            Db::Writer(db) => db.begin_read(),
            Db::Reader(db) => db.begin_read(),
        }
    }
}

struct Inner {
    db: Db,
    path: PathBuf,
}

/// A [`WitnessStore`] in one redb file.
#[derive(Clone)]
pub struct RedbWitnessStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedbWitnessStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbWitnessStore")
            .field("path", &self.inner.path)
            .field("writable", &matches!(self.inner.db, Db::Writer(_)))
            .finish()
    }
}

impl RedbWitnessStore {
    /// Opens the store at `path` for writing, creating it (and its directory) when absent. An
    /// existing file is checked page by page first; a corrupt one, or a redb file that is not a
    /// witness store, is refused with [`Error::Corrupt`] and kept untouched.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::InUse`] (another writer has it open), [`Error::Store`].
    pub fn open(path: &Path) -> Result<RedbWitnessStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::Store {
                path: path.display().to_string(),
                reason: format!("cannot create the directory {}: {e}", parent.display()),
            })?;
        }
        let existing = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        // redb may panic on a file altered outside it; the guard turns that into the same
        // refusal as a failed integrity check.
        let opened = std::panic::catch_unwind(|| {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .set_check_integrity_on_open(existing)
                .create(path)
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(map_err(path, e.into())),
            Err(_) => return Err(corrupt(path, "the store panicked reading it")),
        };
        let store = RedbWitnessStore {
            inner: Arc::new(Inner {
                db: Db::Writer(db),
                path: path.to_owned(),
            }),
        };
        store.init(existing)?;
        Ok(store)
    }

    /// Opens an existing store at `path` for reading only (beside a writer in another process).
    ///
    /// # Errors
    /// [`Error::Store`] when there is no file, [`Error::Corrupt`] for one that is not a
    /// witness store.
    pub fn open_read_only(path: &Path) -> Result<RedbWitnessStore> {
        if !path.exists() {
            return Err(Error::Store {
                path: path.display().to_string(),
                reason: "there is no witness store here: the operator writes one when its witness setting names this file (kgents dev up does by default); pass --store to read another".into(),
            });
        }
        let opened = std::panic::catch_unwind(|| {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .open_read_only(path)
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(map_err(path, e.into())),
            Err(_) => return Err(corrupt(path, "the store panicked reading it")),
        };
        let store = RedbWitnessStore {
            inner: Arc::new(Inner {
                db: Db::Reader(db),
                path: path.to_owned(),
            }),
        };
        store.check_format()?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        map_err(&self.inner.path, e.into())
    }

    fn writer(&self) -> Result<&Database> {
        match &self.inner.db {
            Db::Writer(db) => Ok(db),
            Db::Reader(_) => Err(Error::Store {
                path: self.inner.path.display().to_string(),
                reason: "opened read-only; only the operator writes the record".into(),
            }),
        }
    }

    /// Creates the tables and the format marker in a new file; in an existing one, checks the
    /// marker (a redb file of something else is refused, not written into).
    fn init(&self, existing: bool) -> Result<()> {
        if existing {
            return self.check_format();
        }
        let db = self.writer()?;
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        {
            txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            txn.open_table(AGENTS).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(FORMAT, FORMAT_VERSION)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn check_format(&self) -> Result<()> {
        let txn = self.inner.db.begin_read().map_err(|e| self.err(e))?;
        let format = match txn.open_table(META) {
            Ok(meta) => meta
                .get(FORMAT)
                .map_err(|e| self.err(e))?
                .map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.err(e)),
        };
        match format {
            Some(FORMAT_VERSION) => Ok(()),
            Some(other) => Err(corrupt(
                &self.inner.path,
                &format!(
                    "written in witness format {other}, which this build does not read (it reads {FORMAT_VERSION})"
                ),
            )),
            None => Err(corrupt(
                &self.inner.path,
                "a redb database, but not a witness store (no format marker)",
            )),
        }
    }

    /// [`WitnessStore::append`] on the calling thread (it waits for the fsync).
    ///
    /// # Errors
    /// The store's errors; nothing of the batch is kept then.
    pub fn append_blocking(&self, records: Vec<NewRecord>) -> Result<Vec<WitnessRecord>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let db = self.writer()?;
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        let stored = {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            let mut agents = txn.open_table(AGENTS).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut seq = meta
                .get(LAST_SEQ)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value());
            let mut stored = Vec::with_capacity(records.len());
            let mut bytes = Vec::with_capacity(512);
            for record in records {
                seq += 1;
                let record = WitnessRecord {
                    agent: record.agent,
                    at: record.at,
                    seq,
                    kind: record.kind,
                };
                bytes.clear();
                serde_json::to_writer(&mut bytes, &record).map_err(|e| Error::Decode {
                    path: self.inner.path.display().to_string(),
                    reason: e.to_string(),
                })?;
                let key = record.agent.key();
                table
                    .insert((key.as_str(), seq), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
                let count = agents
                    .get(key.as_str())
                    .map_err(|e| self.err(e))?
                    .map_or(0, |v| v.value());
                agents
                    .insert(key.as_str(), count + 1)
                    .map_err(|e| self.err(e))?;
                stored.push(record);
            }
            meta.insert(LAST_SEQ, seq).map_err(|e| self.err(e))?;
            stored
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(stored)
    }

    /// [`WitnessStore::read`] on the calling thread.
    ///
    /// # Errors
    /// The store's errors, [`Error::Decode`] for a record that does not decode.
    pub fn read_blocking(&self, agent: &AgentRef, range: TimeRange) -> Result<Vec<WitnessRecord>> {
        let txn = self.inner.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let key = agent.key();
        let mut out = Vec::new();
        for item in table
            .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (_, value) = item.map_err(|e| self.err(e))?;
            let record: WitnessRecord =
                serde_json::from_slice(value.value()).map_err(|e| Error::Decode {
                    path: self.inner.path.display().to_string(),
                    reason: e.to_string(),
                })?;
            if range.contains(record.at) {
                out.push(record);
            }
        }
        Ok(out)
    }

    fn agents_blocking(&self) -> Result<Vec<Recorded>> {
        let txn = self.inner.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(AGENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (key, count) = item.map_err(|e| self.err(e))?;
            if let Some(agent) = AgentRef::from_key(key.value()) {
                out.push(Recorded {
                    agent,
                    records: count.value(),
                });
            }
        }
        Ok(out)
    }

    fn compact_blocking(
        &self,
        agent: &AgentRef,
        through_seq: u64,
        checkpoint: Option<WitnessRecord>,
    ) -> Result<()> {
        let db = self.writer()?;
        let key = agent.key();
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            let mut agents = txn.open_table(AGENTS).map_err(|e| self.err(e))?;
            let doomed: Vec<u64> = table
                .range((key.as_str(), 0)..=(key.as_str(), through_seq))
                .map_err(|e| self.err(e))?
                .map(|item| item.map(|(k, _)| k.value().1))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for seq in &doomed {
                table
                    .remove((key.as_str(), *seq))
                    .map_err(|e| self.err(e))?;
            }
            let mut count = agents
                .get(key.as_str())
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value())
                .saturating_sub(doomed.len() as u64);
            if let Some(checkpoint) = checkpoint {
                let bytes = serde_json::to_vec(&checkpoint).map_err(|e| Error::Decode {
                    path: self.inner.path.display().to_string(),
                    reason: e.to_string(),
                })?;
                table
                    .insert((key.as_str(), checkpoint.seq), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
                count += 1;
            }
            if count == 0 {
                agents.remove(key.as_str()).map_err(|e| self.err(e))?;
            } else {
                agents
                    .insert(key.as_str(), count)
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

async fn blocking<T: Send + 'static>(
    store: &RedbWitnessStore,
    job: impl FnOnce(RedbWitnessStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    let path = store.inner.path.display().to_string();
    tokio::task::spawn_blocking(move || job(store))
        .await
        .map_err(|e| Error::Store {
            path,
            reason: format!("the store task failed: {e}"),
        })?
}

#[async_trait]
impl WitnessStore for RedbWitnessStore {
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<WitnessRecord>> {
        blocking(self, move |s| s.append_blocking(records)).await
    }

    async fn read(&self, agent: &AgentRef, range: TimeRange) -> Result<Vec<WitnessRecord>> {
        let agent = agent.clone();
        blocking(self, move |s| s.read_blocking(&agent, range)).await
    }

    async fn agents(&self) -> Result<Vec<Recorded>> {
        blocking(self, |s| s.agents_blocking()).await
    }

    async fn compact(
        &self,
        agent: &AgentRef,
        through_seq: u64,
        checkpoint: Option<WitnessRecord>,
    ) -> Result<()> {
        let agent = agent.clone();
        blocking(self, move |s| {
            s.compact_blocking(&agent, through_seq, checkpoint)
        })
        .await
    }

    fn location(&self) -> String {
        self.inner.path.display().to_string()
    }
}

fn corrupt(path: &Path, reason: &str) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    }
}

fn map_err(path: &Path, e: redb::Error) -> Error {
    let at = path.display().to_string();
    match e {
        redb::Error::Corrupted(reason) => Error::Corrupt { path: at, reason },
        redb::Error::RepairAborted => Error::Store {
            path: at,
            reason: "it was not closed cleanly and needs a repair, which a read-only open does not make; open it once with the operator (the writer)".into(),
        },
        redb::Error::DatabaseAlreadyOpen => Error::InUse { path: at },
        redb::Error::UpgradeRequired(version) => Error::Corrupt {
            path: at,
            reason: format!("written in redb file format {version}, which this build does not read"),
        },
        other => {
            let reason = other.to_string();
            if let redb::Error::Io(io) = &other
                && io.kind() == std::io::ErrorKind::InvalidData
            {
                return Error::Corrupt { path: at, reason };
            }
            Error::Store { path: at, reason }
        }
    }
}
