//! The HTTP transport shared by the Anthropic and OpenAI-compatible clients: one JSON POST
//! with a per-attempt timeout, a capped response body, retries on 429/5xx/connection
//! failures, and the mapping of HTTP statuses to [`LlmError`]s.
//!
//! The decisions are pure ([`classify`], [`decode`]); [`HttpTransport::post_json`] does the I/O.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kgents_probes::LlmError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{RuntimeOptions, excerpt};
use crate::error::{Error, Result};
use crate::retry::{RetryPolicy, jitter_unit, parse_retry_after, parse_retry_after_ms};

/// Error bodies are only read this far: enough for any provider's message.
const ERROR_BODY_CAP: usize = 64 * 1024;

/// Makes sure rustls has a process-wide crypto provider before reqwest builds a client.
///
/// reqwest is compiled without a provider of its own (`rustls-no-provider`) so that only
/// `ring`, the workspace's one provider, is linked. reqwest panics when none is installed,
/// so this installs ring unless the binary installed one already (a lost race is harmless).
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// One HTTP connection pool and TLS configuration that any number of model clients share.
///
/// Building a reqwest client (its pool and its rustls configuration with the root
/// certificates) costs on the order of a hundred KiB; a process that talks to many models —
/// the operator probes every agent's — builds one `SharedTransport` and passes it to
/// [`build_client_shared`](crate::build_client_shared). Cloning is cheap (a handle to the
/// same pool).
///
/// Only connection-level settings live here: the user agent, the connect timeout and the
/// refusal to follow redirects. Everything that belongs to one client stays with that client:
/// its API key and other headers (sent with each request, never stored in the pool), its
/// request timeout (set on each request, and it bounds connecting too), its retry policy and
/// its body cap.
#[derive(Clone)]
pub struct SharedTransport {
    client: reqwest::Client,
}

impl std::fmt::Debug for SharedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTransport").finish_non_exhaustive()
    }
}

impl SharedTransport {
    /// A new pool whose connections must be established within `connect_timeout`. Clients
    /// over it whose request timeout is shorter give up sooner, since the request timeout
    /// covers connecting.
    ///
    /// Fails with [`Error::HttpClient`] only if the TLS backend cannot be initialised.
    pub fn new(connect_timeout: Duration) -> Result<Self> {
        ensure_crypto_provider();
        reqwest::Client::builder()
            .user_agent(concat!("kgents/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            // Redirects would resend the API key to wherever they point.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(|client| SharedTransport { client })
            .map_err(|e| Error::HttpClient {
                message: error_chain(&e),
            })
    }

    /// A new pool with the connect timeout of `options`.
    pub fn from_options(options: &RuntimeOptions) -> Result<Self> {
        Self::new(options.connect_timeout)
    }

    /// The reqwest client behind the pool.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// What a provider's error body says, as far as it could be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorDetail {
    /// The provider's error type (`not_found_error`, `invalid_request_error`, ...).
    pub kind: Option<String>,
    /// The provider's error code (`model_not_found`, ...).
    pub code: Option<String>,
    /// The human-readable message, or an excerpt of the raw body.
    pub message: String,
}

impl ErrorDetail {
    /// Whether the provider says the model does not exist.
    pub fn names_missing_model(&self) -> bool {
        let is = |v: &Option<String>, wanted: &[&str]| {
            v.as_deref()
                .is_some_and(|k| wanted.iter().any(|w| k.eq_ignore_ascii_case(w)))
        };
        // Anthropic: `not_found_error` (its only 404 on /v1/messages is the model); OpenAI:
        // `model_not_found`; others only say so in the message.
        if is(&self.code, &["model_not_found"])
            || is(
                &self.kind,
                &["model_not_found", "not_found_error", "NotFoundError"],
            )
        {
            return true;
        }
        let m = self.message.to_ascii_lowercase();
        m.contains("model")
            && (m.contains("not found")
                || m.contains("does not exist")
                || m.contains("not a valid model")
                || m.contains("no such model")
                || m.contains("unknown model"))
    }
}

/// The result of one HTTP exchange, decided from its status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// 2xx: decode the body.
    Success,
    /// A transient failure: retry after the given wait (or the backoff) while attempts last;
    /// report the error when they run out.
    Retry {
        error: LlmError,
        retry_after: Option<Duration>,
    },
    /// A permanent failure.
    Fail(LlmError),
}

/// Where the request went, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The provider's name.
    pub provider: &'a str,
    /// The model asked for.
    pub model: &'a str,
    /// The URL posted to (never holds credentials: endpoints with them are rejected).
    pub url: &'a str,
}

