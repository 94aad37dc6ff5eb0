//! The Anthropic client against a local server speaking the Messages API wire format.

mod support;

use std::time::{Duration, Instant};

use kgents_llm::{
    AnthropicClient, CompletionRequest, LlmClient, LlmError, ModelConfig, RetryPolicy,
    RuntimeOptions, build_client_with,
};
use secrecy::SecretString;
use serde_json::json;
use support::{
    FakeServer, Reply, ReplyBody, SECRET_KEY, assert_no_key, broken_server, closed_port,
    fast_options,
};

fn config(base: &str) -> ModelConfig {
    ModelConfig::from_parts(
        "anthropic",
        Some("claude-test-1"),
        Some(base),
        Some(SecretString::from(SECRET_KEY)),
    )
    .expect("valid configuration")
}

fn client(base: &str, options: &RuntimeOptions) -> AnthropicClient {
    AnthropicClient::new(&config(base), options).expect("client builds")
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: "Answer with a number only.".into(),
        user: "What is 7 * 6?".into(),
        temperature: 0.0,
        max_tokens: 32,
    }
}

fn message(text: &str) -> serde_json::Value {
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-1",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 21, "output_tokens": 2}
    })
}

fn error_body(kind: &str, text: &str) -> serde_json::Value {
    json!({"type": "error", "error": {"type": kind, "message": text}})
}

async fn fails(server: &FakeServer, options: &RuntimeOptions) -> LlmError {
    let e = client(&server.base, options)
        .complete(&request())
        .await
        .expect_err("the call should fail");
    assert_no_key(&format!("{e} {e:?}"));
    e
}

#[tokio::test]
async fn answer_and_request_match_the_messages_api() {
    let server = FakeServer::start(vec![
        Reply::json(200, message("42")).header("request-id", "req_011"),
    ])
    .await;
    let c = client(&server.base, &fast_options())
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(c.text, "42");
    assert_eq!((c.input_tokens, c.output_tokens), (Some(21), Some(2)));

    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(SECRET_KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.json(),
        json!({
            "model": "claude-test-1",
            "max_tokens": 32,
            "system": "Answer with a number only.",
            "messages": [{"role": "user", "content": "What is 7 * 6?"}],
            "temperature": 0.0
        })
    );
}

#[tokio::test]
async fn text_blocks_are_joined_and_other_blocks_skipped() {
    let body = json!({
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "4"},
            {"type": "text", "text": "2"}
        ],
        "usage": {"input_tokens": 1, "output_tokens": 1}
    });
    let server = FakeServer::start(vec![Reply::json(200, body)]).await;
    let c = client(&server.base, &fast_options())
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(c.text, "42");
}

#[tokio::test]
async fn build_client_picks_the_anthropic_wire_format() {
    let server = FakeServer::start(vec![Reply::json(200, message("ok"))]).await;
    let client = build_client_with(&config(&server.base), &fast_options()).unwrap();
    assert_eq!(client.complete(&request()).await.unwrap().text, "ok");
    assert_eq!(server.received()[0].path, "/v1/messages");
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_honoured_then_succeeds() {
    let server = FakeServer::start(vec![
        Reply::json(429, error_body("rate_limit_error", "slow down")).header("retry-after", "1"),
        Reply::json(200, message("42")),
    ])
    .await;
    let started = Instant::now();
    let c = client(&server.base, &fast_options())
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(c.text, "42");
    assert_eq!(server.hits(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retried after {:?}, before Retry-After",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    let server = FakeServer::start(vec![
        Reply::json(429, error_body("rate_limit_error", "later")).header("retry-after", &at),
        Reply::json(200, message("42")),
    ])
    .await;
    let started = Instant::now();
    client(&server.base, &fast_options())
        .complete(&request())
        .await
        .unwrap();
    // The date has one-second resolution, so the wait is between 1 and 2 seconds.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_is_reported_at_once() {
    let server = FakeServer::start(vec![
        Reply::json(429, error_body("rate_limit_error", "quota")).header("retry-after", "600"),
        Reply::json(200, message("42")),
    ])
    .await;
    let e = fails(&server, &fast_options()).await;
    assert_eq!(
        e,
        LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(600))
        }
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn rate_limit_until_give_up_is_rate_limited() {
    let server =
        FakeServer::start(vec![Reply::json(429, error_body("rate_limit_error", "no"))]).await;
    let e = fails(&server, &fast_options()).await;
    assert_eq!(e, LlmError::RateLimited { retry_after: None });
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn server_errors_then_success() {
    let server = FakeServer::start(vec![
        Reply::json(500, error_body("api_error", "internal")),
        Reply::json(529, error_body("overloaded_error", "overloaded")),
        Reply::json(200, message("42")),
    ])
    .await;
    let c = client(&server.base, &fast_options())
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(c.text, "42");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn server_errors_until_give_up_report_the_last_one() {
    let server = FakeServer::start(vec![Reply::json(
        503,
        error_body("api_error", "down for now"),
    )])
    .await;
    let mut options = fast_options();
    options.retry.max_attempts = 4;
    let e = fails(&server, &options).await;
    let LlmError::Provider { status, message } = e else {
        panic!("expected a provider error, got {e:?}");
    };
    assert_eq!(status, Some(503));
    assert!(message.contains("down for now"), "{message}");
    assert!(message.contains("gave up after 4 attempts"), "{message}");
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn no_retries_when_the_policy_says_so() {
    let server = FakeServer::start(vec![Reply::json(500, error_body("api_error", "x"))]).await;
    let options = fast_options().with_retry(RetryPolicy::none());
    fails(&server, &options).await;
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn bad_key_is_an_auth_error_without_retry() {
    let server = FakeServer::start(vec![
        Reply::json(401, error_body("authentication_error", "invalid x-api-key"))
            .header("request-id", "req_401"),
    ])
    .await;
    let e = fails(&server, &fast_options()).await;
    let LlmError::Auth { message } = &e else {
        panic!("expected Auth, got {e:?}");
    };
    assert!(message.contains("invalid x-api-key"), "{message}");
    assert!(message.contains("req_401"), "{message}");
    assert_eq!(server.hits(), 1);

    let server = FakeServer::start(vec![Reply::json(
        403,
        error_body("permission_error", "not allowed"),
    )])
    .await;
    assert!(matches!(
        fails(&server, &fast_options()).await,
        LlmError::Auth { .. }
    ));
}

#[tokio::test]
async fn unknown_model_is_named() {
    let server = FakeServer::start(vec![Reply::json(
        404,
        error_body("not_found_error", "model: claude-test-1"),
    )])
    .await;
    let e = fails(&server, &fast_options()).await;
    let LlmError::ModelNotFound { model, message } = &e else {
        panic!("expected ModelNotFound, got {e:?}");
    };
    assert_eq!(model, "claude-test-1");
    assert!(
        message.contains("model 'claude-test-1' does not exist"),
        "{message}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn malformed_json_is_a_bad_response() {
    let server = FakeServer::start(vec![Reply::raw(200, "<html>gateway says hi</html>")]).await;
    let e = fails(&server, &fast_options()).await;
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("not valid JSON")),
        "{e:?}"
    );
}

#[tokio::test]
async fn truncated_json_is_a_bad_response() {
    let full = message("42").to_string();
    let truncated: &'static str = Box::leak(full[..full.len() / 2].to_owned().into_boxed_str());
    let server = FakeServer::start(vec![Reply::raw(200, truncated)]).await;
    let e = fails(&server, &fast_options()).await;
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("ends early")),
        "{e:?}"
    );
}

#[tokio::test]
async fn wrong_shape_names_the_missing_field() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        json!({"id": "msg", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )])
    .await;
    let e = fails(&server, &fast_options()).await;
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("missing field `content`")),
        "{e:?}"
    );
}

