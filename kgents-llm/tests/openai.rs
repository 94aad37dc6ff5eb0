//! The OpenAI-compatible client against local servers speaking the chat completions wire
//! format as OpenAI, OpenRouter, Ollama and vLLM do.

mod support;

use std::time::{Duration, Instant};

use kgents_llm::{
    CompletionRequest, LlmClient, LlmError, ModelConfig, OpenAiClient, build_client_with,
};
use secrecy::SecretString;
use serde_json::json;
use support::{FakeServer, Reply, ReplyBody, SECRET_KEY, assert_no_key, fast_options};

fn config(provider: &str, base: &str, key: Option<&str>) -> ModelConfig {
    ModelConfig::from_parts(
        provider,
        Some("test-model"),
        Some(base),
        key.map(SecretString::from),
    )
    .expect("valid configuration")
}

fn openai(base: &str) -> OpenAiClient {
    OpenAiClient::new(
        &config("openai", &format!("{base}/v1"), Some(SECRET_KEY)),
        &fast_options(),
    )
    .unwrap()
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: "Answer with a number only.".into(),
        user: "What is 7 * 6?".into(),
        temperature: 0.0,
        max_tokens: 32,
    }
}

fn completion(text: &str) -> serde_json::Value {
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
        "usage": {"prompt_tokens": 19, "completion_tokens": 1, "total_tokens": 20}
    })
}

fn openai_error(status_kind: &str, code: Option<&str>, text: &str) -> serde_json::Value {
    json!({"error": {"message": text, "type": status_kind, "param": null, "code": code}})
}

async fn fails(client: &OpenAiClient) -> LlmError {
    let e = client
        .complete(&request())
        .await
        .expect_err("the call should fail");
    assert_no_key(&format!("{e} {e:?}"));
    e
}

#[tokio::test]
async fn answer_and_request_match_chat_completions() {
    let server = FakeServer::start(vec![
        Reply::json(200, completion("42")).header("x-request-id", "req_abc"),
    ])
    .await;
    let c = openai(&server.base).complete(&request()).await.unwrap();
    assert_eq!(c.text, "42");
    assert_eq!((c.input_tokens, c.output_tokens), (Some(19), Some(1)));

    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-api-key"), None);
    assert_eq!(
        r.json(),
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "Answer with a number only."},
                {"role": "user", "content": "What is 7 * 6?"}
            ],
            "temperature": 0.0,
            "max_tokens": 32
        })
    );
}

#[tokio::test]
async fn local_server_without_key_gets_no_authorization_header() {
    let server = FakeServer::start(vec![Reply::json(200, completion("42"))]).await;
    let client = build_client_with(
        &config("openai", &format!("{}/v1", server.base), None),
        &fast_options(),
    )
    .unwrap();
    assert_eq!(client.complete(&request()).await.unwrap().text, "42");
    assert_eq!(server.received()[0].header("authorization"), None);
}

#[tokio::test]
async fn openrouter_uses_its_endpoint_path_and_bearer_key() {
    let server = FakeServer::start(vec![Reply::json(200, completion("42"))]).await;
    let client = build_client_with(
        &config(
            "openrouter",
            &format!("{}/api/v1", server.base),
            Some(SECRET_KEY),
        ),
        &fast_options(),
    )
    .unwrap();
    assert_eq!(client.complete(&request()).await.unwrap().text, "42");
    let r = &server.received()[0];
    assert_eq!(r.path, "/api/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );
}

#[tokio::test]
async fn ollama_is_reached_through_its_v1_api_and_names_a_missing_model() {
    let server = FakeServer::start(vec![
        Reply::json(200, completion("42")),
        Reply::json(
            404,
            json!({"error": {"message": "model \"test-model\" not found, try pulling it first", "type": "api_error", "param": null, "code": null}}),
        ),
    ])
    .await;
    // The server's own URL, as spec.model.endpoint gives it for ollama.
    let client = build_client_with(&config("ollama", &server.base, None), &fast_options()).unwrap();
    assert_eq!(client.complete(&request()).await.unwrap().text, "42");
    assert_eq!(server.received()[0].path, "/v1/chat/completions");

    let e = client.complete(&request()).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::ModelNotFound { model, message } if model == "test-model"
            && message.contains("model 'test-model' does not exist") && message.contains("try pulling it")),
        "{e:?}"
    );
}

