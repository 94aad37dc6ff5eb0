//! The filesystem store: layout, every kind of damaged file, and concurrent writers.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kgents_ghost::store::MAX_FILE_BYTES;
use kgents_ghost::store::codec;
use kgents_ghost::{
    FsGhostStore, GhostStore, Lookup, Miss, MissReason, Query, SnapshotKey, SnapshotKind,
};

use common::{agent_name, answer_to, every_query, stability_snapshot, ts};

fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn every_key() -> Vec<SnapshotKey> {
    let mut keys: Vec<SnapshotKey> = every_query().into_iter().map(Into::into).collect();
    keys.push(SnapshotKey::StabilityScore);
    keys
}

fn good_snapshot(key: &SnapshotKey, seed: u32) -> kgents_ghost::Snapshot {
    match key {
        SnapshotKey::Query(q) => answer_to(q, ts(i64::from(seed)), seed),
        SnapshotKey::StabilityScore => stability_snapshot(f64::from(seed % 11) / 10.0, 7, ts(0)),
    }
}

#[test]
fn writes_exactly_the_seed_tree() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsGhostStore::new(dir.path());
    for key in every_key() {
        store.write(&good_snapshot(&key, 2)).unwrap();
    }
    let files: Vec<String> = all_files(dir.path())
        .iter()
        .map(|p| {
            p.strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        files,
        [
            "_meta/.lock",
            "_meta/stability_score.json",
            "agents/_index.json",
            "agents/l-gent.json",
            "cluster/status.json",
            "pheromones/active.json",
            "pheromones/by_type/DREAM.json",
            "proposals/pending.json",
            "proposals/rejected.json",
        ]
    );
    for key in every_key() {
        assert_eq!(
            store.read(&key),
            Lookup::Hit(good_snapshot(&key, 2)),
            "{key}"
        );
    }
}

/// A damaged file: what was done, its bytes, and the check on the reason the store gives.
type Damaged = (&'static str, Vec<u8>, fn(&MissReason) -> bool);

/// Every way a file can be damaged, with the reason the store must give.
fn damages(key: &SnapshotKey) -> Vec<Damaged> {
    let good = codec::encode(&good_snapshot(key, 1)).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let other_kind = if key.kind() == SnapshotKind::ClusterStatus {
        codec::encode(&answer_to(&Query::PendingProposals, ts(0), 1)).unwrap()
    } else {
        codec::encode(&answer_to(&Query::ClusterStatus, ts(0), 1)).unwrap()
    };
    let mut non_utf8 = good.clone();
    non_utf8[good.len() / 2] = 0xff;
    vec![
        ("empty", Vec::new(), |r| {
            matches!(r, MissReason::Truncated { .. })
        }),
        ("truncated", good[..good.len() - 7].to_vec(), |r| {
            matches!(r, MissReason::Truncated { .. })
        }),
        ("garbage", b"{\"schema_version\": 1, ]]".to_vec(), |r| {
            matches!(r, MissReason::Corrupt { .. })
        }),
        ("not json at all", b"hello".to_vec(), |r| {
            matches!(r, MissReason::Corrupt { .. })
        }),
        (
            "trailing junk",
            [good.clone(), b"}{".to_vec()].concat(),
            |r| matches!(r, MissReason::Corrupt { .. }),
        ),
        ("non-UTF-8", non_utf8, |r| {
            matches!(r, MissReason::NotUtf8 { .. })
        }),
        (
            "newer schema",
            text.replacen("\"schema_version\": 1", "\"schema_version\": 2", 1)
                .into_bytes(),
            |r| {
                *r == MissReason::WrongVersion {
                    found: 2,
                    supported: 1,
                }
            },
        ),
        (
            "no schema version",
            text.replacen("\"schema_version\": 1,", "", 1).into_bytes(),
            |r| matches!(r, MissReason::Corrupt { .. }),
        ),
        ("another kind", other_kind, |r| {
            matches!(r, MissReason::WrongKind { .. })
        }),
        (
            "wrong data type",
            text.replacen("\"taken_at\": \"", "\"taken_at\": \"x", 1)
                .into_bytes(),
            |r| matches!(r, MissReason::Corrupt { .. }),
        ),
    ]
}

#[test]
fn every_damaged_file_of_every_kind_is_a_reasoned_miss_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsGhostStore::new(dir.path());
    for key in every_key() {
        let path = store.path_of(&key);
        for (what, bytes, expected) in damages(&key) {
            store.write(&good_snapshot(&key, 1)).unwrap();
            fs::write(&path, &bytes).unwrap();
            let Lookup::Miss(Miss {
                key: missed,
                reason,
            }) = store.read(&key)
            else {
                panic!("{key} {what}: a damaged file was read as a hit");
            };
            assert_eq!(missed, key);
            assert!(
                expected(&reason),
                "{key} {what}: unexpected reason {reason}"
            );
            assert!(!reason.to_string().is_empty());
            assert_eq!(
                fs::read(&path).unwrap(),
                bytes,
                "{key} {what}: the file was changed"
            );
            // The next write replaces it.
            store.write(&good_snapshot(&key, 3)).unwrap();
            assert_eq!(
                store.read(&key),
                Lookup::Hit(good_snapshot(&key, 3)),
                "{key} {what}"
            );
        }
    }
}

