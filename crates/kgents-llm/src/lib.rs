//! K8-gents model runtimes: adapters that implement [`kgents_probes::LlmClient`] for the
//! providers an Agent's `spec.model` can name.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`ModelConfig`] (from `spec.model` or the environment), [`Provider`], [`RuntimeOptions`] |
//! | [`anthropic`] | [`AnthropicClient`]: the Messages API |
//! | [`openai`] | [`OpenAiClient`]: OpenAI-compatible chat completions (OpenAI, OpenRouter, Ollama, vLLM, llama.cpp) |
//! | [`claude_cli`] | [`ClaudeCliClient`]: `claude -p` as a subprocess |
//! | [`retry`] | [`RetryPolicy`], backoff with jitter, `Retry-After` parsing (pure) |
//! | `http` | the shared HTTP transport: timeouts, retries, body cap, status mapping |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//!
//! [`build_client`] turns a [`ModelConfig`] into an `Arc<dyn LlmClient>`. API keys are held as
//! [`secrecy::SecretString`], marked sensitive in headers, and never formatted into `Debug`
//! output, logs or errors.
//!
//! TLS uses rustls with the `ring` provider only; [`ensure_crypto_provider`] installs it when
//! the binary has not installed a provider itself.
#![forbid(unsafe_code)]

pub mod anthropic;
pub mod claude_cli;
pub mod config;
pub mod error;
mod http;
pub mod openai;
pub mod retry;

use std::sync::Arc;

pub use anthropic::AnthropicClient;
pub use claude_cli::ClaudeCliClient;
pub use config::{
    ClaudeCliOptions, DEFAULT_MAX_BODY_BYTES, FieldNames, ModelConfig, Provider, RuntimeOptions,
    UnknownProvider,
};
pub use error::{Error, Result};
pub use http::ensure_crypto_provider;
pub use kgents_probes::{Completion, CompletionRequest, LlmClient, LlmError};
pub use openai::OpenAiClient;
pub use retry::RetryPolicy;

/// Builds the client for `config` with the default [`RuntimeOptions`].
pub fn build_client(config: &ModelConfig) -> Result<Arc<dyn LlmClient>> {
    build_client_with(config, &RuntimeOptions::default())
}

/// Builds the client for `config`: Anthropic, OpenAI-compatible (openai, openrouter, ollama) or
/// `claude -p`. Provider `none` is [`Error::NoModel`].
pub fn build_client_with(
    config: &ModelConfig,
    options: &RuntimeOptions,
) -> Result<Arc<dyn LlmClient>> {
    Ok(match config.provider() {
        Provider::Anthropic => Arc::new(AnthropicClient::new(config, options)?),
        Provider::OpenAi | Provider::OpenRouter | Provider::Ollama => {
            Arc::new(OpenAiClient::new(config, options)?)
        }
        Provider::ClaudeCli => Arc::new(ClaudeCliClient::new(config, options)?),
        Provider::None => return Err(Error::NoModel),
    })
}