/// Decides what an HTTP status means. Pure.
pub(crate) fn classify(
    status: u16,
    retry_after: Option<Duration>,
    detail: &ErrorDetail,
    target: Target<'_>,
    request_id: Option<&str>,
) -> Step {
    let rid = request_id
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default();
    let said = if detail.message.is_empty() {
        String::new()
    } else {
        format!(": {}", detail.message)
    };
    let Target {
        provider,
        model,
        url,
    } = target;
    match status {
        200..=299 => Step::Success,
        401 | 403 => Step::Fail(LlmError::Auth {
            message: format!("{provider} answered {status}{said}{rid}"),
        }),
        429 => Step::Retry {
            error: LlmError::RateLimited { retry_after },
            retry_after,
        },
        404 if !detail.names_missing_model() => Step::Fail(LlmError::Provider {
            status: Some(404),
            message: format!(
                "{url} was not found{said}{rid}; check the endpoint, which must be the API's \
                 base URL (e.g. https://host/v1 for OpenAI-compatible servers)"
            ),
        }),
        400 | 404 | 422 if detail.names_missing_model() => Step::Fail(LlmError::ModelNotFound {
            model: model.to_owned(),
            message: format!(
                "model '{model}' does not exist at {provider}{said}{rid}; check the model name \
                 as the provider spells it"
            ),
        }),
        408 | 409 | 425 | 500..=599 => Step::Retry {
            error: LlmError::Provider {
                status: Some(status),
                message: format!("{provider} failed{said}{rid}"),
            },
            retry_after,
        },
        _ => Step::Fail(LlmError::Provider {
            status: Some(status),
            message: format!("{provider} refused the request{said}{rid}"),
        }),
    }
}

/// `endpoint` with `path` appended to its own path (`https://host/v1` + `chat/completions` →
/// `https://host/v1/chat/completions`), or why it cannot take a path.
pub(crate) fn endpoint_url(endpoint: &Url, path: &str) -> std::result::Result<Url, String> {
    endpoint
        .join(&format!("{}/{path}", endpoint.path().trim_end_matches('/')))
        .map_err(|e| e.to_string())
}

/// A header value carrying an API key, marked sensitive so that it is never printed.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value).map_err(|_| Error::InvalidField {
        field: "api_key".to_owned(),
        message: "the API key cannot be sent in an HTTP header".to_owned(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Decodes a JSON body, saying precisely what was wrong when it cannot. Pure.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, LlmError> {
    serde_json::from_slice(body).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let message = match e.classify() {
            serde_json::error::Category::Eof => format!(
                "{what}: the JSON ends early at line {line} column {column} (truncated answer)"
            ),
            serde_json::error::Category::Syntax => format!(
                "{what}: not valid JSON ({e}); the body starts with: {}",
                body_excerpt(body)
            ),
            serde_json::error::Category::Data | serde_json::error::Category::Io => {
                format!("{what}: not the expected shape: {e}")
            }
        };
        LlmError::BadResponse { message }
    })
}

/// The first 200 characters of a body, decoded lossily, for error messages.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(800)];
    excerpt(String::from_utf8_lossy(head).trim(), 200)
        .escape_debug()
        .to_string()
}

/// The message of an error and all its sources, joined, without any URL.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A response whose status has been read and whose body has been collected under the cap.
#[derive(Debug)]
pub(crate) struct RawResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The provider's request id, from the header named by the adapter.
    pub request_id: Option<String>,
    /// When to retry, from `retry-after-ms` or `retry-after`.
    pub retry_after: Option<Duration>,
    /// The body (complete for 2xx, truncated to [`ERROR_BODY_CAP`] otherwise).
    pub body: Vec<u8>,
}

/// Why one attempt produced no response.
enum AttemptError {
    /// Worth another attempt (connection refused or reset before an answer).
    Transient(LlmError),
    /// Not worth another attempt.
    Final(LlmError),
}

