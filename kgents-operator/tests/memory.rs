//! The Memory controller on a real control plane (with kube-controller-manager, so owner
//! references are garbage-collected and claims bind to volumes): DELETE storage goes with its
//! Memory, RETAIN storage stays, COMPOST storage is marked and swept after its grace window.

mod support;
mod support_controllers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ConfigMap, HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kgents_core::clock::{Clock, ManualClock};
use kgents_crds::memory::MemoryPhase;
use kgents_crds::{Agent, Memory};
use kgents_operator::memory::{self, MemoryOptions};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use support::eventually;
use support_controllers::{Running, namespace, operator_context};

const CLASS: &str = "kgents-test-manual";

fn memory_object(name: &str, retention: &str) -> Memory {
    serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1",
        "kind": "Memory",
        "metadata": {"name": name},
        "spec": {
            "owner": "scout",
            "type": "RELATIONAL",
            "size": "1Mi",
            "storageClassName": CLASS,
            "retentionPolicy": retention,
            "compostAfterHours": 1,
            "sharedWith": ["lens"]
        }
    }))
    .expect("a valid Memory")
}

/// A hostPath volume reserved for claim `namespace/claim` (there is no provisioner).
async fn volume_for(admin: &kube::Client, namespace: &str, claim: &str) {
    let volumes: Api<PersistentVolume> = Api::all(admin.clone());
    let volume = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(format!("{namespace}-{claim}")),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([(
                "storage".to_owned(),
                Quantity("1Mi".to_owned()),
            )])),
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: Some(CLASS.to_owned()),
            host_path: Some(HostPathVolumeSource {
                path: format!("/tmp/kgents-test-volumes/{namespace}/{claim}"),
                ..HostPathVolumeSource::default()
            }),
            claim_ref: Some(ObjectReference {
                namespace: Some(namespace.to_owned()),
                name: Some(claim.to_owned()),
                ..ObjectReference::default()
            }),
            persistent_volume_reclaim_policy: Some("Retain".to_owned()),
            ..PersistentVolumeSpec::default()
        }),
        ..PersistentVolume::default()
    };
    volumes
        .create(&PostParams::default(), &volume)
        .await
        .expect("volume created");
}

/// Whether a claim is gone or on its way out (the claim-protection finalizer may hold a
/// deleted claim a little longer; that is the cluster's business, not the operator's).
async fn collected(claims: &Api<PersistentVolumeClaim>, name: &str) -> Option<()> {
    let claim = claims.get_opt(name).await.ok()?;
    claim
        .is_none_or(|c| c.metadata.deletion_timestamp.is_some())
        .then_some(())
}

async fn gone<K>(api: &Api<K>, name: &str) -> Option<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    matches!(api.get_opt(name).await, Ok(None)).then_some(())
}

/// A claim marked for composting whose deadline `due` has come (by the operator's clock): the
/// next sweep deletes it.
fn due_claim(name: &str, due: Timestamp) -> PersistentVolumeClaim {
    let mut claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": CLASS,
            "resources": {"requests": {"storage": "1Mi"}}
        }
    }))
    .expect("a valid claim");
    claim.metadata.labels = Some(BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "kgents-operator".to_owned(),
        ),
        (memory::COMPOST_LABEL.to_owned(), "true".to_owned()),
    ]));
    claim.metadata.annotations = Some(BTreeMap::from([(
        memory::COMPOST_AFTER_ANNOTATION.to_owned(),
        due.to_string(),
    )]));
    claim
}

/// Proves that a whole compost sweep ran after this call began: two due claims are created one
/// after the other and each is waited for until swept. The sweep that takes the second listed
/// the claims after the first was deleted, so the sweep that took the first — begun after this
/// call — had ended: whatever a sweep from now on would delete is deleted.
async fn a_whole_sweep_passes(claims: &Api<PersistentVolumeClaim>, now: Timestamp, tag: &str) {
    for turn in ["first", "second"] {
        let name = format!("due-{tag}-{turn}");
        claims
            .create(&PostParams::default(), &due_claim(&name, now))
            .await
            .unwrap_or_else(|e| panic!("create the due claim {name}: {e}"));
        eventually(
            &format!("the sweep to take the due claim {name}"),
            Duration::from_secs(15),
            || collected(claims, &name),
        )
        .await;
    }
}

