//! The Pheromone controller on a real API server: status once, EVAPORATING when it fades, and
//! deletion at the predicted evaporation — not on a polling tick.

mod support;
mod support_controllers;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kgents_crds::Pheromone;
use kgents_crds::pheromone::PheromonePhase;
use kgents_operator::pheromone;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::eventually;
use support_controllers::{Running, namespace, operator_context};

fn pheromone_object(name: &str, spec: serde_json::Value) -> Pheromone {
    serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1",
        "kind": "Pheromone",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a valid Pheromone")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pheromone_fades_then_is_deleted_within_two_seconds_of_its_predicted_evaporation() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "pheromone").await;
    let ctx = operator_context(testbed, &ns, "pheromone", pheromone::required_rules()).await;
    let controller = Running::start(Arc::new(ctx), pheromone::run);
    let api: Api<Pheromone> = Api::namespaced(testbed.client().await.expect("client"), &ns);

    // Half-life 6 s, from 0.2: EVAPORATING (< 0.1) after 6 s, evaporated (< 0.01) after
    // 6 × log2(20) ≈ 25.9 s. A second one is cut short by a 3 s TTL.
    let fading = api
        .create(
            &PostParams::default(),
            &pheromone_object(
                "fading",
                json!({"type": "WARNING", "source": "scout", "halfLifeMinutes": 0.1, "initialIntensity": 0.2}),
            ),
        )
        .await
        .expect("created");
    let short = api
        .create(
            &PostParams::default(),
            &pheromone_object(
                "short",
            json!({"type": "INTENT", "source": "scout", "halfLifeMinutes": 10.0, "ttlSeconds": 3}),
        ),
    )
    .await
    .expect("created");

    let life = pheromone::lifecycle(&fading).expect("lifecycle");
    let status = eventually("an ACTIVE status", Duration::from_secs(5), || async {
        api.get("fading")
            .await
            .ok()?
            .status
            .filter(|s| s.phase == Some(PheromonePhase::Active))
    })
    .await;
    let written = status.evaporates_at.expect("evaporatesAt").0;
    assert!(
        written >= life.evaporates_at
            && written.duration_since(life.evaporates_at).as_secs_f64() < 1.0,
        "status says {written}, predicted {}",
        life.evaporates_at
    );

    // The short one goes at its TTL.
    let short_gone = eventually(
        "the TTL pheromone to go",
        Duration::from_secs(10),
        || async {
            api.get_opt("short")
                .await
                .ok()?
                .is_none()
                .then(Timestamp::now)
        },
    )
    .await;
    let ttl_end = pheromone::lifecycle(&short)
        .expect("lifecycle")
        .evaporates_at;
    let ttl_lag = short_gone.duration_since(ttl_end).as_secs_f64();
    assert!(
        (-0.05..=2.0).contains(&ttl_lag),
        "the TTL pheromone went {ttl_lag:.3} s after its TTL"
    );
    let still_there = api.get_opt("fading").await.expect("read");
    assert!(
        still_there.is_some(),
        "the long-lived one is still there when the short one goes"
    );

    eventually("EVAPORATING", Duration::from_secs(15), || async {
        let status = api.get("fading").await.ok()?.status?;
        (status.phase == Some(PheromonePhase::Evaporating)).then_some(())
    })
    .await;
    assert!(
        Timestamp::now() >= life.evaporating_at,
        "EVAPORATING was written before the intensity fell under 0.1"
    );

    let gone_at = eventually("the deletion", Duration::from_secs(40), || async {
        match api.get_opt("fading").await {
            Ok(None) => Some(Timestamp::now()),
            _ => None,
        }
    })
    .await;
    let lag = gone_at.duration_since(life.evaporates_at).as_secs_f64();
    assert!(
        (-0.05..=2.0).contains(&lag),
        "deleted {lag:.3} s after the predicted evaporation at {}",
        life.evaporates_at
    );
    controller.stop().await;
}
