//! One suite, every store: the embedded redb file and a real PostgreSQL server (started by
//! `scripts/postgres`, installed from Debian's packages when missing; the test fails with the
//! reason when it cannot be started). Plus the embedded store's bad input: a corrupt file is
//! refused and kept, a redb file of something else is refused, a reader beside the writer sees
//! its commits.

use std::path::Path;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use kgents_seance::{
    AgentRef, Error, NewRecord, PgWitnessStore, RecordKind, RedbWitnessStore, Retention, TimeRange,
    WitnessStore, apply_retention, reconstruct,
};
use serde_json::json;

fn t(secs: i64) -> Timestamp {
    "2026-12-01T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_secs(secs)
}

fn spec(agent: &AgentRef, at: i64, replicas: i64) -> NewRecord {
    let diff = if replicas == 1 {
        json!([{"op": "replace", "path": "", "value": {"replicas": 1}}])
    } else {
        json!([{"op": "replace", "path": "/replicas", "value": replicas}])
    };
    NewRecord {
        agent: agent.clone(),
        at: t(at),
        kind: RecordKind::SpecChanged {
            generation: Some(replicas),
            diff,
        },
    }
}

/// The contract every store keeps. `ns` keeps runs apart in a shared database.
async fn suite(store: &dyn WitnessStore, ns: &str) {
    let a = AgentRef::new(ns, "a-gent");
    let b = AgentRef::new(ns, "b-gent");
    assert!(store.append(Vec::new()).await.unwrap().is_empty());

    // one batch, two agents: sequence numbers increase in batch order
    let stored = store
        .append(vec![
            spec(&a, 0, 1),
            spec(&b, 0, 1),
            NewRecord {
                agent: a.clone(),
                at: t(1),
                kind: RecordKind::PhaseChanged {
                    from: None,
                    to: Some("Running".into()),
                },
            },
        ])
        .await
        .unwrap();
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq), "{stored:?}");
    let more = store
        .append((2..10).map(|i| spec(&a, i, i)).collect())
        .await
        .unwrap();
    assert!(more[0].seq > stored[2].seq);

    // reads: one agent's, in order, exactly as appended, with time ranges
    let all = store.read(&a, TimeRange::ALL).await.unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[0], stored[0]);
    assert_eq!(all[1], stored[2]);
    assert_eq!(&all[2..], &more[..]);
    let window = store
        .read(
            &a,
            TimeRange {
                since: Some(t(3)),
                until: Some(t(5)),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|r| r.at).collect::<Vec<_>>(),
        [t(3), t(4), t(5)]
    );
    assert!(
        store
            .read(&AgentRef::new(ns, "nobody"), TimeRange::ALL)
            .await
            .unwrap()
            .is_empty()
    );
    let state = reconstruct(&a, &all, Some(t(4))).unwrap();
    assert_eq!(state.spec, json!({"replicas": 4}));
    assert_eq!(state.status["phase"], "Running");

    // the agents with history, with their counts
    let agents = store.agents().await.unwrap();
    let ours: Vec<_> = agents.iter().filter(|r| r.agent.namespace == ns).collect();
    assert_eq!(ours.len(), 2);
    assert_eq!((&ours[0].agent, ours[0].records), (&a, 10));
    assert_eq!((&ours[1].agent, ours[1].records), (&b, 1));

    // retention by count: a's oldest records fold into a checkpoint, every later state kept
    let retention = Retention {
        max_records: Some(4),
        max_age: None,
    };
    let report = apply_retention(store, &retention, t(100)).await.unwrap();
    assert!(report.compacted >= 1, "{report:?}");
    let kept = store.read(&a, TimeRange::ALL).await.unwrap();
    assert_eq!(kept.len(), 4);
    assert!(matches!(kept[0].kind, RecordKind::Checkpoint { .. }));
    for at in 6..10 {
        assert_eq!(
            reconstruct(&a, &kept, Some(t(at))).unwrap(),
            reconstruct(&a, &all, Some(t(at))).unwrap()
        );
    }
    let e = reconstruct(&a, &kept, Some(t(2))).unwrap_err();
    assert!(e.to_string().contains("starts at"), "{e}");
    // appends continue after the compaction, in order
    let after = store.append(vec![spec(&a, 20, 20)]).await.unwrap();
    let kept = store.read(&a, TimeRange::ALL).await.unwrap();
    assert_eq!(kept.last(), after.last());
    assert_eq!(
        store
            .agents()
            .await
            .unwrap()
            .iter()
            .find(|r| r.agent == a)
            .unwrap()
            .records,
        5
    );

    // retention by age forgets a deleted agent
    store
        .append(vec![NewRecord {
            agent: b.clone(),
            at: t(2),
            kind: RecordKind::Deleted,
        }])
        .await
        .unwrap();
    let by_age = Retention {
        max_records: None,
        max_age: Some(std::time::Duration::from_secs(3600)),
    };
    apply_retention(store, &by_age, t(30 * 3600)).await.unwrap();
    assert!(store.read(&b, TimeRange::ALL).await.unwrap().is_empty());
    assert!(!store.agents().await.unwrap().iter().any(|r| r.agent == b));
    // a lives on: all of its records folded into one checkpoint of its latest state
    let left = store.read(&a, TimeRange::ALL).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        reconstruct(&a, &left, None).unwrap().spec,
        json!({"replicas": 20})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_the_contract_and_refuses_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness").join("witness.redb");
    {
        let store = RedbWitnessStore::open(&path).unwrap();
        suite(&store, "default").await;
    }
    // reopened: everything is still there; a reader opens beside the writer and sees its
    // commits
    let writer = RedbWitnessStore::open(&path).unwrap();
    let a = AgentRef::new("default", "a-gent");
    assert_eq!(writer.read(&a, TimeRange::ALL).await.unwrap().len(), 1);
    let reader = RedbWitnessStore::open_read_only(&path).unwrap();
    writer.append(vec![spec(&a, 40, 40)]).await.unwrap();
    let seen = reader.read(&a, TimeRange::ALL).await.unwrap();
    assert_eq!(seen.len(), 2);
    let e = reader.append(vec![spec(&a, 41, 41)]).await.unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    drop((writer, reader));

    corrupt_files_are_refused_and_kept(dir.path());
}

