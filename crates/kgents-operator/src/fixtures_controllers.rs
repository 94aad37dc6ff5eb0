//! Test fixtures of the Pheromone, Memory and Umwelt controllers: a mocked API server in the
//! controller-rs style, and a context whose clock a test sets.
//!
//! A test builds a context over a `tower_test` mock ([`mock_context`]), scripts the requests it
//! expects on the far side ([`serve`]), runs the reconcile, then [`Scenario::finish`]es: a
//! request the script did not expect fails the reconcile (the mock is closed), and an expected
//! request that never came fails the script.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use jiff::Timestamp;
use kgents_core::clock::ManualClock;
use kube::Client;
use kube::client::Body;

use crate::{Context, OperatorConfig};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request as the mocked API server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// JSON body (`Null` when empty).
    pub body: serde_json::Value,
}

impl Seen {
    /// Whether the request is `method` on a path that starts with `path` (query ignored).
    pub fn is(&self, method: &str, path: &str) -> bool {
        let only_path = self.uri.split('?').next().unwrap_or_default();
        self.method == method && only_path == path
    }
}

/// The far side of the mocked API server.
pub struct ApiServer(Handle);

impl ApiServer {
    /// Waits (up to a second) for the next request and answers it with `reply(request)`:
    /// `(status code, JSON body)`.
    pub async fn answer(&mut self, reply: impl FnOnce(&Seen) -> (u16, serde_json::Value)) -> Seen {
        let (request, send) = tokio::time::timeout(Duration::from_secs(1), self.0.next_request())
            .await
            .expect("the reconcile made the expected request within a second")
            .expect("the client is still alive");
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let bytes = http_body_util::BodyExt::collect(request.into_body())
            .await
            .expect("request body")
            .to_bytes();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        let seen = Seen { method, uri, body };
        let (code, json) = reply(&seen);
        let response = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&json).expect("JSON")))
            .expect("response");
        send.send_response(response);
        seen
    }

    /// Answers the next request by echoing its body with status 200 (what an apply returns).
    pub async fn echo(&mut self) -> Seen {
        self.answer(|seen| (200, seen.body.clone())).await
    }

    /// Answers the next request with 404 (what a GET of a missing object returns).
    pub async fn not_found(&mut self) -> Seen {
        self.answer(|_| (404, failure(404, "NotFound", "not found")))
            .await
    }

    /// Asserts that no request arrives within a short while.
    pub async fn expect_silence(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    }
}

/// A `metav1.Status` failure body.
pub fn failure(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    })
}

/// A context over a mocked API server, with a manual clock reading `now`.
pub fn mock_context(now: Timestamp) -> (Arc<Context>, ApiServer, Arc<ManualClock>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(ManualClock::new(now));
    let ctx = Context::new(client, OperatorConfig::default()).with_clock(clock.clone());
    (Arc::new(ctx), ApiServer(handle), clock)
}

/// A scripted API server running beside the reconcile.
pub struct Scenario(tokio::task::JoinHandle<()>);

/// Runs `script` against the far side of the mock while the test runs the reconcile.
pub fn serve<F, Fut>(api: ApiServer, script: F) -> Scenario
where
    F: FnOnce(ApiServer) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Scenario(tokio::spawn(script(api)))
}

impl Scenario {
    /// Waits for the script to end; its failures fail the test.
    pub async fn finish(self) {
        match tokio::time::timeout(Duration::from_secs(2), self.0).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("scenario task failed: {e}"),
            Err(_) => panic!("the scenario did not finish within 2 s"),
        }
    }
}
