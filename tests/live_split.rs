//! The live view's split Pheromone list on a real API server: asked as requests by type
//! (`spec.type` is a selectable field of the CRD), it answers the same records as one request;
//! on a cluster whose CRD does not declare the field, it asks once more unsplit.
//!
//! Its own test binary (and testbed): the second test changes the Pheromone CRD, which makes
//! the API server re-initialise the resource's storage for a moment. The client the CLI and the
//! operator read through, which cuts managed fields out of the API server's answers before
//! decoding them (`kgents_logos::wire`), is checked here too, on ConfigMaps (a kind the CRD
//! change does not touch).

use std::time::Duration;

use kgents::kgents_core::field::PheromoneType;
use kgents::kgents_crds::Pheromone;
use kgents::kgents_logos::{ClusterView, Filter, LiveView, Scope};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// LIST requests of Pheromones the API server has answered so far (any code, any scope).
async fn pheromone_lists(client: &kube::Client) -> u64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.expect("/metrics");
    text.lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains("resource=\"pheromones\"")
                && l.contains("verb=\"LIST\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Every record's identity and reading, sorted, for comparing two lists.
async fn listed(view: &LiveView) -> Vec<String> {
    let observed = view
        .pheromones(&Filter::scope(Scope::All))
        .await
        .expect("the pheromones list");
    let mut rows: Vec<String> = observed
        .data
        .iter()
        .map(|r| {
            let s = &r.summary;
            format!(
                "{}/{} {:?} {} {:?} {} {:?}",
                s.namespace,
                s.name,
                s.pheromone_type,
                s.source,
                s.target,
                s.emitted_at,
                s.expires_at
            )
        })
        .collect();
    rows.sort();
    rows
}

/// A hint that makes the view split into four requests (at most [`MAX_SHARDS`]) whatever the
/// field holds.
///
/// [`MAX_SHARDS`]: kgents::kgents_logos::shard::MAX_SHARDS
fn four_way_hint() -> Vec<(PheromoneType, usize)> {
    vec![
        (PheromoneType::Warning, 3_000),
        (PheromoneType::State, 3_000),
        (PheromoneType::Dream, 3_000),
        (PheromoneType::Memory, 3_000),
    ]
}

async fn emit(client: &kube::Client, namespaces: &[String]) {
    let types = ["WARNING", "STATE", "DREAM", "MEMORY", "CHAOS"];
    for (n, ns) in namespaces.iter().enumerate() {
        let api: Api<Pheromone> = Api::namespaced(client.clone(), ns);
        for i in 0..10 {
            let pheromone: Pheromone = serde_json::from_value(json!({
                "apiVersion": "kgents.io/v1", "kind": "Pheromone",
                "metadata": {"name": format!("p-{i}")},
                "spec": {
                    "type": types[(i + n) % types.len()], "source": format!("agent-{i}"),
                    "initialIntensity": 0.9, "halfLifeMinutes": 60,
                    "ttlSeconds": if i % 3 == 0 { Some(600) } else { None },
                },
            }))
            .unwrap();
            api.create(&PostParams::default(), &pheromone)
                .await
                .expect("a pheromone is created");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trimmed_client_reads_what_the_api_server_sends_but_managed_fields() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{WatchStreamExt, watcher};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let testbed = kgents_testbed::shared()
        .await
        .expect("the testbed starts (scripts/testbed-build)");
    let plain = testbed.client().await.unwrap();
    let trimmed = kgents::kgents_logos::wire::client(testbed.config().await.unwrap())
        .expect("the trimmed client");
    let namespace = testbed.create_namespace("trimmed").await.unwrap();
    let plain_api: Api<ConfigMap> = Api::namespaced(plain.clone(), &namespace);
    let api: Api<ConfigMap> = Api::namespaced(trimmed.clone(), &namespace);

    // A watch through the trimmed client, started before the writes.
    let watch_api = api.clone();
    let watched = tokio::spawn(async move {
        watcher(watch_api, watcher::Config::default())
            .applied_objects()
            .try_filter(|cm| futures::future::ready(cm.metadata.name.as_deref() == Some("cm-4")))
            .boxed()
            .try_next()
            .await
    });

    // Server-side applies (two managers each), answered without managed fields.
    for i in 0..5 {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "labels": {"n": i.to_string()}},
            "data": {"managedFields": "data, not metadata", "i": i.to_string()}});
        let applied = api
            .patch(
                &format!("cm-{i}"),
                &PatchParams::apply("one"),
                &Patch::Apply(&body),
            )
            .await
            .expect("applied through the trimmed client");
        assert_eq!(applied.metadata.managed_fields, None);
        assert_eq!(
            applied.data.as_ref().unwrap()["managedFields"],
            "data, not metadata"
        );
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "annotations": {"two": "yes"}}});
        api.patch(
            &format!("cm-{i}"),
            &PatchParams::apply("two"),
            &Patch::Apply(&other),
        )
        .await
        .expect("a second manager");
    }

    // The plain client sees the managed fields; the trimmed one the same objects without.
    let mut seen = plain_api.list(&ListParams::default()).await.unwrap().items;
    assert!(seen.iter().all(|cm| {
        cm.metadata
            .managed_fields
            .as_ref()
            .is_some_and(|m| m.len() >= 2)
    }));
    for cm in &mut seen {
        cm.metadata.managed_fields = None;
    }
    let listed = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed, seen, "a list: everything but managed fields");
    let got = api.get("cm-3").await.unwrap();
    assert_eq!(
        Some(&got),
        seen.iter()
            .find(|cm| cm.metadata.name.as_deref() == Some("cm-3"))
    );

    let event = tokio::time::timeout(Duration::from_secs(30), watched)
        .await
        .expect("the watch sees cm-4 within 30 s")
        .unwrap()
        .expect("the watch stream")
        .expect("cm-4 applied");
    assert_eq!(event.metadata.managed_fields, None);
    assert_eq!(event.data.as_ref().unwrap()["i"], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_list_is_the_whole_list_and_a_cluster_without_the_field_is_asked_unsplit() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let testbed = kgents_testbed::shared()
        .await
        .expect("the testbed starts (scripts/testbed-build)");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let client = testbed.client().await.unwrap();
    let namespaces = vec![
        testbed.create_namespace("split-a").await.unwrap(),
        testbed.create_namespace("split-b").await.unwrap(),
    ];
    emit(&client, &namespaces).await;
    let deadline = Duration::from_secs(10);

    let before = pheromone_lists(&client).await;
    let whole = listed(&LiveView::new(client.clone(), deadline)).await;
    assert_eq!(pheromone_lists(&client).await - before, 1, "one request");
    assert!(whole.len() >= 20, "{whole:?}");

    let before = pheromone_lists(&client).await;
    let split = LiveView::new(client.clone(), deadline).with_field_shape(four_way_hint());
    assert_eq!(
        listed(&split).await,
        whole,
        "the split list is the whole list"
    );
    assert_eq!(
        pheromone_lists(&client).await - before,
        4,
        "three types of their own and one request for the rest"
    );
    // One namespace is asked in one request: the counts are the whole field's.
    let before = pheromone_lists(&client).await;
    let in_one = LiveView::new(client.clone(), deadline)
        .with_field_shape(four_way_hint())
        .pheromones(&Filter::scope(Scope::Namespace(namespaces[0].clone())))
        .await
        .expect("one namespace's pheromones");
    assert_eq!(in_one.data.len(), 10);
    assert_eq!(pheromone_lists(&client).await - before, 1);
    // The view keeps the counts it saw: 20 Pheromones are too few to split again.
    let before = pheromone_lists(&client).await;
    assert_eq!(listed(&split).await, whole);
    assert_eq!(pheromone_lists(&client).await - before, 1);

    // A cluster whose CRD predates the selectable field refuses the selector (400).
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.patch(
        "pheromones.kgents.io",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "remove", "path": "/spec/versions/0/selectableFields"}
            ]))
            .unwrap(),
        ),
    )
    .await
    .expect("the CRD loses its selectable field");
    let pheromones: Api<Pheromone> = Api::all(client.clone());
    let selected = ListParams::default().fields("spec.type=WARNING");
    let started = std::time::Instant::now();
    loop {
        // Until the API server serves the changed CRD: plain lists work, the selector is refused.
        let plain = pheromones.list(&ListParams::default()).await;
        let refused = matches!(
            pheromones.list(&selected).await,
            Err(kube::Error::Api(ref s)) if s.code == 400
        );
        if plain.is_ok() && refused {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the API server still serves the selectable field: {plain:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = pheromone_lists(&client).await;
    let split = LiveView::new(client.clone(), deadline).with_field_shape(four_way_hint());
    assert_eq!(listed(&split).await, whole, "refused, then asked unsplit");
    assert_eq!(
        pheromone_lists(&client).await - before,
        5,
        "4 refused, 1 unsplit"
    );
}
