//! The Umwelt controller on a real API server with real RBAC: what an Umwelt affords, its
//! ServiceAccount may do; what it does not, the API server refuses.

mod support;
mod support_controllers;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kgents_crds::{Agent, Pheromone, Umwelt};
use kgents_operator::umwelt;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::eventually;
use support_controllers::{Running, namespace, operator_context};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_umwelt_that_affords_only_sensing_can_sense_but_not_emit() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "umwelt").await;
    let ctx = operator_context(testbed, &ns, "umwelt", umwelt::required_rules()).await;
    let controller = Running::start(Arc::new(ctx), umwelt::run);
    let admin = testbed.client().await.expect("client");
    let umwelts: Api<Umwelt> = Api::namespaced(admin.clone(), &ns);

    let sensing: Umwelt = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1",
        "kind": "Umwelt",
        "metadata": {"name": "lookout"},
        "spec": {
            "agent": "lookout",
            "affordances": ["void.pheromone.sense", "concept.*.refine"],
            "persona": {"warmth": 0.2},
            "context": {"watch": "the north gate"},
            "secretRef": {"name": "absent-llm-key"}
        }
    }))
    .expect("valid Umwelt");
    umwelts
        .create(&PostParams::default(), &sensing)
        .await
        .expect("created");

    let status = eventually("the Umwelt's status", Duration::from_secs(15), || async {
        let status = umwelts.get("lookout").await.ok()?.status?;
        status.service_account.is_some().then_some(status)
    })
    .await;
    let account = umwelt::service_account_name("lookout");
    assert_eq!(status.service_account.as_deref(), Some(account.as_str()));
    assert_eq!(status.role.as_deref(), Some(account.as_str()));
    assert_eq!(
        status.secret_valid,
        Some(false),
        "the named Secret does not exist"
    );
    let ready = &status.conditions[0];
    assert_eq!(
        (ready.type_.as_str(), ready.reason.as_str()),
        ("Ready", "SecretNotFound")
    );

    let config: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let view = config.get(&account).await.expect("runtime ConfigMap");
    let view: serde_json::Value =
        serde_json::from_str(&view.data.expect("data")[umwelt::CONFIG_KEY]).expect("JSON");
    assert_eq!(view["context"]["watch"], "the north gate");
    assert_eq!(view["grantedPaths"], json!(["void.pheromone.sense"]));

    let agent = testbed
        .service_account_client(&ns, &account)
        .await
        .expect("agent client");
    let pheromones: Api<Pheromone> = Api::namespaced(agent.clone(), &ns);
    // RBAC is evaluated per request; the binding may take a moment to reach the authorizer's cache.
    eventually(
        "the agent to be allowed to sense",
        Duration::from_secs(10),
        || async { pheromones.list(&ListParams::default()).await.ok() },
    )
    .await;
    let emit: Pheromone = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Pheromone",
        "metadata": {"name": "shout"},
        "spec": {"type": "WARNING", "source": "lookout"}
    }))
    .expect("valid Pheromone");
    match pheromones.create(&PostParams::default(), &emit).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("emitting must be forbidden, got {other:?}"),
    }
    let elsewhere: Api<Pheromone> = Api::all(agent.clone());
    match elsewhere.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("sensing outside its namespace must be forbidden, got {other:?}"),
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(agent, &ns);
    assert!(
        config_maps.list(&ListParams::default()).await.is_err(),
        "nothing else is granted"
    );

    // Widening the Umwelt to emit changes the Role, and the API server then allows it.
    let mut wider = umwelts.get("lookout").await.expect("read");
    wider.spec.affordances = vec!["void.pheromone.*".to_owned()];
    wider.metadata.managed_fields = None;
    umwelts
        .replace("lookout", &PostParams::default(), &wider)
        .await
        .expect("updated");
    eventually(
        "the agent to be allowed to emit",
        Duration::from_secs(15),
        || async { pheromones.create(&PostParams::default(), &emit).await.ok() },
    )
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_umwelt_counts_the_agents_using_it_as_they_come_move_and_go() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "umwelt-count").await;
    let ctx = operator_context(testbed, &ns, "umwelt", umwelt::required_rules()).await;
    let controller = Running::start(Arc::new(ctx), umwelt::run);
    let admin = testbed.client().await.expect("client");
    let umwelts: Api<Umwelt> = Api::namespaced(admin.clone(), &ns);
    let agents: Api<Agent> = Api::namespaced(admin.clone(), &ns);
    let den: Umwelt = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1",
        "kind": "Umwelt",
        "metadata": {"name": "den"},
        "spec": {"agent": "fox", "affordances": ["void.pheromone.sense"]}
    }))
    .expect("valid Umwelt");
    umwelts
        .create(&PostParams::default(), &den)
        .await
        .expect("created");
    let count = |expected: i32| {
        let umwelts = umwelts.clone();
        async move {
            eventually(
                &format!("activeAgents to be {expected}"),
                Duration::from_secs(15),
                || async {
                    let status = umwelts.get("den").await.ok()?.status?;
                    (status.active_agents == Some(expected)).then_some(status)
                },
            )
            .await
        }
    };
    let status = count(0).await;
    assert!(
        status.last_applied.is_some(),
        "the first apply is stamped: {status:?}"
    );
    let stamped = status.last_applied;

    for name in ["fox", "vixen"] {
        let agent: Agent = serde_json::from_value(json!({
            "apiVersion": "kgents.io/v1", "kind": "Agent",
            "metadata": {"name": name},
            "spec": {"genus": "B", "umwelt": "den"}
        }))
        .expect("valid Agent");
        agents
            .create(&PostParams::default(), &agent)
            .await
            .expect("agent created");
    }
    count(2).await;
    agents
        .patch(
            "vixen",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"umwelt": null}})),
        )
        .await
        .expect("moved out");
    count(1).await;
    agents
        .delete("fox", &DeleteParams::default())
        .await
        .expect("deleted");
    let status = count(0).await;
    assert_eq!(
        status.last_applied, stamped,
        "nothing was re-applied, so lastApplied did not move"
    );
    controller.stop().await;
}
