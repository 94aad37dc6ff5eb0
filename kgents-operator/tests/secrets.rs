//! The secrets audit: a canary API key and a canary Secret value flow through every path that
//! touches model credentials, and afterwards nothing the operator emitted contains them.
//!
//! On the testbed, an in-process operator (Agent controller and cognitive runner) probes
//! agents whose `spec.model.secretRef` names a Secret holding the canary key: one against a
//! fake model that accepts the key, two against fakes (OpenAI-compatible and Anthropic wire
//! formats) that refuse it with 401, one whose Secret lacks the key named (the Secret's other
//! value is the canary Secret value), one whose key is not a valid header value. The LLM
//! proposal reviewer asks a model that refuses the key. Then every log line (all targets, at
//! TRACE, `log` records included), every Event, Agent status, Deployment, ConfigMap, Pod and
//! ServiceAccount in the namespace, every metric label and every error and `Debug` output is
//! searched: the canaries never appear, in plain text or base64. The fakes' logs of what they
//! received show that the key really was sent.

mod support;
mod support_cognitive;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kgents_crds::Agent;
use kgents_crds::agent::CognitiveHealth;
use kgents_llm::{ModelConfig, RetryPolicy, RuntimeOptions, build_client_with};
use kgents_operator::proposal::{LlmReviewer, ReviewRequest, ReviewVerdict, Reviewer};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use secrecy::SecretString;
use serde_json::json;
use support_cognitive::fake_model::{FakeModel, Wire};
use support_cognitive::*;

/// The canary API key: what the model Secret holds under the key agents name.
const CANARY_KEY: &str = "sk-kgents-canary-key-7f3a9c2e1d5b";
/// The canary Secret value: another key of the same Secret, which nothing may ever read out.
const CANARY_VALUE: &str = "kgents-canary-secret-value-4e8d2a";
/// What the refusing fakes accept instead.
const OTHER_KEY: &str = "sk-some-other-key-000000000000";
/// Generous: the machine has two cores shared with builds.
const WAIT: Duration = Duration::from_secs(180);

/// Everything every tracing subscriber and `log` record wrote, as text.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Installs a global subscriber writing every event and span field at TRACE into the
    /// buffer (and `log` records through the subscriber's log bridge).
    fn install() -> LogBuffer {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_target(true)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the audit's subscriber is the first in this test binary");
        buffer
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The forms a canary could leak in: as written, and base64 as a Secret's `data` holds it.
fn forms(canary: &str) -> [String; 2] {
    let base64 = serde_json::to_string(&ByteString(canary.as_bytes().to_vec()))
        .expect("base64 of the canary");
    [canary.to_owned(), base64.trim_matches('"').to_owned()]
}

/// Panics, naming `what` and the surrounding text, if a canary occurs in `text`.
fn assert_clean(what: &str, text: &str) {
    for canary in [CANARY_KEY, CANARY_VALUE] {
        for form in forms(canary) {
            if let Some(at) = text.find(&form) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(200)
                    .map_or(0, |(i, _)| i);
                let end = (at + form.len() + 200).min(text.len());
                let end = (end..=text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                panic!("a canary leaked into {what}: …{}…", &text[start..end]);
            }
        }
    }
}

async fn create_secret(client: &Client, namespace: &str, name: &str, data: serde_json::Value) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": data,
    }))
    .expect("valid Secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create a Secret");
}

