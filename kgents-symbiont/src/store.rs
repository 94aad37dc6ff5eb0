//! The Memory's storage: the [`MemoryStore`] trait and [`RedbStore`], its implementation on a
//! redb file.
//!
//! Every write is one redb transaction committed with `Durability::Immediate` (redb's default:
//! the commit returns after fsync), so a write the HTTP layer acknowledges survives a crash or
//! SIGKILL. The bytes used are kept in the same transaction as the write they account for, so
//! the count cannot drift from the data.
//!
//! A file that is not a readable redb database is never repaired by deleting or truncating it:
//! [`RedbStore::open`] refuses with [`Error::Corrupt`] and leaves it as it is.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::journal::{JournalEntry, JournalRecord};
use crate::limits::{self, Usage};
use crate::{Error, Result};

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USED: &str = "used";

/// A key listed by [`MemoryStore::list`], with its value's size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listed {
    /// The key.
    pub key: String,
    /// Its value's size in bytes.
    pub size: usize,
}

/// The Memory's key-value store and append-only journal. Implementations are durable: a call
/// that returns `Ok` has reached stable storage.
pub trait MemoryStore: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key` (replacing any value), returning the usage after it.
    fn put(&self, key: &str, value: &[u8]) -> Result<Usage>;
    /// Removes `key`; whether it existed.
    fn delete(&self, key: &str) -> Result<bool>;
    /// Keys starting with `prefix`, in order, at most `limit`, starting after `after`.
    fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Listed>>;
    /// Appends a journal record stamped `at`.
    fn append(&self, entry: JournalEntry, at: jiff::Timestamp) -> Result<JournalRecord>;
    /// Journal records with a sequence number above `after`, oldest first, at most `limit`.
    fn journal(&self, after: u64, limit: usize) -> Result<Vec<JournalRecord>>;
    /// The bytes used and the limit.
    fn usage(&self) -> Result<Usage>;
}

/// Settings of a [`RedbStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLimits {
    /// The Memory's size limit in bytes.
    pub size: u64,
    /// The largest value (and journal record) in bytes.
    pub max_value: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            size: 256 << 20,
            max_value: limits::DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// A [`MemoryStore`] in one redb file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    limits: StoreLimits,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// redb's page cache: small, since the sidecar's resident memory must stay small and values are
/// read once per request.
const CACHE_BYTES: usize = 4 << 20;

impl RedbStore {
    /// Opens the store at `path`, creating it (and its parent directory) when absent. A file
    /// that exists is checked page by page; a corrupt one is refused with [`Error::Corrupt`]
    /// and kept untouched.
    pub fn open(path: &Path, limits: StoreLimits) -> Result<RedbStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::Store {
                path: path.to_owned(),
                reason: format!("cannot create the directory {}: {e}", parent.display()),
            })?;
        }
        let existing = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        // redb may panic on a file altered outside it when not checking integrity; with the
        // check on it reports corruption, and the panic guard turns any remaining panic into the
        // same refusal instead of a crash loop without a message.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .set_check_integrity_on_open(existing)
                .create(path)
        }));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(map_err(path, e.into())),
            Err(_) => {
                return Err(Error::Corrupt {
                    path: path.to_owned(),
                    reason: "the store panicked reading it".into(),
                });
            }
        };
        let store = RedbStore {
            db,
            path: path.to_owned(),
            limits,
        };
        // Create the tables once, so reads never meet a missing table.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        {
            txn.open_table(ENTRIES).map_err(|e| store.err(e))?;
            txn.open_table(JOURNAL).map_err(|e| store.err(e))?;
            txn.open_table(META).map_err(|e| store.err(e))?;
        }
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits.
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        map_err(&self.path, e.into())
    }

    /// Refuses a write of `value_len` bytes the volume has no room for
    /// ([`Error::VolumeFull`]), before redb meets an out-of-space error mid-commit (after
    /// which it refuses every operation, reads included, until the store is reopened). Deletes
    /// are not checked: [`limits::VOLUME_RESERVE_BYTES`] is kept for them.
    fn check_volume(&self, txn: &redb::WriteTransaction, value_len: usize) -> Result<()> {
        let free = match rustix::fs::statvfs(&self.path) {
            Ok(fs) => fs.f_bavail.saturating_mul(fs.f_frsize),
            // A volume that cannot say how full it is: let the write try.
            Err(_) => return Ok(()),
        };
        if limits::fits_on_volume(value_len, free, 0) {
            return Ok(());
        }
        // Short of room: the pages the file holds but no longer uses (freed by deletes) are
        // written again before the file grows.
        let reusable = txn
            .stats()
            .map(|stats| {
                let used = stats
                    .allocated_pages()
                    .saturating_mul(stats.page_size() as u64);
                let held = std::fs::metadata(&self.path)
                    .map(|m| std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512))
                    .unwrap_or(0);
                held.saturating_sub(used)
            })
            .unwrap_or(0);
        if limits::fits_on_volume(value_len, free, reusable) {
            return Ok(());
        }
        Err(Error::VolumeFull {
            path: self.path.clone(),
            free,
            needed: value_len as u64,
        })
    }
}

