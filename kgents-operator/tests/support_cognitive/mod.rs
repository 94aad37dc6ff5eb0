//! Shared set-up of the cognitive probe tests, on top of `support`: an operator running the
//! Agent controller and the cognitive runner for one namespace, Agents whose model is a
//! [`fake_model::FakeModel`], and polling helpers that read what the operator wrote.

#![allow(dead_code)] // each test uses a different part

pub mod fake_model;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kgents_crds::Agent;
use kgents_crds::agent::CognitiveHealth;
use kgents_operator::ProbeConfig;
use kgents_operator::cognitive::{READINESS_GATE, SAFE_MODE_ANNOTATION};
use kgents_testbed::Testbed;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

#[allow(unused_imports)] // re-exported for the tests that use them
pub use crate::support::{
    Operator, agent, create_agent, eventually_seen, run_options, testbed_with_nodes,
};

/// The API key the fakes accept and the Secrets hold.
pub const API_KEY: &str = "sk-fake-cognitive-0123456789";
/// The Secret (and its key) that agents' `secretRef` names.
pub const SECRET: &str = "model-key";
/// The key in [`SECRET`] that holds [`API_KEY`].
pub const SECRET_KEY: &str = "apiKey";

/// A fresh namespace holding [`SECRET`] with [`API_KEY`] under [`SECRET_KEY`].
pub async fn namespace(testbed: &Testbed, prefix: &str) -> (String, Client) {
    let namespace = testbed
        .create_namespace(prefix)
        .await
        .expect("namespace created");
    let client = testbed.client().await.expect("admin client");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": SECRET},
        "stringData": {SECRET_KEY: API_KEY},
    }))
    .expect("valid Secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the model Secret");
    (namespace, client)
}

/// Probe settings for tests: the defaults (8 calls in flight, 600 a minute), status refreshed
/// every 5 minutes between transitions.
pub fn probe_config() -> ProbeConfig {
    ProbeConfig::default()
}

/// Starts an operator running the Agent controller and the cognitive runner for `namespace`
/// with `probes`.
pub fn start_operator(client: Client, namespace: &str, probes: ProbeConfig) -> Operator {
    Operator::start(
        client,
        run_options(
            namespace,
            &[
                kgents_operator::agent::CONTROLLER,
                kgents_operator::cognitive::CONTROLLER,
            ],
            probes,
        ),
    )
}

