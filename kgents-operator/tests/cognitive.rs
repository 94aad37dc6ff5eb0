//! Cognitive probes on live agents, on a real control plane (etcd, kube-apiserver,
//! controller-manager, scheduler and kwok nodes from the testbed) with local fake models that
//! speak the OpenAI-compatible and the Anthropic wire formats.
//!
//! Each test has its own namespace, fake model(s) and in-process operator (the Agent controller
//! and the cognitive runner, scoped to that namespace). The fakes compute the correct answer
//! from each challenge and can be switched at runtime to wrong answers, silence or slowness;
//! what the tests check is what the operator wrote to Kubernetes: `cognitiveHealth`, the
//! `CognitiveReady` condition, the pods' readiness-gate condition and Ready, Events, the
//! safe-mode annotation, pod restarts — and how many calls each fake received.

mod support;
mod support_cognitive;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kgents_crds::Agent;
use kgents_crds::agent::CognitiveHealth;
use kgents_llm::{ModelConfig, RuntimeOptions};
use kgents_operator::ProbeConfig;
use kgents_operator::cognitive::{READINESS_GATE, SAFE_MODE_ANNOTATION};
use kgents_probes::{
    Challenge, EchoProbe, JsonProbe, Probe, ProbeRunner, ReasoningProbe, RunnerConfig, Verdict,
};
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;
use support_cognitive::fake_model::{Behaviour, FakeModel, Wire, correct_answer};
use support_cognitive::*;

/// Generous: the machine has two cores shared with builds.
const WAIT: Duration = Duration::from_secs(180);

/// The fake's answers, judged by the probes' own exact checks: correct answers pass, and
/// "UNHEALTHY" and the right answer with a 1 in front ("112" for 12) fail, for every kind of
/// challenge over many random draws.
#[test]
fn the_fake_computes_what_the_probes_accept() {
    let mut rng = StdRng::seed_from_u64(8);
    let draws: [fn(&mut dyn rand::RngCore) -> Challenge; 3] =
        [Challenge::echo, Challenge::reasoning, Challenge::json];
    for draw in draws {
        for _ in 0..256 {
            let challenge = draw(&mut rng);
            let prompt = challenge.prompt().expect("an LLM challenge has a prompt");
            let (_, answer) = correct_answer(&prompt);
            let answer = answer.unwrap_or_else(|| panic!("no answer to {prompt:?}"));
            assert!(
                challenge.judge(&answer).is_correct(),
                "{challenge}: {answer}"
            );
            assert!(!challenge.judge("UNHEALTHY").is_correct(), "{challenge}");
            assert!(
                !challenge.judge(&format!("1{answer}")).is_correct(),
                "{challenge}: 1{answer}"
            );
        }
    }
    let twelve = Challenge::Reasoning {
        operation: kgents_probes::Operation::Sum,
        lhs: 5,
        rhs: 7,
    };
    let (_, answer) = correct_answer(&twelve.prompt().expect("prompt"));
    assert_eq!(answer.as_deref(), Some("12"));
    assert!(!twelve.judge("112").is_correct());
}

