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

use crate::shared::{Feeds, Watches};
use crate::{Context, OperatorConfig};

type Handle = crate::tests::fixtures::ApiServerHandle;

pub use crate::tests::fixtures::{Seen, failure};

/// The far side of the mocked API server.
pub struct ApiServer(Handle);

impl ApiServer {
    /// Waits (up to a second) for the next request and answers it with `reply(request)`:
    /// `(status code, JSON body)`.
    pub async fn answer(&mut self, reply: impl FnOnce(&Seen) -> (u16, serde_json::Value)) -> Seen {
        crate::tests::fixtures::answer_next(&mut self.0, reply).await
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

/// A context over a mocked API server, with a manual clock reading `now` and empty, loaded
/// shared caches.
pub fn mock_context(now: Timestamp) -> (Arc<Context>, ApiServer, Arc<ManualClock>) {
    let (ctx, api, clock, _feeds) = mock_context_with_feeds(now);
    (ctx, api, clock)
}

/// Like [`mock_context`], with the writers of the shared caches to put objects in them.
pub fn mock_context_with_feeds(
    now: Timestamp,
) -> (Arc<Context>, ApiServer, Arc<ManualClock>, Feeds) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(ManualClock::new(now));
    let (watches, feeds) = Watches::offline(&client);
    let ctx = Context::new(client, OperatorConfig::default())
        .with_clock(clock.clone())
        .with_watches(watches);
    (Arc::new(ctx), ApiServer(handle), clock, feeds)
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