fn map_err(path: &Path, e: redb::Error) -> Error {
    match e {
        redb::Error::Corrupted(reason) => Error::Corrupt {
            path: path.to_owned(),
            reason,
        },
        redb::Error::DatabaseAlreadyOpen => Error::InUse {
            path: path.to_owned(),
        },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => Error::OutOfSpace {
            path: path.to_owned(),
            source: io,
        },
        redb::Error::PreviousIo => Error::Store {
            path: path.to_owned(),
            reason: "an earlier write failed (the volume may have run out of space), and the store refuses further use until it is reopened: restart the symbiont (nothing acknowledged is lost)".into(),
        },
        redb::Error::UpgradeRequired(version) => Error::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "written in redb file format {version}, which this build does not read"
            ),
        },
        other => {
            let reason = other.to_string();
            // redb reports a file that is not a database (bad magic number) as an I/O error of
            // kind InvalidData.
            if let redb::Error::Io(io) = &other
                && io.kind() == std::io::ErrorKind::InvalidData
            {
                return Error::Corrupt {
                    path: path.to_owned(),
                    reason,
                };
            }
            Error::Store {
                path: path.to_owned(),
                reason,
            }
        }
    }
}

impl MemoryStore for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        limits::check_key(key)?;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(ENTRIES).map_err(|e| self.err(e))?;
        let value = table.get(key).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<Usage> {
        limits::check_key(key)?;
        limits::check_value(value, self.limits.max_value)?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        self.check_volume(&txn, key.len() + value.len())?;
        let usage = {
            let mut entries = txn.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let used = meta
                .get(USED)
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
                .unwrap_or(0);
            let old_cost = entries
                .get(key)
                .map_err(|e| self.err(e))?
                .map(|v| limits::entry_cost(key, v.value().len()))
                .unwrap_or(0);
            let usage = Usage {
                used,
                limit: self.limits.size,
            }
            .replace(old_cost, limits::entry_cost(key, value.len()))?;
            entries.insert(key, value).map_err(|e| self.err(e))?;
            meta.insert(USED, usage.used).map_err(|e| self.err(e))?;
            usage
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(usage)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        limits::check_key(key)?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = {
            let mut entries = txn.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let removed = entries
                .remove(key)
                .map_err(|e| self.err(e))?
                .map(|v| limits::entry_cost(key, v.value().len()));
            if let Some(cost) = removed {
                let used = meta
                    .get(USED)
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value())
                    .unwrap_or(0);
                meta.insert(USED, used.saturating_sub(cost))
                    .map_err(|e| self.err(e))?;
            }
            removed.is_some()
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }

    fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Listed>> {
        limits::check_prefix(prefix)?;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(ENTRIES).map_err(|e| self.err(e))?;
        let start = match after {
            Some(a) if a >= prefix => a,
            _ => prefix,
        };
        let mut out = Vec::new();
        for item in table.range(start..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if after == Some(key) {
                continue;
            }
            if out.len() == limit {
                break;
            }
            out.push(Listed {
                key: key.to_owned(),
                size: v.value().len(),
            });
        }
        Ok(out)
    }

    fn append(&self, entry: JournalEntry, at: jiff::Timestamp) -> Result<JournalRecord> {
        entry.check()?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let record = {
            let mut journal = txn.open_table(JOURNAL).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let seq = journal
                .last()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1);
            let record = entry.into_record(seq, at);
            let bytes = record.encode();
            limits::check_value(&bytes, self.limits.max_value)?;
            self.check_volume(&txn, bytes.len())?;
            let used = meta
                .get(USED)
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
                .unwrap_or(0);
            let usage = Usage {
                used,
                limit: self.limits.size,
            }
            .replace(0, bytes.len() as u64 + limits::ENTRY_OVERHEAD)?;
            journal
                .insert(seq, bytes.as_slice())
                .map_err(|e| self.err(e))?;
            meta.insert(USED, usage.used).map_err(|e| self.err(e))?;
            record
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(record)
    }

    fn journal(&self, after: u64, limit: usize) -> Result<Vec<JournalRecord>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(JOURNAL).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table
            .range(after.saturating_add(1)..)
            .map_err(|e| self.err(e))?
            .take(limit)
        {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(JournalRecord::decode(v.value())?);
        }
        Ok(out)
    }

    fn usage(&self) -> Result<Usage> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let used = meta
            .get(USED)
            .map_err(|e| self.err(e))?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(Usage {
            used,
            limit: self.limits.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir, size: u64) -> RedbStore {
        RedbStore::open(
            &dir.path().join("memory.redb"),
            StoreLimits {
                size,
                max_value: 1000,
            },
        )
        .unwrap()
    }

    #[test]
    fn put_get_delete_list_and_usage() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, 10_000);
        assert_eq!(s.get("a").unwrap(), None);
        s.put("notes:1", b"one").unwrap();
        s.put("notes:2", b"two").unwrap();
        s.put("other", b"x").unwrap();
        assert_eq!(s.get("notes:1").unwrap().as_deref(), Some(&b"one"[..]));
        let listed = s.list("notes:", None, 10).unwrap();
        assert_eq!(
            listed.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            ["notes:1", "notes:2"]
        );
        assert_eq!(s.list("notes:", Some("notes:1"), 10).unwrap().len(), 1);
        assert_eq!(s.list("", None, 2).unwrap().len(), 2);
        let used = s.usage().unwrap().used;
        assert_eq!(used, 3 * limits::ENTRY_OVERHEAD + 7 + 3 + 7 + 3 + 5 + 1);
        s.put("other", b"xyz").unwrap();
        assert_eq!(s.usage().unwrap().used, used + 2);
        assert!(s.delete("other").unwrap());
        assert!(!s.delete("other").unwrap());
        assert_eq!(s.usage().unwrap().used, used - 6 - limits::ENTRY_OVERHEAD);
        assert!(s.get("a/b").is_err());
    }

    #[test]
    fn a_full_memory_answers_507_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir, 200);
        s.put("a", &[1; 100]).unwrap();
        let e = s.put("b", &[2; 100]).unwrap_err();
        assert_eq!(e.status(), 507);
        assert!(e.to_string().contains("of 200 bytes"), "{e}");
        assert_eq!(s.get("b").unwrap(), None);
        assert_eq!(s.get("a").unwrap().unwrap().len(), 100);
        // replacing with a smaller value and deleting still work when full
        s.put("a", &[1; 10]).unwrap();
        s.put("b", &[2; 100]).unwrap();
        assert_eq!(s.put("c", &[0; 1001]).unwrap_err().status(), 413);
    }

    #[test]
    fn the_journal_appends_in_order_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let at: jiff::Timestamp = "2026-12-03T04:00:00Z".parse().unwrap();
        {
            let s = store(&dir, 10_000);
            for i in 0..5 {
                let r = s
                    .append(
                        JournalEntry {
                            kind: "thought".into(),
                            data: serde_json::json!(i),
                        },
                        at,
                    )
                    .unwrap();
                assert_eq!(r.seq, i + 1);
            }
            s.put("k", b"v").unwrap();
        }
        let s = store(&dir, 10_000);
        let records = s.journal(2, 10).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(records[0].data, serde_json::json!(2));
        assert_eq!(s.journal(0, 2).unwrap().len(), 2);
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_corrupt_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.redb");
        let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&path, &garbage).unwrap();
        let e = RedbStore::open(&path, StoreLimits::default()).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("left untouched"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage);

        // a real store with a page overwritten in the middle
        let path2 = dir.path().join("damaged.redb");
        {
            let s = RedbStore::open(&path2, StoreLimits::default()).unwrap();
            for i in 0..200 {
                s.put(&format!("k{i}"), &[i as u8; 500]).unwrap();
            }
        }
        let mut bytes = std::fs::read(&path2).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 4096] {
            *b ^= 0x5a;
        }
        std::fs::write(&path2, &bytes).unwrap();
        match RedbStore::open(&path2, StoreLimits::default()) {
            Err(e) => {
                assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
                assert_eq!(std::fs::read(&path2).unwrap(), bytes);
            }
            // the damaged page may be a free one; then every key must still read back
            Ok(s) => {
                for i in 0..200 {
                    assert_eq!(s.get(&format!("k{i}")).unwrap().unwrap(), [i as u8; 500]);
                }
            }
        }
    }
}
