//! Model-based test of `FsGhostStore`: random sequences of writes, reads, damage, deletions,
//! stability updates and re-opens, checked against an in-memory model after every step.

mod common;

use std::collections::BTreeMap;
use std::fs;

use jiff::Timestamp;
use kgents_ghost::store::{MAX_FILE_BYTES, codec};
use kgents_ghost::{
    FsGhostStore, GhostStore, Lookup, MissReason, Payload, Query, Snapshot, SnapshotKey,
    StabilityScore,
};
use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use common::{agent_name, answer_to, pheromone_type, stability_snapshot};

/// Ways to damage a file on disk behind the store's back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    Truncate,
    Empty,
    Garbage,
    NotUtf8,
    FutureVersion(u32),
    Oversize,
}

impl Damage {
    fn matches(self, reason: &MissReason) -> bool {
        match self {
            Self::Truncate | Self::Empty => matches!(reason, MissReason::Truncated { .. }),
            Self::Garbage => matches!(reason, MissReason::Corrupt { .. }),
            Self::NotUtf8 => matches!(reason, MissReason::NotUtf8 { .. }),
            Self::FutureVersion(v) => {
                *reason
                    == MissReason::WrongVersion {
                        found: v,
                        supported: 1,
                    }
            }
            Self::Oversize => matches!(reason, MissReason::TooLarge { .. }),
        }
    }
}

/// What the model expects under a key.
#[derive(Debug, Clone)]
enum Expected {
    Good(Snapshot),
    Damaged(Damage),
}

#[derive(Debug, Clone)]
enum Step {
    Write(Snapshot),
    Read(SnapshotKey),
    Damage(SnapshotKey, Damage),
    Delete(SnapshotKey),
    UpdateStability(Vec<bool>, Timestamp),
    Reopen,
}

fn keys() -> Vec<SnapshotKey> {
    vec![
        Query::AgentsIndex.into(),
        Query::Agent(agent_name("l-gent")).into(),
        Query::Agent(agent_name("b-gent.v2")).into(),
        Query::ActivePheromones.into(),
        Query::PheromonesByType(pheromone_type("DREAM")).into(),
        Query::PheromonesByType(pheromone_type("REVIEW_REQUEST")).into(),
        Query::PendingProposals.into(),
        Query::RejectedProposals.into(),
        Query::ClusterStatus.into(),
        Query::StatusDigest.into(),
        SnapshotKey::StabilityScore,
    ]
}

fn key_strategy() -> BoxedStrategy<SnapshotKey> {
    proptest::sample::select(keys()).boxed()
}

fn timestamp_strategy() -> BoxedStrategy<Timestamp> {
    (-1_000_000i64..1_000_000, 0i32..1_000_000_000)
        .prop_map(|(s, ns)| Timestamp::new(1_800_000_000 + s, ns).expect("in range"))
        .boxed()
}

fn snapshot_strategy() -> BoxedStrategy<Snapshot> {
    (key_strategy(), timestamp_strategy(), any::<u32>())
        .prop_map(|(key, taken_at, seed)| match key {
            SnapshotKey::Query(q) => answer_to(&q, taken_at, seed),
            SnapshotKey::StabilityScore => {
                stability_snapshot(f64::from(seed % 1_001) / 1_000.0, u64::from(seed), taken_at)
            }
        })
        .boxed()
}

fn damage_strategy() -> BoxedStrategy<Damage> {
    prop_oneof![
        Just(Damage::Truncate),
        Just(Damage::Empty),
        Just(Damage::Garbage),
        Just(Damage::NotUtf8),
        (2u32..1_000).prop_map(Damage::FutureVersion),
        Just(Damage::Oversize),
    ]
    .boxed()
}

struct Model;

impl ReferenceStateMachine for Model {
    type State = BTreeMap<SnapshotKey, Expected>;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Self::State> {
        Just(BTreeMap::new()).boxed()
    }

    fn transitions(_: &Self::State) -> BoxedStrategy<Step> {
        prop_oneof![
            4 => snapshot_strategy().prop_map(Step::Write),
            4 => key_strategy().prop_map(Step::Read),
            2 => (key_strategy(), damage_strategy()).prop_map(|(k, d)| Step::Damage(k, d)),
            1 => key_strategy().prop_map(Step::Delete),
            1 => (proptest::collection::vec(any::<bool>(), 0..6), timestamp_strategy())
                .prop_map(|(o, t)| Step::UpdateStability(o, t)),
            1 => Just(Step::Reopen),
        ]
        .boxed()
    }

    fn apply(mut state: Self::State, step: &Step) -> Self::State {
        match step {
            Step::Write(snapshot) => {
                state.insert(snapshot.key(), Expected::Good(snapshot.clone()));
            }
            Step::Damage(key, damage) => {
                state.insert(key.clone(), Expected::Damaged(*damage));
            }
            Step::Delete(key) => {
                state.remove(key);
            }
            Step::UpdateStability(outcomes, now) => {
                let previous = match state.get(&SnapshotKey::StabilityScore) {
                    Some(Expected::Good(Snapshot {
                        payload: Payload::StabilityScore(s),
                        ..
                    })) => *s,
                    _ => kgents_ghost::stability::INITIAL,
                };
                let next = previous.observe_all(outcomes);
                state.insert(
                    SnapshotKey::StabilityScore,
                    Expected::Good(Snapshot::new(*now, Payload::StabilityScore(next))),
                );
            }
            Step::Read(_) | Step::Reopen => {}
        }
        state
    }
}

