//! A fake language model on 127.0.0.1 that speaks one real wire format — OpenAI-compatible
//! chat completions (`POST /v1/chat/completions`, `Authorization: Bearer`) or Anthropic's
//! Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`) — and answers the
//! cognitive probes' challenges the way the test tells it to, switchable at runtime.
//!
//! The correct answer is computed from the challenge in the prompt (echo a nonce, do the
//! arithmetic, return the JSON object), never stored. Every call the fake accepts is recorded
//! with its arrival time and the model name it asked for, so a test can count the calls of
//! one agent (tests give each agent its own model name) and the call rate over a window.
//! Requests of the other wire format, to another path, or without the expected key are
//! answered 404 / 401 and counted as rejected, not as calls. A model the test has declared
//! unknown ([`FakeModel::forget`]) is answered with the provider's own "model not found" error
//! (OpenAI's 404 `model_not_found`, Anthropic's 404 `not_found_error`), counted as a call.
//!
//! A small HTTP/1.1 server on tokio alone (keep-alive, Content-Length bodies — what the model
//! clients send), so the same file serves the operator's tests and the `probes` example.

#![allow(dead_code)] // the tests and the example use different parts

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which provider API the fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI-compatible chat completions.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl Wire {
    /// The `spec.model.provider` that selects this wire format.
    pub fn provider(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Wire::OpenAi => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
        }
    }
}

/// How the fake answers, switchable while the operator probes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// The exact answer to every challenge.
    Correct,
    /// `UNHEALTHY` to everything (the reply a substring check once passed).
    Unhealthy,
    /// The right answer with a `1` in front: `112` for 12, `1k3v…` for the nonce `k3v…`.
    OneInFront,
    /// Accepts the request and never answers (the client times out).
    Silent,
    /// The exact answer, after this delay.
    Slow(Duration),
}

/// The kind of challenge a prompt poses, as the fake recognised it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// Echo a nonce.
    Echo,
    /// Arithmetic.
    Reasoning,
    /// A JSON object carrying a nonce.
    Json,
    /// Not a probe prompt the fake knows.
    Unknown,
}

/// One accepted call.
#[derive(Clone, Debug)]
pub struct Call {
    /// When the request arrived.
    pub at: Instant,
    /// The model name the request asked for.
    pub model: String,
    /// The challenge it posed.
    pub kind: ChallengeKind,
}

struct Shared {
    wire: Wire,
    key: String,
    behaviour: Mutex<Behaviour>,
    calls: Mutex<Vec<Call>>,
    rejected: AtomicUsize,
    /// Model names answered with "model not found".
    unknown_models: Mutex<HashSet<String>>,
}

/// A running fake model; stops when dropped.
pub struct FakeModel {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeModel {
    /// Starts a fake of `wire` that accepts the API key `key`, answering correctly.
    pub async fn start(wire: Wire, key: &str) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake model");
        let addr = listener.local_addr().expect("the fake model's address");
        let shared = Arc::new(Shared {
            wire,
            key: key.to_owned(),
            behaviour: Mutex::new(Behaviour::Correct),
            calls: Mutex::new(Vec::new()),
            rejected: AtomicUsize::new(0),
            unknown_models: Mutex::new(HashSet::new()),
        });
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve_connection(socket, Arc::clone(&serving)));
            }
        });
        FakeModel { addr, shared, task }
    }

    /// The `spec.model.endpoint` to give an agent: the base URL its provider's client appends
    /// its path to (`…/v1` for OpenAI-compatible servers, the host for Anthropic).
    pub fn endpoint(&self) -> String {
        match self.shared.wire {
            Wire::OpenAi => format!("http://{}/v1", self.addr),
            Wire::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// The wire format it speaks.
    pub fn wire(&self) -> Wire {
        self.shared.wire
    }

    /// Switches how it answers from the next request on.
    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// From the next request on, answers requests for `model` with "model not found".
    pub fn forget(&self, model: &str) {
        self.shared
            .unknown_models
            .lock()
            .unwrap()
            .insert(model.to_owned());
    }

    /// From the next request on, serves `model` again (the model was pulled or deployed).
    pub fn learn(&self, model: &str) {
        self.shared.unknown_models.lock().unwrap().remove(model);
    }

    /// Every accepted call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// How many calls asked for `model`.
    pub fn calls_for(&self, model: &str) -> usize {
        self.shared
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.model == model)
            .count()
    }

    /// How many calls were accepted.
    pub fn total_calls(&self) -> usize {
        self.shared.calls.lock().unwrap().len()
    }

    /// Requests refused: another wire format's path, a missing or wrong key, a body that is
    /// not this format's JSON.
    pub fn rejected(&self) -> usize {
        self.shared.rejected.load(Ordering::Relaxed)
    }
}

