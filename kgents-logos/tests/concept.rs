//! The model paths (`concept.*`) through the Logos against local servers speaking the
//! OpenAI chat-completions wire format (the fake model servers kgents-llm is tested with):
//! good answers, malformed JSON then a good one, malformed twice, slow and silent models, and
//! token budgets enforced before the call.

#[path = "../../kgents-llm/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kgents_core::agentese::Affordances;
use kgents_core::clock::ManualClock;
use kgents_crds::Umwelt;
use kgents_llm::{ModelConfig, OpenAiClient};
use kgents_logos::concept::{ConceptOutput, TokenUsage};
use kgents_logos::{
    Args, Caller, ConceptModel, ConceptOptions, Error, ErrorKind, Logos, MemoryCluster, Outcome,
    Scope,
};
use kgents_probes::LlmError;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{FakeServer, Reply, ReplyBody, SECRET_KEY, fast_options};

fn completion(text: &str, prompt_tokens: u32, completion_tokens: u32) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
    })
}

const DEFINITION: &str = r#"{"term": "umwelt", "definition": "The slice of the cluster an agent can perceive and act on.", "examples": ["b-gent's umwelt grants world.*.manifest"], "related": ["affordance", "RBAC"]}"#;

fn reply(text: &str) -> Reply {
    Reply::json(200, completion(text, 100, 50))
}

fn logos(server: &FakeServer, options: ConceptOptions) -> Logos {
    let config = ModelConfig::from_parts(
        "openai",
        Some("test-model"),
        Some(&format!("{}/v1", server.base)),
        Some(SecretString::from(SECRET_KEY)),
    )
    .unwrap();
    let client = Arc::new(OpenAiClient::new(&config, &fast_options()).unwrap());
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_second(1_800_000_000).unwrap(),
    ));
    let cluster = Arc::new(MemoryCluster::new("alice", clock.clone()));
    Logos::new(cluster.clone(), Some(cluster))
        .with_clock(clock)
        .with_model(Arc::new(ConceptModel::new(client, "test-model", options)))
}

fn args(input: Value) -> Args {
    let mut args = Args::new(Scope::Namespace("team".into()));
    args.input = input;
    args
}

fn alice() -> Caller {
    Caller::unrestricted("alice")
}

fn concept(outcome: Outcome) -> kgents_logos::ConceptAnswer {
    match outcome {
        Outcome::Concept(answer) => answer,
        other => panic!("not a concept answer: {other:?}"),
    }
}

#[tokio::test]
async fn each_path_answers_with_its_checked_typed_result_and_usage() {
    let blend = r#"{"name": "swarm memory", "description": "d", "from_a": ["decay"], "from_b": ["recall"], "emergent": ["forgetting on purpose"]}"#;
    let refine = r#"{"critique": ["too long"], "refined": "Scale b-gent to two.", "changes": ["shortened"]}"#;
    let server = FakeServer::start(vec![reply(DEFINITION), reply(blend), reply(refine)]).await;
    let logos = logos(&server, ConceptOptions::default());

    let answer = concept(
        logos
            .invoke(
                &alice(),
                "concept.define",
                args(json!({"term": "umwelt", "context": "K8-gents"})),
            )
            .await
            .unwrap(),
    );
    let ConceptOutput::Definition(definition) = &answer.answer else {
        panic!("{answer:?}")
    };
    assert_eq!(definition.term, "umwelt");
    assert_eq!(definition.related, ["affordance", "RBAC"]);
    assert_eq!((answer.attempts, answer.model.as_str()), (1, "test-model"));
    assert_eq!(
        answer.usage,
        TokenUsage {
            input: 100,
            output: 50,
            total: 150,
            estimated: false,
            budget: None,
            left: None
        }
    );
    // The request carried the schema and the term.
    let sent = server.received()[0].json();
    let text = sent.to_string();
    assert!(
        text.contains("umwelt") && text.contains("additionalProperties"),
        "{text}"
    );

    let blended = concept(
        logos
            .invoke(
                &alice(),
                "concept.blend.forge",
                args(json!({"a": "pheromone", "b": "memory"})),
            )
            .await
            .unwrap(),
    );
    assert!(
        matches!(blended.answer, ConceptOutput::Blend(ref b) if b.emergent == ["forgetting on purpose"])
    );
    let refined = concept(
        logos
            .invoke(&alice(), "concept.refine", args(json!({"text": "Please would you scale b-gent up to two replicas if possible", "goal": "brevity"})))
            .await
            .unwrap(),
    );
    assert!(
        matches!(refined.answer, ConceptOutput::Refinement(ref r) if r.refined == "Scale b-gent to two.")
    );
    // The JSON every front-end sends is tagged with the kind.
    let json = serde_json::to_value(Outcome::Concept(refined)).unwrap();
    assert_eq!(json["kind"], "concept");
    assert_eq!(json["data"]["answer"]["type"], "refinement");

    // Bad input names the field and never reaches the model.
    let hits = server.hits();
    let error = logos
        .invoke(&alice(), "concept.blend.forge", args(json!({"a": "x"})))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Usage);
    assert!(error.to_string().contains("\"b\" is required"), "{error}");
    assert_eq!(server.hits(), hits);
}

