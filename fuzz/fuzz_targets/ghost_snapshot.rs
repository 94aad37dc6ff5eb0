//! Ghost cache files: decoding a snapshot envelope, and reading the status digest.
//!
//! The input is a cache file's bytes. The key it is read under is taken from the file itself
//! (its `kind`, and the agent name or pheromone type inside), as the store would look it up.
//! Properties: decoding never panics (every bad file is a reasoned miss); a file that decodes
//! is a valid snapshot that encodes again, and encode → decode gives it back unchanged; the
//! same bytes read under another kind's key are a miss; a decoded status digest's view counts
//! what it holds and its heats are intensities in [0, 1].
#![no_main]

use kgents_core::field::PheromoneType;
use kgents_fuzz::now;
use kgents_ghost::store::codec::{decode, encode};
use kgents_ghost::{AgentName, MissReason, Payload, Query, SnapshotKey, SnapshotKind};
use libfuzzer_sys::fuzz_target;

/// The key a store would read `value` under, from the file's own `kind` and data.
fn key_of(value: &serde_json::Value) -> SnapshotKey {
    let data = &value["data"];
    match value["kind"].as_str().unwrap_or_default() {
        "agent_status" => data["summary"]["name"]
            .as_str()
            .and_then(|n| AgentName::new(n).ok())
            .map(|name| Query::Agent(name).into())
            .unwrap_or(Query::AgentsIndex.into()),
        "pheromones_by_type" => {
            serde_json::from_value::<PheromoneType>(data["pheromone_type"].clone())
                .map(|t| Query::PheromonesByType(t).into())
                .unwrap_or(Query::ActivePheromones.into())
        }
        "agents_index" => Query::AgentsIndex.into(),
        "active_pheromones" => Query::ActivePheromones.into(),
        "pending_proposals" => Query::PendingProposals.into(),
        "rejected_proposals" => Query::RejectedProposals.into(),
        "cluster_status" => Query::ClusterStatus.into(),
        "status_digest" => Query::StatusDigest.into(),
        _ => SnapshotKey::StabilityScore,
    }
}

fuzz_target!(|data: &[u8]| {
    let key = serde_json::from_slice::<serde_json::Value>(data)
        .map(|v| key_of(&v))
        .unwrap_or(SnapshotKey::StabilityScore);
    let decoded = decode(data, &key);

    // Another kind's key never reads these bytes.
    let other: SnapshotKey = if key.kind() == SnapshotKind::StabilityScore {
        Query::ClusterStatus.into()
    } else {
        SnapshotKey::StabilityScore
    };
    match decode(data, &other) {
        Ok(snapshot) => panic!("read under the wrong key {other}: {snapshot:?}"),
        Err(reason) => {
            let _ = reason.to_string();
        }
    }

    let snapshot = match decoded {
        Ok(snapshot) => snapshot,
        Err(reason) => {
            // A miss always explains itself.
            assert!(!reason.to_string().is_empty());
            assert!(!matches!(reason, MissReason::NotFound));
            return;
        }
    };
    assert_eq!(snapshot.key(), key);
    assert_eq!(snapshot.problem(), None);
    let bytes = encode(&snapshot).expect("a decoded snapshot encodes");
    let again = decode(&bytes, &key).expect("an encoded snapshot decodes");
    assert_eq!(again, snapshot, "encode → decode round trip");
    assert_eq!(encode(&again).expect("encodes"), bytes);

    if let Payload::StatusDigest(digest) = &snapshot.payload {
        for namespace in [
            None,
            digest.namespaces.first().map(|d| d.namespace.as_str()),
        ] {
            for at in [snapshot.taken_at, now()] {
                let view = digest.view(namespace, snapshot.taken_at, at);
                let counted: usize = view.field.heat.iter().map(|h| h.count).sum();
                assert_eq!(counted, view.field.live, "{view:?}");
                for heat in &view.field.heat {
                    assert!(
                        heat.max.is_finite() && (0.0..=1.0).contains(&heat.max),
                        "{view:?}"
                    );
                    assert!(heat.sum.is_finite() && heat.sum >= 0.0, "{view:?}");
                }
            }
        }
    }
});