/// Sends JSON requests to one provider with retries and caps.
#[derive(Clone)]
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    url: Arc<str>,
    headers: HeaderMap,
    request_id_header: HeaderName,
    timeout: Duration,
    retry: RetryPolicy,
    max_body_bytes: usize,
}

impl HttpTransport {
    /// A transport posting to `url` with the given fixed headers (secrets among them must be
    /// marked sensitive by the caller).
    pub fn new(
        client: reqwest::Client,
        url: &Url,
        headers: HeaderMap,
        request_id_header: HeaderName,
        options: &RuntimeOptions,
    ) -> Self {
        HttpTransport {
            client,
            url: Arc::from(url.as_str()),
            headers,
            request_id_header,
            timeout: options.request_timeout,
            retry: options.retry.clone(),
            max_body_bytes: options.max_body_bytes,
        }
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Posts `body` and returns the first successful response, retrying transient failures
    /// as the policy allows. Statuses are judged with `error_detail` reading error bodies.
    pub async fn post_json(
        &self,
        body: Vec<u8>,
        target: Target<'_>,
        error_detail: fn(&[u8]) -> ErrorDetail,
    ) -> Result<RawResponse, LlmError> {
        let attempts = self.retry.attempts();
        let mut retry = 0;
        loop {
            let last_attempt = retry + 1 >= attempts;
            let (error, retry_after) = match self.attempt(body.clone()).await {
                Ok(response) => {
                    let detail = if response.status.is_success() {
                        ErrorDetail::default()
                    } else {
                        error_detail(&response.body)
                    };
                    match classify(
                        response.status.as_u16(),
                        response.retry_after,
                        &detail,
                        target,
                        response.request_id.as_deref(),
                    ) {
                        Step::Success => return Ok(response),
                        Step::Fail(error) => return Err(error),
                        Step::Retry { error, retry_after } => (error, retry_after),
                    }
                }
                Err(AttemptError::Final(error)) => return Err(error),
                Err(AttemptError::Transient(error)) => (error, None),
            };
            if last_attempt {
                return Err(gave_up(error, attempts));
            }
            let Some(wait) = self
                .retry
                .wait_before_retry(retry, retry_after, jitter_unit())
            else {
                return Err(error);
            };
            tracing::debug!(
                provider = target.provider,
                attempt = retry + 1,
                ?wait,
                %error,
                "retrying model call"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// One request: send, read the status and headers, collect the body under the cap.
    async fn attempt(&self, body: Vec<u8>) -> Result<RawResponse, AttemptError> {
        let sent = self
            .client
            .post(&*self.url)
            .headers(self.headers.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(AttemptError::Final(LlmError::Timeout {
                    after: self.timeout,
                }));
            }
            Err(e) => {
                let transient = e.is_connect() || e.is_request();
                let error = LlmError::Transport {
                    message: format!("POST {}: {}", self.url, error_chain(&e.without_url())),
                };
                return Err(if transient {
                    AttemptError::Transient(error)
                } else {
                    AttemptError::Final(error)
                });
            }
        };
        let status = response.status();
        let headers = response.headers();
        let request_id = headers
            .get(&self.request_id_header)
            .and_then(|v| v.to_str().ok())
            .map(|v| excerpt(v, 128));
        let retry_after = headers
            .get("retry-after-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after_ms)
            .or_else(|| {
                headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
            });
        let success = status.is_success();
        let cap = if success {
            self.max_body_bytes
        } else {
            ERROR_BODY_CAP.min(self.max_body_bytes)
        };
        if success
            && response
                .content_length()
                .is_some_and(|len| len > cap as u64)
        {
            return Err(AttemptError::Final(too_large(cap)));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > cap {
                        if success {
                            return Err(AttemptError::Final(too_large(cap)));
                        }
                        let room = cap - body.len();
                        body.extend_from_slice(&chunk[..room]);
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(AttemptError::Final(LlmError::Timeout {
                        after: self.timeout,
                    }));
                }
                Err(e) => {
                    return Err(AttemptError::Final(LlmError::Transport {
                        message: format!(
                            "reading the answer from {} (status {status}): {}; the connection \
                             broke before the whole body arrived",
                            self.url,
                            error_chain(&e.without_url())
                        ),
                    }));
                }
            }
        }
        if let Some(id) = &request_id {
            tracing::debug!(url = %self.url, %status, request_id = %id, "model answered");
        }
        Ok(RawResponse {
            status,
            request_id,
            retry_after,
            body,
        })
    }
}

/// Notes on the final error of a retried call how many attempts were made.
fn gave_up(error: LlmError, attempts: u32) -> LlmError {
    if attempts < 2 {
        return error;
    }
    match error {
        LlmError::Provider { status, message } => LlmError::Provider {
            status,
            message: format!("{message} (gave up after {attempts} attempts)"),
        },
        LlmError::Transport { message } => LlmError::Transport {
            message: format!("{message} (gave up after {attempts} attempts)"),
        },
        other => other,
    }
}

fn too_large(cap: usize) -> LlmError {
    LlmError::BadResponse {
        message: format!(
            "the answer is larger than the {} KiB cap; refusing to read it (lower max_tokens \
             or raise the cap)",
            cap / 1024
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target {
        provider: "anthropic",
        model: "claude-x",
        url: "http://h/v1/messages",
    };

    fn detail(kind: Option<&str>, code: Option<&str>, message: &str) -> ErrorDetail {
        ErrorDetail {
            kind: kind.map(str::to_owned),
            code: code.map(str::to_owned),
            message: message.to_owned(),
        }
    }

    #[test]
    fn statuses_map_to_the_right_steps() {
        let none = ErrorDetail::default();
        assert_eq!(classify(200, None, &none, TARGET, None), Step::Success);
        assert!(matches!(
            classify(401, None, &none, TARGET, None),
            Step::Fail(LlmError::Auth { .. })
        ));
        assert!(matches!(
            classify(403, None, &none, TARGET, None),
            Step::Fail(LlmError::Auth { .. })
        ));
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            classify(429, wait, &none, TARGET, None),
            Step::Retry {
                error: LlmError::RateLimited { retry_after: wait },
                retry_after: wait
            }
        );
        for s in [500, 502, 503, 529, 408] {
            assert!(
                matches!(classify(s, None, &none, TARGET, None), Step::Retry { .. }),
                "{s}"
            );
        }
        assert!(matches!(
            classify(
                400,
                None,
                &detail(None, None, "bad temperature"),
                TARGET,
                None
            ),
            Step::Fail(LlmError::Provider {
                status: Some(400),
                ..
            })
        ));
    }

    #[test]
    fn missing_models_are_told_apart_from_missing_endpoints() {
        let Step::Fail(LlmError::ModelNotFound { model, message }) = classify(
            404,
            None,
            &detail(Some("not_found_error"), None, "model: claude-x"),
            TARGET,
            Some("req_1"),
        ) else {
            panic!("404 must fail");
        };
        assert_eq!(model, "claude-x");
        assert!(
            message.contains("model 'claude-x' does not exist"),
            "{message}"
        );
        assert!(message.contains("req_1"), "{message}");

        let Step::Fail(LlmError::Provider { message, .. }) = classify(
            404,
            None,
            &detail(None, None, "page not found"),
            TARGET,
            None,
        ) else {
            panic!("404 must fail");
        };
        assert!(message.contains("check the endpoint"), "{message}");

        let openrouter = detail(None, None, "foo/bar is not a valid model ID");
        assert!(matches!(
            classify(400, None, &openrouter, TARGET, None),
            Step::Fail(LlmError::ModelNotFound { message, .. }) if message.contains("does not exist")
        ));
        let openai = detail(Some("invalid_request_error"), Some("model_not_found"), "x");
        assert!(openai.names_missing_model());
    }

    #[test]
    fn decode_says_what_is_wrong() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Shape {
            content: Vec<String>,
        }
        let e = decode::<Shape>("answer", br#"{"content":["a","#).unwrap_err();
        assert!(e.to_string().contains("ends early"), "{e}");
        let e = decode::<Shape>("answer", b"<html>oops</html>").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        assert!(e.to_string().contains("<html>oops"), "{e}");
        let e = decode::<Shape>("answer", br#"{"contents":[]}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `content`"), "{e}");
    }
}