/// Both fakes, called by the real model clients through the real probe runner: each behaviour
/// gives the verdict the cluster tests rely on, and each fake refuses the other's format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fakes_speak_their_wire_format_to_the_real_clients() {
    let runner = ProbeRunner::new(
        Arc::new(kgents_logos::TokioTimer),
        RunnerConfig::new(Duration::from_millis(1500), Duration::from_millis(500)),
    )
    .expect("runner config");
    let options = RuntimeOptions::default()
        .with_request_timeout(Duration::from_secs(5))
        .with_retry(kgents_llm::RetryPolicy::none());
    let mut rng = StdRng::seed_from_u64(1);
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        let fake = FakeModel::start(wire, API_KEY).await;
        let config = ModelConfig::from_parts(
            wire.provider(),
            Some("m"),
            Some(&fake.endpoint()),
            Some(API_KEY.into()),
        )
        .expect("model config");
        let client = kgents_llm::build_client_with(&config, &options).expect("client");
        let probes: Vec<Box<dyn Probe>> = vec![
            Box::new(EchoProbe::new(client.clone())),
            Box::new(ReasoningProbe::new(client.clone())),
            Box::new(JsonProbe::new(client.clone())),
        ];
        let expectations = [
            (Behaviour::Correct, Verdict::Healthy),
            (Behaviour::Unhealthy, Verdict::Unhealthy),
            (Behaviour::OneInFront, Verdict::Unhealthy),
            (
                Behaviour::Slow(Duration::from_millis(900)),
                Verdict::Degraded,
            ),
            (Behaviour::Silent, Verdict::Unresponsive),
        ];
        for (behaviour, verdict) in expectations {
            fake.set(behaviour);
            for probe in &probes {
                let outcome = runner.run(probe.as_ref(), &mut rng).await;
                assert_eq!(
                    outcome.verdict(),
                    verdict,
                    "{wire:?} {behaviour:?} {}: {}",
                    probe.kind(),
                    outcome.reason()
                );
            }
        }
        assert_eq!(fake.total_calls(), 15, "{wire:?}: one request per probe");
        assert_eq!(fake.rejected(), 0, "{wire:?}");

        // The other format's client, or a wrong key, is refused and not counted as a call.
        let other = match wire {
            Wire::OpenAi => "anthropic",
            Wire::Anthropic => "openai",
        };
        fake.set(Behaviour::Correct);
        for (provider, key) in [(other, API_KEY), (wire.provider(), "sk-wrong")] {
            let config = ModelConfig::from_parts(
                provider,
                Some("m"),
                Some(&fake.endpoint()),
                Some(key.into()),
            )
            .expect("model config");
            let client = kgents_llm::build_client_with(&config, &options).expect("client");
            let outcome = runner.run(&EchoProbe::new(client), &mut rng).await;
            assert_eq!(outcome.verdict(), Verdict::Unresponsive, "{provider}");
        }
        assert_eq!(fake.total_calls(), 15, "{wire:?}");
        assert_eq!(fake.rejected(), 2, "{wire:?}");
    }
}