/// An Agent named `name` of genus B, judged by cognitive probes every `interval` seconds
/// (timeout `timeout`), whose model is `name` at `endpoint` of `provider`, keyed by [`SECRET`].
/// `extra` is merged into the spec last (e.g. `{"health": {...}}` fields or `replicas`).
pub fn probed_agent(
    name: &str,
    provider: &str,
    endpoint: &str,
    replicas: i32,
    health: serde_json::Value,
) -> Agent {
    let mut health_spec = json!({
        "type": "COGNITIVE_PROBE",
        "intervalSeconds": 5,
        "timeoutSeconds": 4,
    });
    if let (Some(base), Some(extra)) = (health_spec.as_object_mut(), health.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    agent(
        name,
        json!({
            "replicas": replicas,
            "model": {
                "provider": provider,
                "name": name,
                "endpoint": endpoint,
                "secretRef": {"name": SECRET, "key": SECRET_KEY},
            },
            "health": health_spec,
        }),
    )
}

/// The Agent's `cognitiveHealth` (None before the runner wrote one).
pub fn health(agent: &Agent) -> Option<CognitiveHealth> {
    agent.status.as_ref().and_then(|s| s.cognitive_health)
}

/// The Agent's `CognitiveReady` condition as (status, reason, message).
pub fn cognitive_ready(agent: &Agent) -> Option<(String, String, String)> {
    agent.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == kgents_operator::cognitive::CONDITION)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

/// A short description of an Agent's cognitive status, for timeout messages.
pub fn describe(agent: &Agent) -> String {
    format!(
        "cognitiveHealth {:?}, CognitiveReady {:?}, lastProbe {:?}",
        health(agent),
        cognitive_ready(agent),
        agent.status.as_ref().and_then(|s| s.last_probe.as_ref())
    )
}

/// Waits until Agent `name` has `cognitiveHealth` `want`; returns it.
pub async fn wait_health(
    api: &Api<Agent>,
    name: &str,
    want: CognitiveHealth,
    within: Duration,
) -> Agent {
    eventually_seen(&format!("Agent {name} to be {want:?}"), within, || async {
        let agent = api.get(name).await.map_err(|e| e.to_string())?;
        if health(&agent) == Some(want) {
            Ok(agent)
        } else {
            Err(describe(&agent))
        }
    })
    .await
}

/// The live (not terminating) pods of Agent `name`.
pub async fn agent_pods(pods: &Api<Pod>, name: &str) -> Vec<Pod> {
    let selector = format!("app.kubernetes.io/instance={name},app.kubernetes.io/name=kgents-agent");
    pods.list(&ListParams::default().labels(&selector))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// The status of pod condition `type_` (None when absent).
pub fn pod_condition(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
}

/// (name, uid, readiness-gate condition, Ready condition, safe-mode annotation) of a pod.
pub fn pod_view(
    pod: &Pod,
) -> (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    (
        pod.name_any(),
        pod.metadata.uid.clone().unwrap_or_default(),
        pod_condition(pod, READINESS_GATE),
        pod_condition(pod, "Ready"),
        pod.annotations().get(SAFE_MODE_ANNOTATION).cloned(),
    )
}

/// Waits until Agent `name` has `replicas` running pods that all satisfy `each`; returns them.
pub async fn wait_pods<F>(
    pods: &Api<Pod>,
    name: &str,
    replicas: usize,
    what: &str,
    within: Duration,
    each: F,
) -> Vec<Pod>
where
    F: Fn(&Pod) -> bool,
{
    eventually_seen(
        &format!("{replicas} pods of Agent {name} with {what}"),
        within,
        || async {
            let live = agent_pods(pods, name).await;
            let running = live
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if live.len() == replicas && running == replicas && live.iter().all(&each) {
                Ok(live)
            } else {
                Err(format!(
                    "{:?}",
                    live.iter().map(pod_view).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await
}

/// Whether `pod`'s readiness gate and Ready condition both have `status`.
pub fn gate_and_ready_are(pod: &Pod, status: &str) -> bool {
    pod_condition(pod, READINESS_GATE).as_deref() == Some(status)
        && pod_condition(pod, "Ready").as_deref() == Some(status)
}

/// The Events about Agent `name` with `reason`, as their notes.
pub async fn event_notes(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<String> {
    events_with_reason(client, namespace, name, reason)
        .await
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Agent"))
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// The Events in `namespace` about an object named `name` with `reason`.
async fn events_with_reason(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .collect()
}

/// How many times an Event about Agent `name` with `reason` was reported. kube's recorder
/// folds a repeat of the same reason about the same object within about six minutes into
/// the first Event's series (count and last time; the first note stays).
pub async fn event_count(client: &Client, namespace: &str, name: &str, reason: &str) -> i32 {
    events_with_reason(client, namespace, name, reason)
        .await
        .into_iter()
        .map(|e| e.series.map_or(1, |s| s.count))
        .sum()
}

/// Waits until Events about Agent `name` with `reason` were reported at least `times` times.
pub async fn wait_event_count(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
    times: i32,
    within: Duration,
) {
    eventually_seen(
        &format!("{times} Events {reason} about Agent {name}"),
        within,
        || async {
            let n = event_count(client, namespace, name, reason).await;
            if n >= times {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        },
    )
    .await
}

/// Waits for an Event about Agent `name` with `reason` whose note contains `needle`.
pub async fn wait_event(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
    needle: &str,
    within: Duration,
) -> String {
    eventually_seen(
        &format!("an Event {reason} about Agent {name} mentioning {needle:?}"),
        within,
        || async {
            let notes = event_notes(client, namespace, name, reason).await;
            notes
                .iter()
                .find(|n| n.contains(needle))
                .cloned()
                .ok_or_else(|| format!("{notes:?}"))
        },
    )
    .await
}

/// Waits until `fake` has accepted `more` calls for `model` beyond `seen`.
pub async fn wait_calls(
    fake: &fake_model::FakeModel,
    model: &str,
    at_least: usize,
    within: Duration,
) {
    eventually_seen(
        &format!("{at_least} calls of model {model} at the fake"),
        within,
        || async {
            let n = fake.calls_for(model);
            if n >= at_least {
                Ok(())
            } else {
                Err(format!("{n} calls"))
            }
        },
    )
    .await
}