struct Sut {
    dir: tempfile::TempDir,
    store: FsGhostStore,
}

/// Equal snapshots, allowing the last-bit float error of JSON parsing in computed stability
/// scores (serde_json parses floats with best-effort, not correctly rounded, precision).
fn same(actual: &Snapshot, expected: &Snapshot) -> bool {
    match (&actual.payload, &expected.payload) {
        (
            Payload::StabilityScore(StabilityScore {
                score: a,
                observations: n,
            }),
            Payload::StabilityScore(StabilityScore {
                score: b,
                observations: m,
            }),
        ) => actual.taken_at == expected.taken_at && n == m && (a - b).abs() < 1e-12,
        _ => actual == expected,
    }
}

fn check_read(store: &FsGhostStore, key: &SnapshotKey, expected: Option<&Expected>) {
    let got = store.read(key);
    match (expected, &got) {
        (None, Lookup::Miss(miss)) => assert_eq!(miss.reason, MissReason::NotFound, "{key}"),
        (Some(Expected::Good(want)), Lookup::Hit(have)) => {
            assert!(same(have, want), "{key}: read {have:?}, expected {want:?}");
        }
        (Some(Expected::Damaged(damage)), Lookup::Miss(miss)) => {
            assert!(
                damage.matches(&miss.reason),
                "{key}: {damage:?} read as {}",
                miss.reason
            );
        }
        _ => panic!("{key}: read {got:?}, expected {expected:?}"),
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Self;
    type Reference = Model;

    fn init_test(_: &BTreeMap<SnapshotKey, Expected>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsGhostStore::new(dir.path().join("ghost"));
        Self { dir, store }
    }

    fn apply(sut: Self, model: &BTreeMap<SnapshotKey, Expected>, step: Step) -> Self {
        match step {
            Step::Write(snapshot) => sut.store.write(&snapshot).expect("write"),
            Step::Read(key) => check_read(&sut.store, &key, model.get(&key)),
            Step::Damage(key, damage) => {
                let path = sut.store.path_of(&key);
                fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                let sample = match &key {
                    SnapshotKey::Query(q) => answer_to(q, Timestamp::UNIX_EPOCH, 7),
                    SnapshotKey::StabilityScore => {
                        stability_snapshot(0.5, 1, Timestamp::UNIX_EPOCH)
                    }
                };
                let good = codec::encode(&sample).expect("encode");
                let bytes = match damage {
                    Damage::Truncate => good[..good.len() / 2].to_vec(),
                    Damage::Empty => Vec::new(),
                    Damage::Garbage => b"{\"schema_version\": 1, \"kind\": [}".to_vec(),
                    Damage::NotUtf8 => [b"{\"a\": \"".as_slice(), &[0xc3, 0x28], b"\"}"].concat(),
                    // Files are pretty-printed, except the compact status digest.
                    Damage::FutureVersion(v) => String::from_utf8(good)
                        .expect("utf-8")
                        .replacen(
                            "\"schema_version\": 1",
                            &format!("\"schema_version\": {v}"),
                            1,
                        )
                        .replacen(
                            "\"schema_version\":1",
                            &format!("\"schema_version\":{v}"),
                            1,
                        )
                        .into_bytes(),
                    Damage::Oversize => good,
                };
                fs::write(&path, &bytes).expect("damage");
                if damage == Damage::Oversize {
                    let file = fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .expect("open");
                    file.set_len(MAX_FILE_BYTES + 1).expect("grow");
                }
            }
            Step::Delete(key) => match fs::remove_file(sut.store.path_of(&key)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("delete {key}: {e}"),
            },
            Step::UpdateStability(outcomes, now) => {
                let score = sut.store.update_stability(&outcomes, now).expect("update");
                let Some(Expected::Good(Snapshot {
                    payload: Payload::StabilityScore(want),
                    ..
                })) = model.get(&SnapshotKey::StabilityScore)
                else {
                    panic!("the model always holds a score after an update");
                };
                assert_eq!(score.observations, want.observations);
                assert!((score.score - want.score).abs() < 1e-12);
            }
            Step::Reopen => {
                let root = sut.store.root().to_path_buf();
                return Self {
                    dir: sut.dir,
                    store: FsGhostStore::new(root),
                };
            }
        }
        sut
    }

    fn check_invariants(sut: &Self, model: &BTreeMap<SnapshotKey, Expected>) {
        for key in keys() {
            check_read(&sut.store, &key, model.get(&key));
        }
        // Nothing but the lock file and the keys' files is ever left in the tree.
        let mut stack = vec![sut.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let name = path.file_name().expect("name").to_string_lossy();
                    assert!(
                        name == ".lock" || name.ends_with(".json"),
                        "stray file {path:?}"
                    );
                }
            }
        }
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: 256,
        .. Config::default()
    })]

    #[test]
    fn fs_store_matches_the_model(sequential 1..24 => Sut);
}