/// An Agent probed every 5 s becomes HEALTHY and opens the gate of every pod; "UNHEALTHY" and
/// then "112"-style answers each make it DEGRADED after the threshold, close the gate (and so
/// the pods' Ready) and leave an Event saying why; correct answers bring it all back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_answers_degrade_an_agent_and_close_its_gate_until_it_recovers() {
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-wrong").await;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_agent(
        &agents,
        &probed_agent("thinker", "openai", &fake.endpoint(), 2, json!({})),
    )
    .await;

    let healthy = wait_health(&agents, "thinker", CognitiveHealth::Healthy, WAIT).await;
    let (status, reason, _) = cognitive_ready(&healthy).expect("CognitiveReady");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "ProbesPassing")
    );
    let before = wait_pods(&pods, "thinker", 2, "gate and Ready True", WAIT, |p| {
        gate_and_ready_are(p, "True")
    })
    .await;
    for pod in &before {
        let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.clone());
        assert_eq!(
            gates
                .unwrap_or_default()
                .iter()
                .map(|g| g.condition_type.as_str())
                .collect::<Vec<_>>(),
            vec![READINESS_GATE]
        );
    }

    for (round, behaviour) in [Behaviour::Unhealthy, Behaviour::OneInFront]
        .into_iter()
        .enumerate()
    {
        let calls = fake.calls_for("thinker");
        fake.set(behaviour);
        let degraded = wait_health(&agents, "thinker", CognitiveHealth::Degraded, WAIT).await;
        let (status, reason, message) = cognitive_ready(&degraded).expect("CognitiveReady");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "Degraded"),
            "{message}"
        );
        // The default threshold: three wrong answers in a row, not one.
        assert!(
            fake.calls_for("thinker") >= calls + 3,
            "DEGRADED after {} wrong answers",
            fake.calls_for("thinker") - calls
        );
        wait_pods(&pods, "thinker", 2, "gate and Ready False", WAIT, |p| {
            gate_and_ready_are(p, "False")
        })
        .await;
        if round == 0 {
            // The Event says why: the wrong answer, quoted.
            let note = wait_event(
                &client,
                &ns,
                "thinker",
                "CognitiveDegraded",
                "UNHEALTHY",
                WAIT,
            )
            .await;
            assert!(note.contains("HEALTHY -> DEGRADED"), "{note}");
            assert!(note.contains("wrong answer"), "{note}");
        } else {
            // The second DEGRADED transition's Event names its own cause (the `1`-prefixed
            // answers), not the first one's: kube's recorder must not fold it into the first
            // Event and keep that Event's note.
            wait_event_count(&client, &ns, "thinker", "CognitiveDegraded", 2, WAIT).await;
            let notes = event_notes(&client, &ns, "thinker", "CognitiveDegraded").await;
            assert!(
                notes.iter().any(|n| n.contains("HEALTHY -> DEGRADED")
                    && n.contains("wrong answer")
                    && !n.contains("UNHEALTHY")),
                "{notes:?}"
            );
        }

        fake.set(Behaviour::Correct);
        wait_health(&agents, "thinker", CognitiveHealth::Healthy, WAIT).await;
        let after = wait_pods(&pods, "thinker", 2, "gate and Ready True", WAIT, |p| {
            gate_and_ready_are(p, "True")
        })
        .await;
        // Wrong answers never restart pods.
        let uids = |pods: &[Pod]| -> HashSet<String> {
            pods.iter().filter_map(|p| p.metadata.uid.clone()).collect()
        };
        assert_eq!(uids(&after), uids(&before));
    }
    // UNKNOWN -> HEALTHY, then DEGRADED -> HEALTHY twice.
    wait_event_count(&client, &ns, "thinker", "CognitiveHealthy", 3, WAIT).await;
    assert_eq!(
        fake.rejected(),
        0,
        "every call carried the key from the Secret"
    );
    operator.stop().await;
}

/// Silence makes an agent UNRESPONSIVE; with `degradeToSafemode: true` its pods get the
/// safe-mode annotation and keep running (same pods), and recovery removes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_makes_an_agent_unresponsive_and_safe_mode_keeps_its_pods() {
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-safe").await;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_agent(
        &agents,
        &probed_agent(
            "quiet",
            "openai",
            &fake.endpoint(),
            2,
            json!({"degradeToSafemode": true, "timeoutSeconds": 2}),
        ),
    )
    .await;
    wait_health(&agents, "quiet", CognitiveHealth::Healthy, WAIT).await;
    let before = wait_pods(&pods, "quiet", 2, "gate True, no safe mode", WAIT, |p| {
        gate_and_ready_are(p, "True") && !p.annotations().contains_key(SAFE_MODE_ANNOTATION)
    })
    .await;

    fake.set(Behaviour::Silent);
    let unresponsive = wait_health(&agents, "quiet", CognitiveHealth::Unresponsive, WAIT).await;
    let (status, reason, _) = cognitive_ready(&unresponsive).expect("CognitiveReady");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "Unresponsive")
    );
    let note = wait_event(
        &client,
        &ns,
        "quiet",
        "CognitiveUnresponsive",
        "no answer",
        WAIT,
    )
    .await;
    assert!(note.contains("UNRESPONSIVE"), "{note}");
    let in_safe_mode = wait_pods(&pods, "quiet", 2, "safe mode and gate False", WAIT, |p| {
        gate_and_ready_are(p, "False")
            && p.annotations()
                .get(SAFE_MODE_ANNOTATION)
                .map(String::as_str)
                == Some("true")
    })
    .await;
    let names = |pods: &[Pod]| -> HashSet<(String, String)> {
        pods.iter()
            .map(|p| (p.name_any(), p.metadata.uid.clone().unwrap_or_default()))
            .collect()
    };
    assert_eq!(
        names(&in_safe_mode),
        names(&before),
        "safe mode, not a restart"
    );
    wait_event_count(&client, &ns, "quiet", "SafeModeEntered", 1, WAIT).await;

    fake.set(Behaviour::Correct);
    wait_health(&agents, "quiet", CognitiveHealth::Healthy, WAIT).await;
    let recovered = wait_pods(
        &pods,
        "quiet",
        2,
        "gate True, safe mode lifted",
        WAIT,
        |p| gate_and_ready_are(p, "True") && !p.annotations().contains_key(SAFE_MODE_ANNOTATION),
    )
    .await;
    assert_eq!(names(&recovered), names(&before));
    wait_event_count(&client, &ns, "quiet", "SafeModeLeft", 1, WAIT).await;
    assert_eq!(event_count(&client, &ns, "quiet", "PodsRestarted").await, 0);
    operator.stop().await;
}

