//! Tests of the probes against mocked clients and resolvers, of the judging rules, and of the
//! tracker's state machine.

mod judge;
mod llm_probes;
mod path_probe;
mod runner;
mod tracker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::client::{Completion, CompletionRequest, LlmClient, LlmError, MockLlmClient};
use crate::runner::{ProbeRunner, RunnerConfig};
use crate::timer::Timer;

/// tokio's clock, so `start_paused` tests run slow models in no real time.
struct TokioTimer;

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

fn runner() -> ProbeRunner {
    ProbeRunner::new(Arc::new(TokioTimer), RunnerConfig::default())
        .expect("default config is valid")
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(0x6b67_656e_7473)
}

fn completion(text: &str) -> Completion {
    Completion {
        text: text.to_owned(),
        input_tokens: Some(40),
        output_tokens: Some(4),
        latency: Duration::from_millis(1),
    }
}

/// A mock that must be asked exactly once, with a prompt containing `must_mention`, and
/// answers `reply`.
fn replying(must_mention: &str, reply: &str) -> MockLlmClient {
    let mention = must_mention.to_owned();
    let reply = reply.to_owned();
    let mut client = MockLlmClient::new();
    client
        .expect_complete()
        .withf(move |request: &CompletionRequest| {
            request.user.contains(&mention) && request.temperature == 0.0 && request.max_tokens > 0
        })
        .times(1)
        .returning(move |_| Ok(completion(&reply)));
    client
}

/// A mock that must be asked exactly once and fails with `error`.
fn failing(error: LlmError) -> MockLlmClient {
    let mut client = MockLlmClient::new();
    client
        .expect_complete()
        .times(1)
        .returning(move |_| Err(error.clone()));
    client
}

/// Delays another client's answer by `delay` of tokio time.
struct Slow<C> {
    inner: C,
    delay: Duration,
}

#[async_trait]
impl<C: LlmClient> LlmClient for Slow<C> {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        tokio::time::sleep(self.delay).await;
        self.inner.complete(request).await
    }
}

/// A client that never answers.
struct Silent;

#[async_trait]
impl LlmClient for Silent {
    async fn complete(&self, _: &CompletionRequest) -> Result<Completion, LlmError> {
        futures::future::pending().await
    }
}
