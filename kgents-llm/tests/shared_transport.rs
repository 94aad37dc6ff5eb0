//! Clients built over one [`SharedTransport`]: they share connections, yet each sends its own
//! key and keeps its own request timeout.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kgents_llm::{
    CompletionRequest, LlmError, ModelConfig, RetryPolicy, RuntimeOptions, SharedTransport,
    build_client_shared,
};
use secrecy::SecretString;
use serde_json::json;
use support::{FakeServer, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn openai(base: &str, key: &str) -> ModelConfig {
    ModelConfig::from_parts(
        "openai",
        Some("test-model"),
        Some(&format!("{base}/v1")),
        Some(SecretString::from(key.to_owned())),
    )
    .expect("valid configuration")
}

fn options(timeout: Duration) -> RuntimeOptions {
    RuntimeOptions::default()
        .with_request_timeout(timeout)
        .with_retry(RetryPolicy::none())
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: "Answer with a number only.".into(),
        user: "What is 7 * 6?".into(),
        temperature: 0.0,
        max_tokens: 8,
    }
}

fn completion(text: &str) -> serde_json::Value {
    json!({
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}
    })
}

/// A keep-alive HTTP/1.1 server that counts the connections it accepted and records the
/// `authorization` header of every request, answering each with one chat completion.
struct CountingServer {
    base: String,
    connections: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let keys = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (Arc::clone(&connections), Arc::clone(&keys));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(socket, Arc::clone(&seen)));
            }
        });
        CountingServer {
            base,
            connections,
            keys,
            task,
        }
    }
}

/// Answers requests on one connection until the client closes it.
async fn serve_connection(mut socket: tokio::net::TcpStream, keys: Arc<Mutex<Vec<String>>>) {
    let body = completion("42").to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request: headers up to the blank line, then content-length bytes of body.
        let (head_end, length) = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        while buffer.len() < head_end + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let key = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        keys.lock().unwrap().push(key);
        buffer.drain(..head_end + length);
        if socket.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn clients_over_one_transport_share_a_connection_and_send_their_own_keys() {
    let server = CountingServer::start().await;
    let shared = SharedTransport::new(Duration::from_secs(5)).unwrap();
    let long = options(Duration::from_secs(10));
    let alice = build_client_shared(&openai(&server.base, "sk-alice"), &long, &shared).unwrap();
    let bob = build_client_shared(&openai(&server.base, "sk-bob"), &long, &shared).unwrap();

    for client in [&alice, &bob, &alice, &bob] {
        assert_eq!(client.complete(&request()).await.unwrap().text, "42");
    }
    assert_eq!(
        *server.keys.lock().unwrap(),
        [
            "Bearer sk-alice",
            "Bearer sk-bob",
            "Bearer sk-alice",
            "Bearer sk-bob"
        ],
        "each request carries its own client's key"
    );
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "sequential calls of two clients reuse the one pooled connection"
    );

    // Clients with pools of their own open a connection each: the contrast that shows the
    // sharing above is the transport's doing.
    let apart = CountingServer::start().await;
    for key in ["sk-carol", "sk-dave"] {
        let client = kgents_llm::build_client_with(&openai(&apart.base, key), &long).unwrap();
        client.complete(&request()).await.unwrap();
    }
    assert_eq!(apart.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn clients_over_one_transport_keep_their_own_timeouts() {
    let server = FakeServer::start(vec![
        Reply::json(200, completion("42")).delayed(Duration::from_millis(1500)),
    ])
    .await;
    let shared = SharedTransport::new(Duration::from_secs(5)).unwrap();
    let hasty = build_client_shared(
        &openai(&server.base, "sk-hasty"),
        &options(Duration::from_millis(300)),
        &shared,
    )
    .unwrap();
    let patient = build_client_shared(
        &openai(&server.base, "sk-patient"),
        &options(Duration::from_secs(30)),
        &shared,
    )
    .unwrap();

    let ask = request();
    let (hasty_result, patient_result) = tokio::join!(hasty.complete(&ask), patient.complete(&ask));
    assert_eq!(
        hasty_result.unwrap_err(),
        LlmError::Timeout {
            after: Duration::from_millis(300)
        }
    );
    assert_eq!(patient_result.unwrap().text, "42");
    // And again in the other order, so neither timeout is a leftover of the first call.
    assert_eq!(patient.complete(&request()).await.unwrap().text, "42");
    assert!(matches!(
        hasty.complete(&request()).await,
        Err(LlmError::Timeout { .. })
    ));
    let keys: Vec<String> = server
        .received()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.contains(&"Bearer sk-hasty".to_owned()), "{keys:?}");
    assert!(keys.contains(&"Bearer sk-patient".to_owned()), "{keys:?}");
}

#[tokio::test]
async fn an_anthropic_and_an_openai_client_share_one_transport() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "test-model",
            "content": [{"type": "text", "text": "42"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1}
        }),
    )])
    .await;
    let shared = SharedTransport::new(Duration::from_secs(5)).unwrap();
    let anthropic = ModelConfig::from_parts(
        "anthropic",
        Some("test-model"),
        Some(&server.base),
        Some(SecretString::from("sk-ant-own")),
    )
    .unwrap();
    let client = build_client_shared(&anthropic, &options(Duration::from_secs(10)), &shared)
        .expect("anthropic client over the shared transport");
    assert_eq!(client.complete(&request()).await.unwrap().text, "42");
    let sent = &server.received()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-own"));
    assert_eq!(sent.header("authorization"), None);
    let none = ModelConfig::from_parts("none", None, None, None).unwrap();
    assert_eq!(
        build_client_shared(&none, &RuntimeOptions::default(), &shared).err(),
        Some(kgents_llm::Error::NoModel)
    );
}
