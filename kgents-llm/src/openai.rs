//! The OpenAI-compatible chat completions client: `POST {endpoint}/chat/completions` with an
//! optional `Authorization: Bearer` key. One client serves OpenAI, OpenRouter, Ollama's `/v1`,
//! vLLM and llama.cpp servers; they differ only in endpoint and key.

use std::time::Instant;

use async_trait::async_trait;
use kgents_probes::{Completion, CompletionRequest, LlmClient, LlmError};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, Provider, RuntimeOptions};
use crate::error::{Error, Result};
use crate::http::{
    ErrorDetail, HttpTransport, SharedTransport, Target, body_excerpt, decode, endpoint_url,
    secret_header,
};

/// Calls a model through an OpenAI-compatible chat completions endpoint.
#[derive(Clone)]
pub struct OpenAiClient {
    transport: HttpTransport,
    model: String,
    provider: Provider,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("provider", &self.provider)
            .field("url", &self.transport.url())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for `config` (provider `openai`, `openrouter` or `ollama`) with its own
    /// connection pool.
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
            message: format!("the OpenAI-compatible client needs {what}"),
        };
        let provider = config.provider();
        if !matches!(
            provider,
            Provider::OpenAi | Provider::OpenRouter | Provider::Ollama
        ) {
            return Err(wrong("provider openai, openrouter or ollama"));
        }
        let model = config.model().ok_or_else(|| wrong("a model name"))?;
        let endpoint = config.endpoint().ok_or_else(|| wrong("an endpoint"))?;
        let url = endpoint_url(endpoint, "chat/completions")
            .map_err(|e| wrong(&format!("an endpoint that accepts a path ({e})")))?;

        let mut headers = HeaderMap::new();
        if let Some(key) = config.api_key() {
            let bearer = format!("Bearer {}", key.expose_secret());
            headers.insert(AUTHORIZATION, secret_header(&bearer)?);
        }
        Ok(OpenAiClient {
            transport: HttpTransport::new(
                shared.client().clone(),
                &url,
                headers,
                HeaderName::from_static("x-request-id"),
                options,
            ),
            model: model.to_owned(),
            provider,
        })
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    max_tokens: u32,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    /// OpenRouter can answer 200 with an error object instead of choices.
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// Reads the error shapes of the OpenAI-compatible family: OpenAI and Ollama
/// `{"error":{"message","type","code"}}`, OpenRouter's numeric `code`, vLLM's top-level
/// `{"message","type","code"}`, llama.cpp's and others' `{"error":"..."}` or `{"detail":"..."}`.
fn error_detail(body: &[u8]) -> ErrorDetail {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ErrorDetail {
            message: body_excerpt(body),
            ..ErrorDetail::default()
        };
    };
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let object = match value.get("error") {
        Some(e @ serde_json::Value::Object(_)) => e,
        _ => &value,
    };
    let message = text(object.get("message"))
        .or_else(|| text(value.get("error")))
        .or_else(|| text(value.get("detail")))
        .unwrap_or_else(|| body_excerpt(body));
    ErrorDetail {
        kind: text(object.get("type")),
        code: text(object.get("code")),
        message,
    }
}