#[tokio::test]
async fn openai_unknown_model_is_named() {
    let server = FakeServer::start(vec![Reply::json(
        404,
        openai_error(
            "invalid_request_error",
            Some("model_not_found"),
            "The model `test-model` does not exist or you do not have access to it.",
        ),
    )])
    .await;
    let e = fails(&openai(&server.base)).await;
    assert!(
        matches!(&e, LlmError::ModelNotFound { message, .. } if message.contains("does not exist at openai")),
        "{e:?}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn vllm_unknown_model_is_named() {
    let server = FakeServer::start(vec![Reply::json(
        404,
        json!({"object": "error", "message": "The model `test-model` does not exist.", "type": "NotFoundError", "param": null, "code": 404}),
    )])
    .await;
    let e = fails(&openai(&server.base)).await;
    assert!(
        matches!(&e, LlmError::ModelNotFound { message, .. } if message.contains("model 'test-model' does not exist")),
        "{e:?}"
    );
}

#[tokio::test]
async fn wrong_base_path_is_told_apart_from_a_missing_model() {
    let server = FakeServer::start(vec![Reply::raw(404, "404 page not found")]).await;
    let e = fails(&openai(&server.base)).await;
    assert!(
        matches!(&e, LlmError::Provider { status: Some(404), message } if message.contains("check the endpoint")),
        "{e:?}"
    );
}

#[tokio::test]
async fn rate_limit_with_retry_after_ms_then_success() {
    let server = FakeServer::start(vec![
        Reply::json(
            429,
            openai_error(
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached",
            ),
        )
        .header("retry-after-ms", "300")
        .header("retry-after", "1"),
        Reply::json(200, completion("42")),
    ])
    .await;
    let started = Instant::now();
    let c = openai(&server.base).complete(&request()).await.unwrap();
    assert_eq!(c.text, "42");
    assert_eq!(server.hits(), 2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(950),
        "retry-after-ms should win over retry-after: waited {waited:?}"
    );
}

#[tokio::test]
async fn server_errors_then_success_and_until_give_up() {
    let server = FakeServer::start(vec![
        Reply::json(502, json!({"error": "bad gateway"})),
        Reply::json(200, completion("42")),
    ])
    .await;
    assert_eq!(
        openai(&server.base)
            .complete(&request())
            .await
            .unwrap()
            .text,
        "42"
    );
    assert_eq!(server.hits(), 2);

    let server = FakeServer::start(vec![Reply::json(
        500,
        openai_error("server_error", None, "The server had an error"),
    )])
    .await;
    let e = fails(&openai(&server.base)).await;
    assert!(
        matches!(&e, LlmError::Provider { status: Some(500), message } if message.contains("The server had an error")),
        "{e:?}"
    );
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn bad_key_is_an_auth_error() {
    let server = FakeServer::start(vec![Reply::json(
        401,
        openai_error(
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided: sk-test-****4242.",
        ),
    )])
    .await;
    let e = fails(&openai(&server.base)).await;
    assert!(
        matches!(&e, LlmError::Auth { message } if message.contains("Incorrect API key")),
        "{e:?}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let server = FakeServer::start(vec![Reply::json(
        400,
        openai_error("invalid_request_error", None, "max_tokens is too large"),
    )])
    .await;
    let e = fails(&openai(&server.base)).await;
    assert!(
        matches!(&e, LlmError::Provider { status: Some(400), message } if message.contains("max_tokens is too large")),
        "{e:?}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn malformed_truncated_and_misshapen_answers_are_bad_responses() {
    let full = completion("42").to_string();
    let truncated: &'static str = Box::leak(full[..full.len() - 10].to_owned().into_boxed_str());
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::raw(200, "data: {\"choices\":[]}\n\n"),
            "not valid JSON",
        ),
        (Reply::raw(200, truncated), "ends early"),
        (
            Reply::json(200, json!({"id": "x", "object": "chat.completion"})),
            "missing field `choices`",
        ),
        (
            Reply::json(200, json!({"choices": []})),
            "`choices` is empty",
        ),
        (
            Reply::json(200, json!({"choices": [{"index": 0}]})),
            "missing field `message`",
        ),
        (
            Reply::json(200, json!({"choices": "nope"})),
            "not the expected shape",
        ),
    ];
    for (reply, expected) in cases {
        let server = FakeServer::start(vec![reply]).await;
        let e = fails(&openai(&server.base)).await;
        assert!(
            matches!(&e, LlmError::BadResponse { message } if message.contains(expected)),
            "expected {expected:?}, got {e:?}"
        );
    }
}

#[tokio::test]
async fn openrouter_error_inside_a_200_is_a_provider_error() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        json!({"error": {"code": 502, "message": "Provider returned error"}}),
    )])
    .await;
    let e = fails(&openai(&server.base)).await;
    assert_eq!(
        e,
        LlmError::Provider {
            status: Some(502),
            message: "openai answered 200 with an error: Provider returned error".into()
        }
    );
}

#[tokio::test]
async fn slow_answer_times_out() {
    let server = FakeServer::start(vec![
        Reply::json(200, completion("42")).delayed(Duration::from_secs(5)),
    ])
    .await;
    let options = fast_options().with_request_timeout(Duration::from_millis(300));
    let client = OpenAiClient::new(
        &config("openai", &format!("{}/v1", server.base), None),
        &options,
    )
    .unwrap();
    let started = Instant::now();
    assert_eq!(
        fails(&client).await,
        LlmError::Timeout {
            after: Duration::from_millis(300)
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn huge_answer_is_refused() {
    let server = FakeServer::start(vec![Reply::raw(200, "").with_body(ReplyBody::Chunked {
        chunk: 256 * 1024,
        count: 40,
    })])
    .await;
    let e = fails(&openai(&server.base)).await;
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("8192 KiB cap")),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output() {
    assert_no_key(&format!("{:?}", openai("http://127.0.0.1:9")));
}