#[test]
fn an_agent_file_holding_another_agent_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsGhostStore::new(dir.path());
    let b_gent = answer_to(&Query::Agent(agent_name("b-gent")), ts(0), 1);
    store.write(&b_gent).unwrap();
    let l_key: SnapshotKey = Query::Agent(agent_name("l-gent")).into();
    fs::copy(dir.path().join("agents/b-gent.json"), store.path_of(&l_key)).unwrap();
    let Lookup::Miss(miss) = store.read(&l_key) else {
        panic!("expected a miss");
    };
    assert_eq!(
        miss.reason,
        MissReason::WrongKey {
            found: Query::Agent(agent_name("b-gent")).into()
        }
    );
}

#[test]
fn out_of_range_content_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsGhostStore::new(dir.path());
    let key = SnapshotKey::StabilityScore;
    fs::create_dir_all(dir.path().join("_meta")).unwrap();
    for score in ["1.5", "-0.1", "1e400"] {
        let text = format!(
            r#"{{"schema_version":1,"kind":"stability_score","taken_at":"2027-01-01T00:00:00Z","data":{{"score":{score},"observations":1}}}}"#
        );
        fs::write(store.path_of(&key), text).unwrap();
        let Lookup::Miss(miss) = store.read(&key) else {
            panic!("score {score} was accepted");
        };
        assert!(
            matches!(
                miss.reason,
                MissReason::Invalid { .. } | MissReason::Corrupt { .. }
            ),
            "{score}: {}",
            miss.reason
        );
        // An unusable score restarts from the initial one instead of failing.
        assert_eq!(store.stability(), kgents_ghost::stability::INITIAL);
    }
}

#[test]
fn oversized_files_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsGhostStore::new(dir.path());
    let key: SnapshotKey = Query::AgentsIndex.into();
    store.write(&good_snapshot(&key, 1)).unwrap();
    // A sparse file: its metadata says 64 MiB + 1 without using the space.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(store.path_of(&key))
        .unwrap();
    file.set_len(MAX_FILE_BYTES + 1).unwrap();
    drop(file);
    assert_eq!(
        store.read(&key),
        Lookup::Miss(Miss {
            key: key.clone(),
            reason: MissReason::TooLarge {
                bytes: MAX_FILE_BYTES + 1,
                limit: MAX_FILE_BYTES
            }
        })
    );
    assert_eq!(
        fs::metadata(store.path_of(&key)).unwrap().len(),
        MAX_FILE_BYTES + 1
    );
}

#[test]
fn missing_files_and_directories_in_the_way_are_misses() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsGhostStore::new(dir.path().join("never-created"));
    for key in every_key() {
        assert_eq!(
            store.read(&key),
            Lookup::Miss(Miss {
                key: key.clone(),
                reason: MissReason::NotFound
            })
        );
    }
    assert!(
        !dir.path().join("never-created").exists(),
        "reads create nothing"
    );

    let store = FsGhostStore::new(dir.path());
    let key: SnapshotKey = Query::ClusterStatus.into();
    fs::create_dir_all(store.path_of(&key)).unwrap();
    assert!(matches!(
        store.read(&key),
        Lookup::Miss(Miss {
            reason: MissReason::NotAFile,
            ..
        })
    ));
    // Writing over a directory fails with an error that names the path; nothing is removed.
    let err = store.write(&good_snapshot(&key, 1)).unwrap_err();
    assert!(err.to_string().contains("status.json"), "{err}");
    assert!(store.path_of(&key).is_dir());
    let leftovers: Vec<_> = all_files(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn concurrent_writers_never_leave_a_torn_file() {
    const THREADS: u32 = 8;
    const WRITES: u32 = 200;
    const STABILITY_EVERY: u32 = 10;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsGhostStore::new(dir.path()));
    let keys: Vec<SnapshotKey> = vec![
        Query::AgentsIndex.into(),
        Query::Agent(agent_name("l-gent")).into(),
        Query::ClusterStatus.into(),
    ];
    for key in &keys {
        store.write(&good_snapshot(key, 0)).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    // A reader runs alongside the writers: every read must be a hit, never a half-written file.
    let reader = {
        let (store, keys, done) = (Arc::clone(&store), keys.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                for key in &keys {
                    if let Lookup::Miss(miss) = store.read(key) {
                        panic!("a concurrent read missed: {miss}");
                    }
                    reads += 1;
                }
            }
            reads
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (store, keys) = (Arc::clone(&store), keys.clone());
            std::thread::spawn(move || {
                for i in 0..WRITES {
                    let key = &keys[(i % 3) as usize];
                    if i % STABILITY_EVERY == 0 {
                        store
                            .update_stability(&[thread % 2 == 0], ts(i64::from(i)))
                            .unwrap();
                    } else {
                        store
                            .write(&good_snapshot(key, thread * 1_000 + i))
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);

    let files = all_files(dir.path());
    assert!(
        files.iter().all(|p| !p.to_string_lossy().ends_with(".tmp")),
        "temporary files left: {files:?}"
    );
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let bytes = fs::read(path).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        assert_eq!(value["schema_version"], 1, "{}", path.display());
    }
    for key in &keys {
        assert!(store.read(key).hit().is_some(), "{key}");
    }
    // The locked read-modify-write lost no update.
    let stability = store.stability();
    assert_eq!(
        stability.observations,
        u64::from(THREADS * WRITES / STABILITY_EVERY)
    );
}