/// Asserts that claim `name` is there and not being deleted.
async fn assert_untouched(claims: &Api<PersistentVolumeClaim>, name: &str, what: &str) {
    let claim = claims.get_opt(name).await.expect("read the claim");
    assert!(
        claim
            .as_ref()
            .is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
        "{what}: claim {name} is {claim:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_decides_what_happens_to_the_storage() {
    let testbed = kgents_testbed::shared_with_nodes().await.expect("testbed");
    let ns = namespace(testbed, "memory").await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let ctx = operator_context(testbed, &ns, "memory", memory::required_rules())
        .await
        .with_clock(clock.clone());
    let options = MemoryOptions {
        sweep_interval: Duration::from_millis(200),
    };
    let controller = Running::start(Arc::new(ctx), move |ctx, stop| {
        memory::run_with(ctx, stop, options)
    });
    let admin = testbed.client().await.expect("client");
    let memories: Api<Memory> = Api::namespaced(admin.clone(), &ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);

    // DELETE: bound to a volume, READY, then collected with the Memory.
    volume_for(&admin, &ns, "doomed").await;
    for (name, retention) in [
        ("doomed", "DELETE"),
        ("kept", "RETAIN"),
        ("mulch", "COMPOST"),
    ] {
        memories
            .create(&PostParams::default(), &memory_object(name, retention))
            .await
            .expect("created");
    }
    let status = eventually(
        "the DELETE memory to be READY",
        Duration::from_secs(30),
        || async {
            let status = memories.get("doomed").await.ok()?.status?;
            (status.phase == Some(MemoryPhase::Ready)).then_some(status)
        },
    )
    .await;
    assert_eq!(status.pvc_name.as_deref(), Some("doomed"));
    assert_eq!(status.config_map_name.as_deref(), Some("doomed-meta"));
    let status = eventually(
        "the RETAIN memory to be PROVISIONING",
        Duration::from_secs(15),
        || async {
            let status = memories.get("kept").await.ok()?.status?;
            (status.phase == Some(MemoryPhase::Provisioning)).then_some(status)
        },
    )
    .await;
    assert_eq!(
        status.conditions[0].reason, "ClaimPending",
        "no volume, no provisioner"
    );
    eventually(
        "the COMPOST memory's finalizer",
        Duration::from_secs(15),
        || async {
            let m = memories.get("mulch").await.ok()?;
            m.metadata
                .finalizers?
                .iter()
                .any(|f| f == memory::FINALIZER)
                .then_some(())
        },
    )
    .await;
    eventually(
        "the COMPOST memory's claim",
        Duration::from_secs(15),
        || async { claims.get_opt("mulch").await.ok()?.map(|_| ()) },
    )
    .await;

    for name in ["doomed", "kept", "mulch"] {
        memories
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleted");
    }
    eventually(
        "the DELETE claim to be collected",
        // The garbage collector learns about a newly installed kind on its next discovery
        // resync (every 30 s), so the first collection after the CRDs appear can take a while.
        Duration::from_secs(90),
        || collected(&claims, "doomed"),
    )
    .await;
    eventually(
        "the metadata ConfigMap to be collected",
        Duration::from_secs(90),
        || gone(&config_maps, "kept-meta"),
    )
    .await;
    eventually("the COMPOST memory to go", Duration::from_secs(15), || {
        gone(&memories, "mulch")
    })
    .await;
    eventually("the RETAIN memory to go", Duration::from_secs(15), || {
        gone(&memories, "kept")
    })
    .await;

    // COMPOST: marked with a deadline an hour after deletion, by the operator's clock.
    let marked = claims
        .get("mulch")
        .await
        .expect("the COMPOST claim is kept for now");
    let deadline: Timestamp = marked.metadata.annotations.as_ref().expect("annotations")
        [memory::COMPOST_AFTER_ANNOTATION]
        .parse()
        .expect("an RFC 3339 deadline");
    assert_eq!(deadline, clock.now() + jiff::SignedDuration::from_hours(1));
    assert_eq!(
        marked.metadata.labels.expect("labels")[memory::COMPOST_LABEL],
        "true"
    );
    assert!(
        marked
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // A whole sweep passes; nothing is due yet.
    a_whole_sweep_passes(&claims, clock.now(), "early").await;
    assert_untouched(&claims, "mulch", "the COMPOST claim is not due yet").await;
    assert_untouched(&claims, "kept", "RETAIN storage survives").await;

    clock
        .advance(Duration::from_secs(3600 + 1))
        .expect("clock advanced");
    eventually(
        "the composted claim to be swept",
        Duration::from_secs(15),
        || collected(&claims, "mulch"),
    )
    .await;
    // The sweep that took it has ended (and the next one too): RETAIN storage is still there.
    a_whole_sweep_passes(&claims, clock.now(), "late").await;
    assert_untouched(&claims, "kept", "RETAIN storage survives the sweep").await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_grants_follow_an_agents_umwelt_at_once() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "memory-grants").await;
    let ctx = operator_context(testbed, &ns, "memory", memory::required_rules()).await;
    // The periodic resync (5 minutes) is far beyond the waits below: only the Agent watch can
    // make the grant follow in time.
    let controller = Running::start(Arc::new(ctx), memory::run);
    let admin = testbed.client().await.expect("client");
    let agents: Api<Agent> = Api::namespaced(admin.clone(), &ns);
    let memories: Api<Memory> = Api::namespaced(admin.clone(), &ns);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns);
    let lens: Agent = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": "lens"},
        "spec": {"genus": "B"}
    }))
    .expect("valid Agent");
    agents
        .create(&PostParams::default(), &lens)
        .await
        .expect("agent created");
    let notes: Memory = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Memory",
        "metadata": {"name": "notes"},
        "spec": {"owner": "scout", "type": "EPHEMERAL", "sharedWith": ["lens"]}
    }))
    .expect("valid Memory");
    memories
        .create(&PostParams::default(), &notes)
        .await
        .expect("memory created");
    let reader = memory::reader_role_name("notes");
    let subject = |wanted: String| {
        let (bindings, reader) = (bindings.clone(), reader.clone());
        async move {
            eventually(
                &format!("the reader binding to name {wanted}"),
                Duration::from_secs(20),
                || async {
                    let binding = bindings.get(&reader).await.ok()?;
                    let names: Vec<String> = binding
                        .subjects
                        .unwrap_or_default()
                        .into_iter()
                        .map(|s| s.name)
                        .collect();
                    (names == [wanted.clone()]).then_some(())
                },
            )
            .await;
        }
    };
    subject("lens".to_owned()).await;
    agents
        .patch(
            "lens",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"umwelt": "den"}})),
        )
        .await
        .expect("umwelt set");
    subject(kgents_operator::umwelt::service_account_name("den")).await;
    controller.stop().await;
}