/// With `degradeToSafemode: false`, an UNRESPONSIVE agent's pods are replaced (and not in safe
/// mode); once the model answers again the new pods' gate opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresponsive_agent_without_safe_mode_gets_new_pods() {
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-restart").await;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_agent(
        &agents,
        &probed_agent(
            "stuck",
            "openai",
            &fake.endpoint(),
            2,
            json!({"degradeToSafemode": false, "timeoutSeconds": 2}),
        ),
    )
    .await;
    wait_health(&agents, "stuck", CognitiveHealth::Healthy, WAIT).await;
    let before = wait_pods(&pods, "stuck", 2, "gate True", WAIT, |p| {
        gate_and_ready_are(p, "True")
    })
    .await;
    let old: HashSet<String> = before
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();

    fake.set(Behaviour::Silent);
    wait_health(&agents, "stuck", CognitiveHealth::Unresponsive, WAIT).await;
    let replaced = wait_pods(&pods, "stuck", 2, "replacement pods", WAIT, |p| {
        !old.contains(p.metadata.uid.as_deref().unwrap_or_default())
    })
    .await;
    wait_event_count(&client, &ns, "stuck", "PodsRestarted", 1, WAIT).await;
    assert_eq!(
        event_count(&client, &ns, "stuck", "SafeModeEntered").await,
        0
    );
    for pod in &replaced {
        assert!(
            !pod.annotations().contains_key(SAFE_MODE_ANNOTATION),
            "{:?}",
            pod_view(pod)
        );
    }

    fake.set(Behaviour::Correct);
    wait_health(&agents, "stuck", CognitiveHealth::Healthy, WAIT).await;
    let healthy = wait_pods(&pods, "stuck", 2, "new pods with gate True", WAIT, |p| {
        gate_and_ready_are(p, "True")
    })
    .await;
    assert!(
        healthy
            .iter()
            .all(|p| !old.contains(p.metadata.uid.as_deref().unwrap_or_default()))
    );
    operator.stop().await;
}

/// A model that answers correctly but slower than the latency budget (half the timeout) makes
/// the agent DEGRADED, and it stays DEGRADED — never UNRESPONSIVE — while it keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_is_degraded_not_unresponsive() {
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-slow").await;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    // Timeout 8 s, so answers after 4 s are slow; the fake takes 6 s: 2 s of margin each side.
    create_agent(
        &agents,
        &probed_agent(
            "ponder",
            "openai",
            &fake.endpoint(),
            1,
            json!({"intervalSeconds": 10, "timeoutSeconds": 8}),
        ),
    )
    .await;
    wait_health(&agents, "ponder", CognitiveHealth::Healthy, WAIT).await;

    fake.set(Behaviour::Slow(Duration::from_secs(6)));
    let degraded = wait_health(&agents, "ponder", CognitiveHealth::Degraded, WAIT).await;
    let (status, reason, _) = cognitive_ready(&degraded).expect("CognitiveReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Degraded"));
    wait_event(
        &client,
        &ns,
        "ponder",
        "CognitiveDegraded",
        "latency budget",
        WAIT,
    )
    .await;
    // Three more slow answers: still DEGRADED, and it was never UNRESPONSIVE.
    let seen = fake.calls_for("ponder");
    wait_calls(&fake, "ponder", seen + 3, WAIT).await;
    let agent = agents.get("ponder").await.expect("get Agent");
    assert_eq!(
        health(&agent),
        Some(CognitiveHealth::Degraded),
        "{}",
        describe(&agent)
    );
    assert!(
        event_notes(&client, &ns, "ponder", "CognitiveUnresponsive")
            .await
            .is_empty()
    );
    operator.stop().await;
}

