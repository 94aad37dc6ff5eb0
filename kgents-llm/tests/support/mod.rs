//! A scripted HTTP server on 127.0.0.1 for adapter tests: it answers with a list of replies
//! in order (the last one repeats) and records every request it received.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use futures::StreamExt;
use kgents_llm::{RetryPolicy, RuntimeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The key used in tests; it must never show up in errors or Debug output.
pub const SECRET_KEY: &str = "sk-test-TOPSECRET-4242";

/// What the body of a reply is.
#[derive(Clone, Debug)]
pub enum ReplyBody {
    /// A fixed body with a Content-Length.
    Fixed(Vec<u8>),
    /// `count` chunks of `chunk` bytes, chunked encoding (no Content-Length).
    Chunked { chunk: usize, count: usize },
    /// One chunk, then nothing ever again.
    Stalled(Vec<u8>),
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: ReplyBody::Fixed(value.to_string().into_bytes()),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: ReplyBody::Fixed(body.as_bytes().to_vec()),
            delay: Duration::ZERO,
        }
    }

    pub fn with_body(mut self, body: ReplyBody) -> Self {
        self.body = body;
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Recorded>>,
}

/// The running server; stops when dropped.
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    shared.received.lock().unwrap().push(Recorded {
        method,
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    let reply = {
        let mut script = shared.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        }
    }
    .expect("the fake server has a script");
    tokio::time::sleep(reply.delay).await;
    let body = match reply.body {
        ReplyBody::Fixed(bytes) => Body::from(bytes),
        ReplyBody::Chunked { chunk, count } => Body::from_stream(
            futures::stream::iter(0..count)
                .map(move |_| Ok::<_, Infallible>(Bytes::from(vec![b' '; chunk]))),
        ),
        ReplyBody::Stalled(first) => Body::from_stream(
            futures::stream::once(async move { Ok::<_, Infallible>(Bytes::from(first)) })
                .chain(futures::stream::pending()),
        ),
    };
    let mut response = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response.body(body).unwrap()
}

impl FakeServer {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, replies)
    }

    pub fn serve(listener: TcpListener, replies: Vec<Reply>) -> Self {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            script: Mutex::new(replies.into()),
            received: Mutex::default(),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeServer { base, shared, task }
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }
}

/// A server that answers every connection with `raw` bytes (status line, headers and a body
/// shorter than its Content-Length) and then closes it.
pub async fn broken_server(raw: &'static str) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the whole request (headers and the JSON body) before answering.
            while let Ok(n) = socket.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                if request.ends_with(b"}") {
                    break;
                }
            }
            let _ = socket.write_all(raw.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (base, task)
}

/// A local port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Options with short waits so retry tests run fast.
pub fn fast_options() -> RuntimeOptions {
    RuntimeOptions::default()
        .with_request_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(5),
        })
}

/// Asserts that nothing printable about `value` leaks the test key.
pub fn assert_no_key(shown: &str) {
    assert!(
        !shown.contains(SECRET_KEY) && !shown.contains("TOPSECRET"),
        "the API key leaked: {shown}"
    );
}