#[tokio::test]
async fn slow_answer_times_out() {
    let server = FakeServer::start(vec![
        Reply::json(200, message("42")).delayed(Duration::from_secs(5)),
    ])
    .await;
    let options = fast_options().with_request_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let e = fails(&server, &options).await;
    assert_eq!(
        e,
        LlmError::Timeout {
            after: Duration::from_millis(300)
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A timeout is not retried: the caller's own deadline is what matters for a slow model.
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn body_that_stalls_times_out() {
    let server = FakeServer::start(vec![
        Reply::raw(200, "").with_body(ReplyBody::Stalled(b"{\"content\":[".to_vec())),
    ])
    .await;
    let options = fast_options().with_request_timeout(Duration::from_millis(300));
    assert!(matches!(
        fails(&server, &options).await,
        LlmError::Timeout { .. }
    ));
}

#[tokio::test]
async fn huge_answer_with_length_is_refused_without_reading_it() {
    let huge = "x".repeat(9 * 1024 * 1024);
    let body: &'static str = Box::leak(
        format!("{{\"content\":[{{\"type\":\"text\",\"text\":\"{huge}\"}}]}}").into_boxed_str(),
    );
    let server = FakeServer::start(vec![Reply::raw(200, body)]).await;
    let e = fails(&server, &fast_options()).await;
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("8192 KiB cap")),
        "{e:?}"
    );
}

#[tokio::test]
async fn huge_streamed_answer_is_cut_at_the_cap() {
    let server = FakeServer::start(vec![Reply::raw(200, "").with_body(ReplyBody::Chunked {
        chunk: 64 * 1024,
        count: 64,
    })])
    .await;
    let options = fast_options().with_max_body_bytes(1024 * 1024);
    let e = fails(&server, &options).await;
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("1024 KiB cap")),
        "{e:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = closed_port().await;
    let base = format!("http://127.0.0.1:{port}");
    let e = client(&base, &fast_options())
        .complete(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::Transport { message } if message.contains("/v1/messages")),
        "{e:?}"
    );
    assert_no_key(&format!("{e} {e:?}"));
}

#[tokio::test]
async fn connection_refused_then_server_up_succeeds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}");
    let options = fast_options().with_retry(RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_millis(400),
        max_retry_after: Duration::from_secs(5),
    });
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        FakeServer::serve(listener, vec![Reply::json(200, message("42"))])
    });
    let c = client(&base, &options).complete(&request()).await.unwrap();
    assert_eq!(c.text, "42");
    let server = starter.await.unwrap();
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn connection_broken_mid_body_is_a_transport_error() {
    let (base, _task) = broken_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"content\":[",
    )
    .await;
    let options = fast_options().with_retry(RetryPolicy::none());
    let e = client(&base, &options)
        .complete(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::Transport { message } if message.contains("broke")),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output() {
    let c = client("http://127.0.0.1:9", &fast_options());
    assert_no_key(&format!("{c:?}"));
    assert_no_key(&format!("{:?}", config("http://127.0.0.1:9")));
}