/// The provider named in `spec.model` is the one called: an anthropic agent calls the
/// Anthropic-format fake only and an openai agent the OpenAI-format fake only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_calls_the_wire_format_of_its_provider() {
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-wire").await;
    let anthropic = FakeModel::start(Wire::Anthropic, API_KEY).await;
    let openai = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_agent(
        &agents,
        &probed_agent("claude", "anthropic", &anthropic.endpoint(), 1, json!({})),
    )
    .await;
    create_agent(
        &agents,
        &probed_agent("gpt", "openai", &openai.endpoint(), 0, json!({})),
    )
    .await;
    wait_health(&agents, "claude", CognitiveHealth::Healthy, WAIT).await;
    wait_health(&agents, "gpt", CognitiveHealth::Healthy, WAIT).await;
    wait_pods(&pods, "claude", 1, "gate and Ready True", WAIT, |p| {
        gate_and_ready_are(p, "True")
    })
    .await;
    // A few rounds each, so every probe kind went over each wire.
    wait_calls(&anthropic, "claude", 3, WAIT).await;
    wait_calls(&openai, "gpt", 3, WAIT).await;
    assert_eq!(anthropic.calls_for("gpt"), 0);
    assert_eq!(openai.calls_for("claude"), 0);
    assert_eq!((anthropic.rejected(), openai.rejected()), (0, 0));
    for fake in [&anthropic, &openai] {
        let kinds: HashSet<_> = fake
            .calls()
            .iter()
            .map(|c| format!("{:?}", c.kind))
            .collect();
        assert_eq!(
            kinds.len(),
            3,
            "{:?}: every probe kind, no unknown prompt: {kinds:?}",
            fake.wire()
        );
    }
    operator.stop().await;
}

