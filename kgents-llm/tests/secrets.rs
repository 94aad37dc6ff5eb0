//! API keys never appear in logs, errors or Debug output, whatever the call does.

mod support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use kgents_llm::{CompletionRequest, ModelConfig, build_client_with};
use secrecy::SecretString;
use serde_json::json;
use support::{FakeServer, Reply, SECRET_KEY, assert_no_key, fast_options};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A subscriber that writes every event and span field, at every level, into a string.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Writer<'a>(&'a mut String);

impl Visit for Writer<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut log = self.0.lock().unwrap();
        let _ = write!(log, "\nspan {}", span.metadata().name());
        span.record(&mut Writer(&mut log));
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Writer(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut log = self.0.lock().unwrap();
        let _ = write!(
            log,
            "\n{} {}",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Writer(&mut log));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: "s".into(),
        user: "u".into(),
        temperature: 0.0,
        max_tokens: 8,
    }
}

#[tokio::test]
async fn keys_stay_out_of_logs_errors_and_debug_output() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let anthropic_error = json!({"type": "error", "error": {"type": "api_error", "message": "x"}});
    let anthropic = FakeServer::start(vec![
        Reply::json(500, anthropic_error.clone()).header("request-id", "req_1"),
        Reply::json(401, anthropic_error).header("request-id", "req_2"),
    ])
    .await;
    let openai_error = json!({"error": {"message": "x", "type": "server_error"}});
    let openai = FakeServer::start(vec![
        Reply::json(503, openai_error.clone()),
        Reply::json(403, openai_error),
    ])
    .await;

    let configs = [
        ModelConfig::from_parts(
            "anthropic",
            Some("m"),
            Some(&anthropic.base),
            Some(SecretString::from(SECRET_KEY)),
        )
        .unwrap(),
        ModelConfig::from_parts(
            "openai",
            Some("m"),
            Some(&format!("{}/v1", openai.base)),
            Some(SecretString::from(SECRET_KEY)),
        )
        .unwrap(),
    ];
    for config in &configs {
        assert_no_key(&format!("{config:?} {config:#?}"));
        let client = build_client_with(config, &fast_options()).unwrap();
        let e = client.complete(&request()).await.unwrap_err();
        assert_no_key(&format!("{e} {e:?}"));
    }
    // The key really was sent: both servers saw it.
    assert_eq!(
        anthropic.received()[0].header("x-api-key"),
        Some(SECRET_KEY)
    );
    assert!(
        openai.received()[0]
            .header("authorization")
            .is_some_and(|v| v.ends_with(SECRET_KEY))
    );

    let log = capture.0.lock().unwrap().clone();
    assert!(
        log.contains("retrying model call"),
        "the retries should have been logged: {log}"
    );
    assert_no_key(&log);
}
