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
//! | `http` | the HTTP transport: [`SharedTransport`] (one pool for many clients), timeouts, retries, body cap, status mapping |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//!
//! [`build_client`] turns a [`ModelConfig`] into an `Arc<dyn LlmClient>`;
//! [`build_client_shared`] does the same over one [`SharedTransport`], so that many clients
//! share a connection pool and TLS configuration instead of building their own. API keys are held as
//! [`secrecy::SecretString`], marked sensitive in headers, and never formatted into `Debug`
//! output, logs or errors.
//!
//! Failures are [`LlmError`]s: 401/403 are `Auth` and never retried; 429 and 5xx are retried
//! with backoff, honouring `Retry-After`, then reported as `RateLimited` / `Provider`; a model
//! the provider (or the `claude` CLI) says does not exist is `ModelNotFound`, naming the model;
//! a body that is not the wire format's shape, truncated or over the size cap is `BadResponse`.
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
    ClaudeCliOptions, DEFAULT_MAX_BODY_BYTES, ModelConfig, Provider, RuntimeOptions,
    UnknownProvider,
};
pub use error::{Error, Result};
pub use http::{SharedTransport, ensure_crypto_provider};
pub use kgents_probes::{Completion, CompletionRequest, LlmClient, LlmError};
pub use openai::OpenAiClient;
pub use retry::RetryPolicy;

/// Builds the client for `config` with the default [`RuntimeOptions`].
pub fn build_client(config: &ModelConfig) -> Result<Arc<dyn LlmClient>> {
    build_client_with(config, &RuntimeOptions::default())
}

/// Builds the client for `config`: Anthropic, OpenAI-compatible (openai, openrouter, ollama) or
/// `claude -p`. Provider `none` is [`Error::NoModel`]. An HTTP client gets a connection pool
/// of its own; use [`build_client_shared`] when building many.
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

/// [`build_client_with`] over a connection pool shared with other clients: an HTTP client's
/// requests go through `shared`, while its key, request timeout, retries and body cap come
/// from `config` and `options` as usual (`options.connect_timeout` is the pool's instead).
/// `claude -p` clients have no HTTP transport and ignore `shared`.
pub fn build_client_shared(
    config: &ModelConfig,
    options: &RuntimeOptions,
    shared: &SharedTransport,
) -> Result<Arc<dyn LlmClient>> {
    Ok(match config.provider() {
        Provider::Anthropic => Arc::new(AnthropicClient::with_transport(config, options, shared)?),
        Provider::OpenAi | Provider::OpenRouter | Provider::Ollama => {
            Arc::new(OpenAiClient::with_transport(config, options, shared)?)
        }
        Provider::ClaudeCli => Arc::new(ClaudeCliClient::new(config, options)?),
        Provider::None => return Err(Error::NoModel),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_an_https_client_installs_a_crypto_provider() {
        let config =
            ModelConfig::from_parts("anthropic", Some("m"), None, Some("k".into())).unwrap();
        build_client(&config).expect("reqwest builds without its own provider");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[test]
    fn debug_output_of_clients_and_configurations_shows_no_key() {
        let key = "sk-debug-canary-9c8b7a6f5e4d";
        for provider in ["anthropic", "openai", "openrouter"] {
            let config =
                ModelConfig::from_parts(provider, Some("m"), None, Some(key.into())).unwrap();
            let shown = format!("{config:?} {config:#?}");
            assert!(!shown.contains(key), "{shown}");
            let options = RuntimeOptions::default();
            let client = match provider {
                "anthropic" => format!("{:?}", AnthropicClient::new(&config, &options).unwrap()),
                _ => format!("{:#?}", OpenAiClient::new(&config, &options).unwrap()),
            };
            assert!(!client.contains(key), "{client}");
            assert!(client.contains("url"), "{client}");
        }
        let transport = SharedTransport::new(std::time::Duration::from_secs(1)).unwrap();
        assert!(!format!("{transport:?}").contains(key));
    }

    #[test]
    fn every_provider_but_none_builds_a_client() {
        let key = || Some(secrecy::SecretString::from("k"));
        for (provider, endpoint) in [
            ("anthropic", None),
            ("openai", None),
            ("openrouter", None),
            ("ollama", Some("http://ollama:11434")),
            ("claude-cli", None),
        ] {
            let config = ModelConfig::from_parts(provider, Some("m"), endpoint, key()).unwrap();
            assert!(build_client(&config).is_ok(), "{provider}");
        }
        let none = ModelConfig::from_parts("none", None, None, None).unwrap();
        assert_eq!(build_client(&none).err(), Some(Error::NoModel));
    }
}