/// Bad model configuration — a missing Secret, a Secret without the key, an endpoint that is
/// not a URL — gives CognitiveReady False with a reason and a message naming the field, a
/// Warning Event, a closed gate and no model call; a model the provider does not serve gives
/// `ModelNotFound` on `spec.model.name` until it appears; an unknown provider is refused by the
/// API server on the field. Another agent in the namespace stays HEALTHY, and fixing the input
/// (creating the Secret) brings the agent up without a restart of anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_model_configuration_names_the_field_and_spares_other_agents() {
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-bad").await;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    let mut no_secret = probed_agent("no-secret", "openai", &fake.endpoint(), 1, json!({}));
    let mut no_key = probed_agent("no-key", "openai", &fake.endpoint(), 0, json!({}));
    let mut bad_endpoint = probed_agent("bad-endpoint", "openai", "not a url", 0, json!({}));
    // Its model name is its own name, which the fake does not serve until told to.
    fake.forget("no-model");
    let no_model = probed_agent("no-model", "openai", &fake.endpoint(), 1, json!({}));
    if let Some(model) = no_secret.spec.model.as_mut() {
        model.secret_ref.as_mut().expect("secretRef").name = "missing".to_owned();
    }
    if let Some(model) = no_key.spec.model.as_mut() {
        model.secret_ref.as_mut().expect("secretRef").key = "nope".to_owned();
    }
    if let Some(model) = bad_endpoint.spec.model.as_mut() {
        model.secret_ref = None;
    }
    for agent in [&no_secret, &no_key, &bad_endpoint, &no_model] {
        create_agent(&agents, agent).await;
    }
    create_agent(
        &agents,
        &probed_agent("fine", "openai", &fake.endpoint(), 0, json!({})),
    )
    .await;

    // An unknown provider never gets in: the API server names the field. (The typed Agent
    // cannot even hold one, so the object is sent untyped.)
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kube::api::ApiResource::erase::<Agent>(&()),
    );
    let mut object = serde_json::to_value(probed_agent(
        "unknown-provider",
        "openai",
        &fake.endpoint(),
        0,
        json!({}),
    ))
    .expect("Agent as JSON");
    object["spec"]["model"]["provider"] = json!("gemini");
    let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
    let refused = raw
        .create(&PostParams::default(), &object)
        .await
        .expect_err("the API server refuses an unknown provider");
    assert!(
        refused.to_string().contains("spec.model.provider"),
        "{refused}"
    );

    for (name, reason, field) in [
        ("no-secret", "SecretNotFound", "spec.model.secretRef.name"),
        ("no-key", "SecretKeyNotFound", "spec.model.secretRef.key"),
        ("bad-endpoint", "InvalidEndpoint", "spec.model.endpoint"),
        ("no-model", "ModelNotFound", "spec.model.name"),
    ] {
        let condition = eventually_seen(
            &format!("CognitiveReady False/{reason} on Agent {name}"),
            WAIT,
            || async {
                let agent = agents.get(name).await.map_err(|e| e.to_string())?;
                match cognitive_ready(&agent) {
                    Some((status, r, message)) if status == "False" && r == reason => Ok(message),
                    _ => Err(describe(&agent)),
                }
            },
        )
        .await;
        assert!(condition.contains(field), "{name}: {condition}");
        assert!(!condition.contains(API_KEY), "{name}: the key leaked");
        wait_event_mentioning(&client, &ns, name, field).await;
    }
    wait_health(&agents, "fine", CognitiveHealth::Healthy, WAIT).await;
    wait_pods(&pods, "no-secret", 1, "gate False, not Ready", WAIT, |p| {
        gate_and_ready_are(p, "False")
    })
    .await;
    assert_eq!(fake.calls_for("no-secret"), 0);
    assert_eq!(fake.calls_for("no-key"), 0);
    assert_eq!(fake.rejected(), 0, "no call went out without the key");
    let no_model_agent = agents.get("no-model").await.expect("get no-model");
    assert_ne!(
        no_model_agent.status.and_then(|s| s.cognitive_health),
        Some(CognitiveHealth::Unresponsive),
        "a missing model is a configuration fault, not an unresponsive model"
    );
    wait_pods(&pods, "no-model", 1, "gate False, not Ready", WAIT, |p| {
        gate_and_ready_are(p, "False")
    })
    .await;

    // The model appears on the server: the next round finds it, without a change to the Agent.
    fake.learn("no-model");
    wait_health(&agents, "no-model", CognitiveHealth::Healthy, WAIT).await;

    // The fix: the Secret appears, and the agent is probed and becomes HEALTHY.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "missing"},
        "stringData": {SECRET_KEY: API_KEY},
    }))
    .expect("valid Secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the missing Secret");
    wait_health(&agents, "no-secret", CognitiveHealth::Healthy, WAIT).await;
    wait_pods(&pods, "no-secret", 1, "gate and Ready True", WAIT, |p| {
        gate_and_ready_are(p, "True")
    })
    .await;
    operator.stop().await;
}

/// Waits for an Event about Agent `name` (any reason) whose note names `field`.
async fn wait_event_mentioning(client: &kube::Client, ns: &str, name: &str, field: &str) {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    eventually_seen(
        &format!("an Event about Agent {name} naming {field}"),
        WAIT,
        || async {
            let notes: Vec<(Option<String>, Option<String>, Option<String>)> = events
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .map(|e| (e.type_, e.reason, e.note))
                .collect();
            if notes.iter().any(|(type_, _, note)| {
                type_.as_deref() == Some("Warning")
                    && note.as_deref().is_some_and(|n| n.contains(field))
            }) {
                Ok(())
            } else {
                Err(format!("{notes:?}"))
            }
        },
    )
    .await;
}