fn corrupt_files_are_refused_and_kept(dir: &Path) {
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let path = dir.join("garbage.redb");
    std::fs::write(&path, &garbage).unwrap();
    for e in [
        RedbWitnessStore::open(&path).unwrap_err(),
        RedbWitnessStore::open_read_only(&path).unwrap_err(),
    ] {
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("left untouched"), "{e}");
    }
    assert!(
        std::fs::read(&path).unwrap() == garbage,
        "the corrupt file was changed"
    );

    // a redb database of something else: refused, not written into
    let other = dir.join("other.redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("theirs");
            txn.open_table(table).unwrap().insert("k", 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let e = RedbWitnessStore::open(&other).unwrap_err();
    assert!(e.to_string().contains("not a witness store"), "{e}");
    // its tables are as they were: nothing of the witness store was created in it
    let db = redb::Database::open(&other).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert_eq!(tables, ["theirs"]);

    // a missing file is not created by a reader
    let missing = dir.join("missing.redb");
    let e = RedbWitnessStore::open_read_only(&missing).unwrap_err();
    assert!(e.to_string().contains("no witness store"), "{e}");
    assert!(!missing.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_same_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/postgres");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/postgres could not start PostgreSQL:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let store = PgWitnessStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // a namespace of this run's own: the database outlives test runs
    let ns = format!("suite-{}", Timestamp::now().as_nanosecond());
    suite(&store, &ns).await;
    let bad = PgWitnessStore::connect("postgres://kgents@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("cannot connect"), "{bad}");
}
