//! The Anthropic Messages API client: `POST {endpoint}/v1/messages` with `x-api-key` and
//! `anthropic-version`, one system prompt and one user message; the answer is the
//! concatenation of the response's text blocks.

use std::time::Instant;

use async_trait::async_trait;
use kgents_probes::{Completion, CompletionRequest, LlmClient, LlmError};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, Provider, RuntimeOptions};
use crate::error::{Error, Result};
use crate::http::{
    ErrorDetail, HttpTransport, SharedTransport, Target, decode, endpoint_url, secret_header,
};

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Calls a model through Anthropic's Messages API.
#[derive(Clone)]
pub struct AnthropicClient {
    transport: HttpTransport,
    model: String,
}

impl std::fmt::Debug for AnthropicClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicClient")
            .field("url", &self.transport.url())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl AnthropicClient {
    /// A client for `config` (provider `anthropic`, which guarantees a model, an endpoint and
    /// a key) with its own connection pool.
    pub fn new(config: &ModelConfig, options: &RuntimeOptions) -> Result<Self> {
        Self::with_transport(config, options, &SharedTransport::from_options(options)?)
    }

    /// A client for `config` whose requests go through `shared`'s connection pool. Its key,
    /// request timeout, retries and body cap are its own; `options.connect_timeout` is the
    /// pool's, not this client's.
    pub fn with_transport(
        config: &ModelConfig,
        options: &RuntimeOptions,
        shared: &SharedTransport,
    ) -> Result<Self> {
        let wrong = |what: &str| Error::InvalidField {
            field: "provider".to_owned(),
            message: format!("the Anthropic client needs {what}"),
        };
        if config.provider() != Provider::Anthropic {
            return Err(wrong("provider anthropic"));
        }
        let model = config.model().ok_or_else(|| wrong("a model name"))?;
        let endpoint = config.endpoint().ok_or_else(|| wrong("an endpoint"))?;
        let key = config.api_key().ok_or_else(|| wrong("an API key"))?;

        let url = endpoint_url(endpoint, "v1/messages")
            .map_err(|e| wrong(&format!("an endpoint that accepts a path ({e})")))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-api-key"),
            secret_header(key.expose_secret())?,
        );
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        Ok(AnthropicClient {
            transport: HttpTransport::new(
                shared.client().clone(),
                &url,
                headers,
                HeaderName::from_static("request-id"),
                options,
            ),
            model: model.to_owned(),
        })
    }
}

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    system: &'a str,
    messages: [Message<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct MessagesResponse {
    content: Vec<ContentBlock>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum ContentBlock {
    #[serde(rename = "text")]
    Text { text: String },
    /// Thinking, tool use and future block types carry no answer text.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Reads `{"type":"error","error":{"type":...,"message":...}}`, or quotes the raw body.
fn error_detail(body: &[u8]) -> ErrorDetail {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ErrorDetail {
            message: match (&error.kind, error.message) {
                (Some(kind), Some(m)) => format!("{kind}: {m}"),
                (_, Some(m)) => m,
                (Some(kind), None) => kind.clone(),
                (None, None) => String::new(),
            },
            kind: error.kind,
            code: None,
        },
        Err(_) => ErrorDetail {
            message: crate::http::body_excerpt(body),
            ..ErrorDetail::default()
        },
    }
}

/// The JSON body for `request`. Anthropic accepts temperatures in [0, 1] and at least one
/// output token; values outside are clamped, a non-finite temperature is left out.
fn request_body(model: &str, request: &CompletionRequest) -> Vec<u8> {
    let body = MessagesRequest {
        model,
        max_tokens: request.max_tokens.max(1),
        system: &request.system,
        messages: [Message {
            role: "user",
            content: &request.user,
        }],
        temperature: request
            .temperature
            .is_finite()
            .then(|| request.temperature.clamp(0.0, 1.0)),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[async_trait]
impl LlmClient for AnthropicClient {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let target = Target {
            provider: "anthropic",
            model: &self.model,
            url: self.transport.url(),
        };
        let response = self
            .transport
            .post_json(request_body(&self.model, request), target, error_detail)
            .await?;
        let parsed: MessagesResponse = decode("anthropic messages response", &response.body)?;
        if let Some(reason) = parsed.stop_reason.as_deref()
            && reason != "end_turn"
            && reason != "stop_sequence"
        {
            tracing::debug!(
                model = %self.model,
                stop_reason = reason,
                request_id = response.request_id.as_deref().unwrap_or(""),
                "anthropic answer stopped early"
            );
        }
        let text = parsed
            .content
            .into_iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text } => Some(text),
                ContentBlock::Other => None,
            })
            .collect::<String>();
        let usage = parsed.usage.unwrap_or(Usage {
            input_tokens: None,
            output_tokens: None,
        });
        Ok(Completion {
            text,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            latency: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_has_exactly_the_messages_api_fields() {
        let body = request_body(
            "claude-x",
            &CompletionRequest {
                system: "be exact".into(),
                user: "2+2?".into(),
                temperature: 0.0,
                max_tokens: 16,
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "model": "claude-x",
                "max_tokens": 16,
                "system": "be exact",
                "messages": [{"role": "user", "content": "2+2?"}],
                "temperature": 0.0
            })
        );
    }

    #[test]
    fn empty_system_and_odd_numbers_are_handled() {
        let body = request_body(
            "m",
            &CompletionRequest {
                system: String::new(),
                user: "u".into(),
                temperature: f32::NAN,
                max_tokens: 0,
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("system").is_none());
        assert!(v.get("temperature").is_none());
        assert_eq!(v["max_tokens"], 1);
    }

    #[test]
    fn error_bodies_are_read() {
        let d = error_detail(
            br#"{"type":"error","error":{"type":"not_found_error","message":"model: x"}}"#,
        );
        assert_eq!(d.kind.as_deref(), Some("not_found_error"));
        assert_eq!(d.message, "not_found_error: model: x");
        let d = error_detail(b"upstream connect error");
        assert_eq!(d.message, "upstream connect error");
    }
}