/// An agent with `health.type: HTTP` keeps ordinary Kubernetes readiness: no readiness gate,
/// Ready pods, no cognitive status, and not one call to its model while a probed neighbour
/// is probed round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_health_agent_gets_no_gate_and_no_probe_calls() {
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-http").await;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_agent(
        &agents,
        &probed_agent(
            "plain",
            "openai",
            &fake.endpoint(),
            1,
            json!({"type": "HTTP"}),
        ),
    )
    .await;
    create_agent(
        &agents,
        &probed_agent("probed", "openai", &fake.endpoint(), 0, json!({})),
    )
    .await;
    let plain_pods = wait_pods(&pods, "plain", 1, "Ready True", WAIT, |p| {
        pod_condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    wait_health(&agents, "probed", CognitiveHealth::Healthy, WAIT).await;
    wait_calls(&fake, "probed", 4, WAIT).await;

    for pod in &plain_pods {
        let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.clone());
        assert!(gates.unwrap_or_default().is_empty(), "{:?}", pod_view(pod));
        assert_eq!(pod_condition(pod, READINESS_GATE), None);
    }
    let plain = agents.get("plain").await.expect("get Agent");
    assert_eq!(health(&plain), None, "{}", describe(&plain));
    assert_eq!(cognitive_ready(&plain), None, "{}", describe(&plain));
    assert_eq!(fake.calls_for("plain"), 0);
    operator.stop().await;
}

/// A hundred probing agents and a budget of 60 calls a minute: the calls the fake receives
/// never exceed the budget in any window of (just under) a minute, the runner reports waiting
/// for the budget, and the budget is shared across agents rather than spent on a few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_probing_agents_stay_within_the_call_budget() {
    const AGENTS: usize = 100;
    const BUDGET: u32 = 60;
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "cog-budget").await;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let operator = start_operator(
        client.clone(),
        &ns,
        ProbeConfig {
            calls_per_minute: BUDGET,
            ..probe_config()
        },
    );
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    for i in 0..AGENTS {
        create_agent(
            &agents,
            &probed_agent(
                &format!("swarm-{i:03}"),
                "openai",
                &fake.endpoint(),
                0,
                json!({}),
            ),
        )
        .await;
    }
    // Demand is 100 agents × 12 calls a minute = 1,200: twenty times the budget. Observe a
    // little over two budget windows' worth of calls.
    let wanted = 2 * BUDGET as usize + 10;
    eventually_seen(
        &format!("{wanted} probe calls"),
        Duration::from_secs(420),
        || async {
            let n = fake.total_calls();
            if n >= wanted {
                Ok(())
            } else {
                Err(format!("{n} calls"))
            }
        },
    )
    .await;
    let times: Vec<Instant> = fake.calls().iter().map(|c| c.at).collect();
    // Arrival times jitter a little against the runner's start times; a window 2 s shorter
    // than a minute absorbs that without letting a budget overrun through.
    let window = Duration::from_secs(58);
    let busiest = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| **t >= *start && t.duration_since(*start) < window)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= BUDGET as usize,
        "{busiest} calls arrived within {window:?}; the budget is {BUDGET} a minute"
    );
    let distinct: HashSet<String> = fake.calls().into_iter().map(|c| c.model).collect();
    eprintln!(
        "{} calls; busiest {window:?}: {busiest}; {} agents probed",
        times.len(),
        distinct.len()
    );
    assert!(
        distinct.len() >= AGENTS / 2,
        "the budget went to only {} agents",
        distinct.len()
    );
    let waits = operator
        .metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("kgents_probe_budget_waits_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(waits > 0, "demand exceeds the budget, so rounds waited");
    operator.stop().await;
}