#[tokio::test]
async fn a_malformed_answer_is_retried_once_with_the_problem_named() {
    let server = FakeServer::start(vec![
        reply(r#"{"term": "umwelt", "definition": "#),
        reply(DEFINITION),
    ])
    .await;
    let logos = logos(&server, ConceptOptions::default());
    let answer = concept(
        logos
            .invoke(&alice(), "concept.define", args(json!({"term": "umwelt"})))
            .await
            .unwrap(),
    );
    assert_eq!(answer.attempts, 2);
    assert_eq!(answer.usage.total, 300, "both attempts are charged");
    let retry = server.received()[1].json().to_string();
    assert!(retry.contains("previous answer was rejected"), "{retry}");
    assert!(retry.contains("not JSON"), "{retry}");
}

#[tokio::test]
async fn an_answer_invalid_twice_is_reported_as_such() {
    let server = FakeServer::start(vec![
        reply("I think an umwelt is a kind of world."),
        reply(r#"{"term": "umwelt", "definition": "", "examples": [], "related": []}"#),
    ])
    .await;
    let logos = logos(&server, ConceptOptions::default());
    let error = logos
        .invoke(&alice(), "concept.define", args(json!({"term": "umwelt"})))
        .await
        .unwrap_err();
    let Error::InvalidAnswer {
        attempts,
        reason,
        usage,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*attempts, 2);
    assert!(
        reason.contains("$.definition: expected a non-empty string"),
        "{reason}"
    );
    assert_eq!(usage.total, 300);
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert!(
        error.to_string().contains("invalid after 2 attempts"),
        "{error}"
    );
    assert_eq!(server.hits(), 2, "retried once, not more");
}

#[tokio::test]
async fn slow_and_silent_models_end_at_the_deadline() {
    let options = ConceptOptions {
        deadline: Duration::from_millis(300),
        ..ConceptOptions::default()
    };
    // Slow: the answer would come after the deadline.
    let slow = FakeServer::start(vec![reply(DEFINITION).delayed(Duration::from_secs(3))]).await;
    // Silent: headers and then nothing.
    let silent = FakeServer::start(vec![
        reply(DEFINITION).with_body(ReplyBody::Stalled(b"{\"id\":".to_vec())),
    ])
    .await;
    for server in [&slow, &silent] {
        let logos = logos(server, options.clone());
        let started = Instant::now();
        let error = logos
            .invoke(&alice(), "concept.define", args(json!({"term": "umwelt"})))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(
                &error,
                Error::Model {
                    source: LlmError::Timeout { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(
            error.to_string().contains("did not answer within 300ms"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn budgets_are_enforced_before_the_call_and_reported() {
    let server = FakeServer::start(vec![reply(DEFINITION)]).await;
    let logos = logos(
        &server,
        ConceptOptions {
            default_budget: Some(200),
            ..ConceptOptions::default()
        },
    );
    // An unrestricted caller gets the configured default: 150 of 200 used, 50 left.
    let first = concept(
        logos
            .invoke(&alice(), "concept.define", args(json!({"term": "umwelt"})))
            .await
            .unwrap(),
    );
    assert_eq!(
        (first.usage.budget, first.usage.left),
        (Some(200), Some(50))
    );
    let sent = server.received()[0].json();
    assert_eq!(
        sent["max_tokens"], 200,
        "an answer may not exceed what is left"
    );
    let second = concept(
        logos
            .invoke(&alice(), "concept.define", args(json!({"term": "umwelt"})))
            .await
            .unwrap(),
    );
    assert_eq!(second.usage.left, Some(0));
    assert_eq!(server.received()[1].json()["max_tokens"], 50);
    let hits = server.hits();
    let error = logos
        .invoke(&alice(), "concept.define", args(json!({"term": "umwelt"})))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), hits, "refused without a call");
    assert!(
        matches!(
            error,
            Error::BudgetExhausted {
                limit: 200,
                spent: 300,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Denied);
    assert!(
        error.to_string().contains("300 of 200 tokens, 0 left"),
        "{error}"
    );

    // A restricted caller's budget is its Umwelt's tokenBudget, accounted apart from others.
    let umwelt: Umwelt = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Umwelt",
        "metadata": {"name": "b-view", "namespace": "team"},
        "spec": {"agent": "b-gent", "affordances": ["concept.*"], "constraints": {"tokenBudget": 1000}},
    }))
    .unwrap();
    let agent = Caller::from_umwelt(&umwelt).unwrap();
    assert_eq!(agent.token_budget(), Some(1000));
    let answer = concept(
        logos
            .invoke(&agent, "concept.define", args(json!({"term": "umwelt"})))
            .await
            .unwrap(),
    );
    assert_eq!(
        (answer.usage.budget, answer.usage.left),
        (Some(1000), Some(850))
    );
    // An exhausted Umwelt: refused before any call.
    let broke = Caller::restricted(
        "agent c-gent",
        "team/c-view",
        Affordances::parse_all(["concept.*"]).unwrap(),
    )
    .with_token_budget(Some(0));
    let hits = server.hits();
    let error = logos
        .invoke(&broke, "concept.refine", args(json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::BudgetExhausted {
                limit: 0,
                spent: 0,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.hits(), hits);
}

#[tokio::test]
async fn without_a_model_the_paths_say_how_to_configure_one() {
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_second(1_800_000_000).unwrap(),
    ));
    let cluster = Arc::new(MemoryCluster::new("alice", clock));
    let logos = Logos::new(cluster, None);
    for path in ["concept.define", "concept.blend.forge", "concept.refine"] {
        let error = logos
            .invoke(&alice(), path, args(json!({"term": "x"})))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::NoModel { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("no model configured") && text.contains("KGENTS_MODEL_PROVIDER"),
            "{text}"
        );
    }
}