/// The JSON body for `request`: the system message (when not empty) and the user message.
/// Temperatures are clamped to OpenAI's [0, 2]; a non-finite one is left out.
fn request_body(model: &str, request: &CompletionRequest) -> Vec<u8> {
    let mut messages = Vec::with_capacity(2);
    if !request.system.is_empty() {
        messages.push(ChatMessage {
            role: "system",
            content: &request.system,
        });
    }
    messages.push(ChatMessage {
        role: "user",
        content: &request.user,
    });
    let body = ChatRequest {
        model,
        messages,
        temperature: request
            .temperature
            .is_finite()
            .then(|| request.temperature.clamp(0.0, 2.0)),
        max_tokens: request.max_tokens.max(1),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Turns a decoded 2xx answer into a completion, naming the missing part when there is none.
fn completion_from(parsed: ChatResponse, provider: Provider) -> Result<Completion, LlmError> {
    let Some(choices) = parsed.choices else {
        if let Some(error) = parsed.error {
            let detail = error_detail(
                serde_json::to_vec(&serde_json::json!({ "error": error }))
                    .unwrap_or_default()
                    .as_slice(),
            );
            return Err(LlmError::Provider {
                status: detail.code.as_deref().and_then(|c| c.parse().ok()),
                message: format!("{provider} answered 200 with an error: {}", detail.message),
            });
        }
        return Err(LlmError::BadResponse {
            message: format!("{provider} chat completion: missing field `choices`"),
        });
    };
    let Some(first) = choices.into_iter().next() else {
        return Err(LlmError::BadResponse {
            message: format!("{provider} chat completion: `choices` is empty"),
        });
    };
    let text = match (first.message.content, first.message.refusal) {
        (Some(text), _) => text,
        (None, Some(refusal)) => {
            return Err(LlmError::BadResponse {
                message: format!(
                    "{provider} chat completion: the model refused: {}",
                    crate::config::excerpt(&refusal, 200)
                ),
            });
        }
        (None, None) => {
            return Err(LlmError::BadResponse {
                message: format!(
                    "{provider} chat completion: `choices[0].message.content` is missing or null \
                     (finish_reason {})",
                    first.finish_reason.as_deref().unwrap_or("unknown")
                ),
            });
        }
    };
    let usage = parsed.usage.unwrap_or(ChatUsage {
        prompt_tokens: None,
        completion_tokens: None,
    });
    Ok(Completion {
        text,
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        latency: std::time::Duration::ZERO,
    })
}

#[async_trait]
impl LlmClient for OpenAiClient {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let target = Target {
            provider: self.provider.as_str(),
            model: &self.model,
            url: self.transport.url(),
        };
        let response = self
            .transport
            .post_json(request_body(&self.model, request), target, error_detail)
            .await?;
        let parsed: ChatResponse = decode(
            &format!("{} chat completion", self.provider),
            &response.body,
        )?;
        let mut completion = completion_from(parsed, self.provider)?;
        completion.latency = started.elapsed();
        Ok(completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_has_system_and_user_messages() {
        let body = request_body(
            "gpt-x",
            &CompletionRequest {
                system: "sys".into(),
                user: "usr".into(),
                temperature: 0.0,
                max_tokens: 8,
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "model": "gpt-x",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "usr"}
                ],
                "temperature": 0.0,
                "max_tokens": 8
            })
        );
    }

    #[test]
    fn error_shapes_of_the_family_are_read() {
        let openai = error_detail(
            br#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
        );
        assert_eq!(openai.code.as_deref(), Some("model_not_found"));
        assert!(openai.names_missing_model());
        let openrouter = error_detail(br#"{"error":{"code":401,"message":"No auth credentials"}}"#);
        assert_eq!(openrouter.code.as_deref(), Some("401"));
        assert_eq!(openrouter.message, "No auth credentials");
        let vllm = error_detail(
            br#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}"#,
        );
        assert_eq!(vllm.kind.as_deref(), Some("NotFoundError"));
        assert!(vllm.names_missing_model());
        let plain = error_detail(br#"{"error":"model 'x' not found"}"#);
        assert_eq!(plain.message, "model 'x' not found");
        let html = error_detail(b"<h1>502 Bad Gateway</h1>");
        assert_eq!(html.message, "<h1>502 Bad Gateway</h1>");
    }

    #[test]
    fn answers_without_text_say_which_field() {
        let parse = |s: &str| {
            completion_from(serde_json::from_str(s).unwrap(), Provider::OpenAi).map(|c| c.text)
        };
        assert_eq!(
            parse(r#"{"choices":[{"message":{"content":"4"}}]}"#).unwrap(),
            "4"
        );
        let e = parse(r#"{"id":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("missing field `choices`"), "{e}");
        let e = parse(r#"{"choices":[]}"#).unwrap_err().to_string();
        assert!(e.contains("`choices` is empty"), "{e}");
        let e = parse(r#"{"choices":[{"message":{"content":null},"finish_reason":"length"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("choices[0].message.content") && e.contains("length"),
            "{e}"
        );
        let e = parse(r#"{"choices":[{"message":{"refusal":"no"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused"), "{e}");
        let e = parse(r#"{"error":{"code":502,"message":"upstream down"}}"#).unwrap_err();
        assert_eq!(
            e,
            LlmError::Provider {
                status: Some(502),
                message: "openai answered 200 with an error: upstream down".into()
            }
        );
    }
}
