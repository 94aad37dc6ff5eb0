//! The [`LlmClient`] trait: one completion from a prompt. Implemented by runtime adapters
//! (Anthropic, OpenAI-compatible, `claude -p`) elsewhere; this crate does no HTTP.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One prompt for a single completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionRequest {
    /// The system prompt.
    pub system: String,
    /// The user message.
    pub user: String,
    /// Sampling temperature; probes use 0 so the answer is as deterministic as the model allows.
    pub temperature: f32,
    /// Upper bound on generated tokens. Runtimes that cannot honour it may ignore it.
    pub max_tokens: u32,
}

/// The answer to a [`CompletionRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// The generated text, exactly as the model produced it (adapters decode bytes lossily).
    pub text: String,
    /// Prompt tokens, when the runtime reports them.
    pub input_tokens: Option<u32>,
    /// Generated tokens, when the runtime reports them.
    pub output_tokens: Option<u32>,
    /// How long the runtime itself measured the call to take. Informational: probe outcomes
    /// use the latency the probe runner measures around the whole call.
    pub latency: Duration,
}

/// Why a completion produced no text. Adapters map their own failures into these kinds; every
/// one of them makes a probe [`Unresponsive`](crate::Verdict::Unresponsive), because no answer
/// arrived that could be judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[non_exhaustive]
pub enum LlmError {
    /// The runtime gave up waiting for the model.
    #[error("the model did not answer within {after:?} (runtime timeout)")]
    Timeout {
        /// How long the runtime waited.
        after: Duration,
    },
    /// The connection to the runtime or provider failed.
    #[error("transport error talking to the model: {message}; check the endpoint and network")]
    Transport {
        /// What the transport reported.
        message: String,
    },
    /// The provider refused because of a rate limit or quota.
    #[error("the provider rate-limited the request{}; probe less often or raise the quota",
        .retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// When the provider said to retry, if it did.
        retry_after: Option<Duration>,
    },
    /// The provider rejected the credentials.
    #[error("the provider rejected the credentials: {message}; check the agent's API key secret")]
    Auth {
        /// What the provider said.
        message: String,
    },
    /// The provider answered with an error of its own (overloaded, internal error, ...).
    #[error("the provider returned an error{}: {message}",
        .status.map(|s| format!(" (status {s})")).unwrap_or_default())]
    Provider {
        /// The provider's status code, when there is one.
        status: Option<u16>,
        /// What the provider said.
        message: String,
    },
    /// The provider says the model asked for does not exist. Unlike the other kinds this is a
    /// fault of the configuration (the agent's `spec.model.name`), not of the model, and callers
    /// that know the configuration report it as such.
    #[error("{message}")]
    ModelNotFound {
        /// The model name that was asked for.
        model: String,
        /// What the provider said, and what to check.
        message: String,
    },
    /// The runtime answered, but not in a shape the adapter could read.
    #[error("unreadable response from the runtime: {message}")]
    BadResponse {
        /// What was wrong with it.
        message: String,
    },
}

/// A language-model runtime that produces one completion per call.
///
/// Object safe (`Arc<dyn LlmClient>`), `Send + Sync`, and mocked in this crate's tests as
/// `MockLlmClient`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait LlmClient: Send + Sync {
    /// Asks the model for one completion of `request`.
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError>;
}