/// The exact answer to the challenge in `prompt` (the user message of a probe), and its kind.
/// Parsed from the wording of `kgents_probes::Challenge::prompt`.
pub fn correct_answer(prompt: &str) -> (ChallengeKind, Option<String>) {
    if let Some((_, nonce)) = prompt.split_once("nothing else:") {
        return (ChallengeKind::Echo, Some(nonce.trim().to_owned()));
    }
    if let Some(rest) = prompt.strip_prefix("What is ") {
        let question = rest.split('?').next().unwrap_or_default();
        let words: Vec<&str> = question.split_whitespace().collect();
        let answer = match words.as_slice() {
            [lhs, op, rhs] => match (lhs.parse::<u64>(), rhs.parse::<u64>(), *op) {
                (Ok(l), Ok(r), "+") => Some((l + r).to_string()),
                (Ok(l), Ok(r), "*") => Some((l * r).to_string()),
                _ => None,
            },
            _ => None,
        };
        return (ChallengeKind::Reasoning, answer);
    }
    if let Some((_, rest)) = prompt.split_once("set to the number ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let answer =
            (!digits.is_empty()).then(|| format!(r#"{{"status":"alive","nonce":{digits}}}"#));
        return (ChallengeKind::Json, answer);
    }
    (ChallengeKind::Unknown, None)
}

/// A parsed HTTP/1.1 request.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request from `socket`, with `buffer` holding bytes already read. `None` at EOF
/// or on a request the fake cannot parse.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    const MAX_HEAD: usize = 64 * 1024;
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    buffer.drain(..head_end + 4);
    while buffer.len() < length {
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buffer.drain(..length).collect();
    Some(Request {
        path,
        headers,
        body,
    })
}

async fn respond(socket: &mut TcpStream, status: &str, body: &serde_json::Value) -> bool {
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: req_fake\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await.is_ok()
}

/// An error body in the wire format's shape.
fn error_body(wire: Wire, kind: &str, message: &str) -> serde_json::Value {
    match wire {
        Wire::OpenAi => {
            serde_json::json!({"error": {"message": message, "type": kind, "code": null}})
        }
        Wire::Anthropic => {
            serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    }
}

/// The provider's error body for a model it does not serve, as each API words it.
fn model_not_found_body(wire: Wire, model: &str) -> serde_json::Value {
    match wire {
        Wire::OpenAi => serde_json::json!({"error": {
            "message": format!("The model `{model}` does not exist or you do not have access to it."),
            "type": "invalid_request_error", "param": null, "code": "model_not_found",
        }}),
        Wire::Anthropic => serde_json::json!({"type": "error", "error": {
            "type": "not_found_error", "message": format!("model: {model}"),
        }}),
    }
}

/// The model name and the user message of a request body of `wire`.
fn model_and_prompt(wire: Wire, body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let model = value.get("model")?.as_str()?.to_owned();
    let messages = value.get("messages")?.as_array()?;
    let user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))?;
    let prompt = match (wire, user.get("content")?) {
        (_, serde_json::Value::String(text)) => text.clone(),
        // Anthropic also accepts content blocks.
        (Wire::Anthropic, serde_json::Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(|t| t.as_str()))
            .collect(),
        _ => return None,
    };
    // The system prompt travels where each format puts it.
    let has_system = match wire {
        Wire::OpenAi => messages
            .iter()
            .any(|m| m.get("role").and_then(|r| r.as_str()) == Some("system")),
        Wire::Anthropic => value.get("system").is_some_and(|s| s.is_string()),
    };
    has_system.then_some((model, prompt))
}

/// A successful completion in the wire format's shape.
fn completion_body(wire: Wire, model: &str, text: &str) -> serde_json::Value {
    match wire {
        Wire::OpenAi => serde_json::json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44},
        }),
        Wire::Anthropic => serde_json::json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 40, "output_tokens": 4},
        }),
    }
}

async fn serve_connection(mut socket: TcpStream, shared: Arc<Shared>) {
    let wire = shared.wire;
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut socket, &mut buffer).await {
        let authorised = match wire {
            Wire::OpenAi => {
                request.header("authorization") == Some(format!("Bearer {}", shared.key).as_str())
            }
            Wire::Anthropic => {
                request.header("x-api-key") == Some(shared.key.as_str())
                    && request.header("anthropic-version").is_some()
            }
        };
        let parsed = model_and_prompt(wire, &request.body);
        let refusal = if request.path != wire.path() {
            Some(("404 Not Found", "not_found_error", "no such route"))
        } else if !authorised {
            Some((
                "401 Unauthorized",
                "authentication_error",
                "invalid API key",
            ))
        } else if parsed.is_none() {
            Some((
                "400 Bad Request",
                "invalid_request_error",
                "not a request of this API",
            ))
        } else {
            None
        };
        if let Some((status, kind, message)) = refusal {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            if !respond(&mut socket, status, &error_body(wire, kind, message)).await {
                return;
            }
            continue;
        }
        let Some((model, prompt)) = parsed else {
            return;
        };
        let (kind, correct) = correct_answer(&prompt);
        shared.calls.lock().unwrap().push(Call {
            at: Instant::now(),
            model: model.clone(),
            kind,
        });
        if shared.unknown_models.lock().unwrap().contains(&model) {
            if !respond(
                &mut socket,
                "404 Not Found",
                &model_not_found_body(wire, &model),
            )
            .await
            {
                return;
            }
            continue;
        }
        let behaviour = *shared.behaviour.lock().unwrap();
        let correct = correct.unwrap_or_else(|| "I do not understand the question".to_owned());
        let text = match behaviour {
            Behaviour::Correct => correct,
            Behaviour::Unhealthy => "UNHEALTHY".to_owned(),
            Behaviour::OneInFront => format!("1{correct}"),
            Behaviour::Slow(delay) => {
                tokio::time::sleep(delay).await;
                correct
            }
            Behaviour::Silent => {
                // Hold the connection without a word until the client gives up and closes it.
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        };
        if !respond(&mut socket, "200 OK", &completion_body(wire, &model, &text)).await {
            return;
        }
        if request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}