/// Every object of kind `K` in `namespace`, as JSON text.
async fn dump<K>(client: &Client, namespace: &str) -> String
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list objects");
    format!(
        "{} {:?}",
        serde_json::to_string(&list.items).expect("objects as JSON"),
        list.items
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_never_leave_the_secret() {
    let logs = LogBuffer::install();
    let testbed = testbed_with_nodes().await;
    let (ns, client) = namespace(testbed, "secrets").await;
    create_secret(
        &client,
        &ns,
        "canary",
        json!({SECRET_KEY: CANARY_KEY, "other": CANARY_VALUE}),
    )
    .await;
    create_secret(
        &client,
        &ns,
        "bad-canary",
        json!({SECRET_KEY: format!("{CANARY_KEY} {CANARY_VALUE}")}),
    )
    .await;

    let accepting = FakeModel::start(Wire::OpenAi, CANARY_KEY).await;
    let refusing_openai = FakeModel::start(Wire::OpenAi, OTHER_KEY).await;
    let refusing_anthropic = FakeModel::start(Wire::Anthropic, OTHER_KEY).await;

    let operator = start_operator(client.clone(), &ns, probe_config());
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let with_secret = |name: &str, wire: Wire, endpoint: &str, secret: &str, key: &str| {
        let mut agent = probed_agent(name, wire.provider(), endpoint, 0, json!({}));
        if let Some(reference) = agent
            .spec
            .model
            .as_mut()
            .and_then(|m| m.secret_ref.as_mut())
        {
            reference.name = secret.to_owned();
            reference.key = key.to_owned();
        }
        agent
    };
    for agent in [
        with_secret(
            "accepted",
            Wire::OpenAi,
            &accepting.endpoint(),
            "canary",
            SECRET_KEY,
        ),
        with_secret(
            "refused-openai",
            Wire::OpenAi,
            &refusing_openai.endpoint(),
            "canary",
            SECRET_KEY,
        ),
        with_secret(
            "refused-anthropic",
            Wire::Anthropic,
            &refusing_anthropic.endpoint(),
            "canary",
            SECRET_KEY,
        ),
        with_secret(
            "missing-key",
            Wire::OpenAi,
            &accepting.endpoint(),
            "canary",
            "nope",
        ),
        with_secret(
            "bad-key",
            Wire::OpenAi,
            &accepting.endpoint(),
            "bad-canary",
            SECRET_KEY,
        ),
    ] {
        create_agent(&agents, &agent).await;
    }

    // Every path has been taken: probes answered with the key, refused with 401 on both wire
    // formats, and the two configuration faults reported.
    wait_health(&agents, "accepted", CognitiveHealth::Healthy, WAIT).await;
    for (name, fake) in [
        ("refused-openai", &refusing_openai),
        ("refused-anthropic", &refusing_anthropic),
    ] {
        eventually_seen(
            &format!("Agent {name}'s refused probes recorded in its status"),
            WAIT,
            || async {
                let agent = agents.get(name).await.map_err(|e| e.to_string())?;
                let recorded = agent
                    .status
                    .as_ref()
                    .is_some_and(|s| s.last_probe.is_some())
                    || cognitive_ready(&agent).is_some_and(|(status, _, _)| status == "False");
                if fake.rejected() >= 1 && recorded {
                    Ok(())
                } else {
                    Err(format!(
                        "{} refused calls; {}",
                        fake.rejected(),
                        describe(&agent)
                    ))
                }
            },
        )
        .await;
    }
    for name in ["missing-key", "bad-key"] {
        eventually_seen(
            &format!("CognitiveReady False on Agent {name}"),
            WAIT,
            || async {
                let agent = agents.get(name).await.map_err(|e| e.to_string())?;
                match cognitive_ready(&agent) {
                    Some((status, _, message)) if status == "False" => Ok(message),
                    _ => Err(describe(&agent)),
                }
            },
        )
        .await;
    }

    // The LLM reviewer, asking models that refuse the key.
    let reviewer_options = RuntimeOptions::default()
        .with_retry(RetryPolicy::none())
        .with_request_timeout(Duration::from_secs(10));
    let request = ReviewRequest {
        proposal: format!("{ns}/scale-accepted"),
        spec: json!({"changeType": "AGENT_SCALE", "proposer": "alice"}),
        patch: Some(json!({"spec": {"replicas": 2}})),
        target: None,
        risk: "risk 0.30 MEDIUM".to_owned(),
    };
    let mut reviewer_output = String::new();
    for fake in [&refusing_openai, &refusing_anthropic] {
        let config = ModelConfig::from_parts(
            fake.wire().provider(),
            Some("reviewer"),
            Some(&fake.endpoint()),
            Some(SecretString::from(CANARY_KEY)),
        )
        .expect("a valid reviewer model");
        let client = build_client_with(&config, &reviewer_options).expect("a reviewer client");
        let reviewer = LlmReviewer::new(client, "t-gent/audit", Duration::from_secs(20));
        let report = reviewer.review(&request).await;
        assert_eq!(report.verdict, ReviewVerdict::Escalate, "{report:?}");
        reviewer_output.push_str(&format!(
            "{config:?} {config:#?} {reviewer:?} {report:?} {}\n",
            report.report
        ));
    }

    // Configuration errors of every kind, built with the canary key.
    let mut errors = String::new();
    for (provider, endpoint) in [
        ("openai", "not a url"),
        ("openai", "ftp://example.com"),
        ("claude-cli", "http://127.0.0.1:9"),
        ("gemini", "http://127.0.0.1:9"),
    ] {
        let error = ModelConfig::from_parts(
            provider,
            Some("m"),
            Some(endpoint),
            Some(SecretString::from(CANARY_KEY)),
        )
        .expect_err("an invalid configuration");
        errors.push_str(&format!("{error} {error:?}\n"));
    }
    let error = ModelConfig::from_parts(
        "openai",
        Some("m"),
        None,
        Some(SecretString::from(format!("{CANARY_KEY}\n{CANARY_VALUE}"))),
    )
    .expect_err("a key that is not a header value");
    errors.push_str(&format!("{error} {error:?}\n"));

    // Let a few more probe rounds run (retries, repeated refusals), then stop and collect.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let metrics = operator.metrics.encode();
    operator.stop().await;

    let mut cluster = String::new();
    cluster.push_str(&dump::<Agent>(&client, &ns).await);
    cluster.push_str(&dump::<k8s_openapi::api::events::v1::Event>(&client, &ns).await);
    cluster.push_str(&dump::<k8s_openapi::api::core::v1::Event>(&client, &ns).await);
    cluster.push_str(&dump::<Deployment>(&client, &ns).await);
    cluster.push_str(&dump::<ConfigMap>(&client, &ns).await);
    cluster.push_str(&dump::<Pod>(&client, &ns).await);
    cluster.push_str(&dump::<ServiceAccount>(&client, &ns).await);
    // The Events really are about these paths (so the search below searched something).
    for reason in [
        "SecretKeyNotFound",
        "spec.model.secretRef.key",
        "refused-openai",
    ] {
        assert!(
            cluster.contains(reason),
            "no trace of {reason} in {cluster}"
        );
    }

    // The key was sent: the accepting fake answered calls made with it, the refusing ones
    // refused calls that carried a key.
    assert!(
        accepting.total_calls() >= 1,
        "the accepting fake was called"
    );
    assert!(refusing_openai.rejected() >= 2 && refusing_anthropic.rejected() >= 2);

    let logs = logs.text();
    assert!(
        logs.contains("refused-openai") && logs.lines().count() > 100,
        "the log capture works: {} lines",
        logs.lines().count()
    );
    assert_clean("the log (tracing and log records, TRACE)", &logs);
    assert_clean(
        "objects in the namespace (status, Events, workloads)",
        &cluster,
    );
    assert_clean("metric labels", &metrics);
    assert_clean("the reviewer's reports and Debug output", &reviewer_output);
    assert_clean("configuration errors", &errors);
}
