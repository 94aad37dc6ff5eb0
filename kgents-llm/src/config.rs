//! Which model to call and how: [`ModelConfig`] (provider, model name, endpoint, API key), built
//! from an Agent's `spec.model` ([`ModelConfig::from_parts`]) or from environment variables
//! ([`ModelConfig::from_env`]), and the [`RuntimeOptions`] that bound every call.
//!
//! Validation is pure and names the offending field in every error. The API key is held as a
//! [`SecretString`]: it is redacted in `Debug` output and never copied into an error.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Who serves the model. The spellings match the Agent CRD's `spec.model.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Chat Completions API, or any server that speaks it (vLLM, llama.cpp, ...).
    OpenAi,
    /// OpenRouter (OpenAI-compatible).
    OpenRouter,
    /// An Ollama server, through its OpenAI-compatible `/v1` API.
    Ollama,
    /// The `claude -p` command line.
    ClaudeCli,
    /// No model: the agent does not think.
    None,
}

impl Provider {
    /// Every provider, in the CRD's order.
    pub const ALL: [Provider; 6] = [
        Provider::Anthropic,
        Provider::OpenAi,
        Provider::OpenRouter,
        Provider::Ollama,
        Provider::ClaudeCli,
        Provider::None,
    ];

    /// The provider's name as `spec.model.provider` spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
            Provider::OpenRouter => "openrouter",
            Provider::Ollama => "ollama",
            Provider::ClaudeCli => "claude-cli",
            Provider::None => "none",
        }
    }

    /// The public endpoint used when none is configured (`None` for providers without one).
    pub const fn default_endpoint(self) -> Option<&'static str> {
        match self {
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::OpenAi => Some("https://api.openai.com/v1"),
            Provider::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Provider::Ollama | Provider::ClaudeCli | Provider::None => None,
        }
    }

    /// Whether the provider is reached over HTTP (and so takes an endpoint).
    pub const fn is_http(self) -> bool {
        matches!(
            self,
            Provider::Anthropic | Provider::OpenAi | Provider::OpenRouter | Provider::Ollama
        )
    }

    /// The conventional environment variable holding this provider's API key.
    pub const fn api_key_env(self) -> Option<&'static str> {
        match self {
            Provider::Anthropic => Some("ANTHROPIC_API_KEY"),
            Provider::OpenAi => Some("OPENAI_API_KEY"),
            Provider::OpenRouter => Some("OPENROUTER_API_KEY"),
            Provider::Ollama | Provider::ClaudeCli | Provider::None => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider name did not match any [`Provider`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown provider '{0}'; expected one of anthropic, openai, openrouter, ollama, claude-cli, none"
)]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    /// Parses the CRD spelling, ignoring ASCII case and surrounding whitespace.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let wanted = s.trim();
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownProvider(excerpt(wanted, 64)))
    }
}

/// The names under which each configuration value was supplied, so errors point at the right
/// place (`spec.model.endpoint` for an Agent, `KGENTS_MODEL_ENDPOINT` for the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldNames {
    /// Where the provider came from.
    pub provider: &'static str,
    /// Where the model name came from.
    pub name: &'static str,
    /// Where the endpoint came from.
    pub endpoint: &'static str,
    /// Where the API key came from.
    pub api_key: &'static str,
}

impl FieldNames {
    /// The Agent CRD's field paths.
    pub(crate) const AGENT_SPEC: FieldNames = FieldNames {
        provider: "spec.model.provider",
        name: "spec.model.name",
        endpoint: "spec.model.endpoint",
        api_key: "spec.model.secretRef",
    };
}

/// Environment variable naming the provider for [`ModelConfig::from_env`].
pub const ENV_PROVIDER: &str = "KGENTS_MODEL_PROVIDER";
/// Environment variable naming the model for [`ModelConfig::from_env`].
pub const ENV_MODEL: &str = "KGENTS_MODEL";
/// Environment variable naming the endpoint for [`ModelConfig::from_env`].
pub const ENV_ENDPOINT: &str = "KGENTS_MODEL_ENDPOINT";
/// Environment variable holding an API key for any provider; it wins over the provider's own
/// variable (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, `OPENROUTER_API_KEY`).
pub const ENV_API_KEY: &str = "KGENTS_MODEL_API_KEY";
/// Default Ollama server for local use when [`ENV_ENDPOINT`] is unset.
pub const LOCAL_OLLAMA: &str = "http://127.0.0.1:11434";

/// A validated description of the model an agent uses.
///
/// Built only through [`ModelConfig::from_parts`] or [`ModelConfig::from_env`], so every
/// value is checked: HTTP providers always have an endpoint, and providers that need a key
/// have one.
#[derive(Clone)]
pub struct ModelConfig {
    provider: Provider,
    model: Option<String>,
    endpoint: Option<Url>,
    api_key: Option<SecretString>,
}

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str))
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl ModelConfig {
    /// Builds a configuration from an Agent's `spec.model`: the provider as spelled in the CRD,
    /// the model name, the endpoint, and the API key the operator read from `secretRef`.
    ///
    /// Errors name the field, e.g. `spec.model.endpoint: 'foo' is not a URL (...)`.
    pub fn from_parts(
        provider: &str,
        name: Option<&str>,
        endpoint: Option<&str>,
        api_key: Option<SecretString>,
    ) -> Result<Self> {
        Self::validate(
            FieldNames::AGENT_SPEC,
            provider,
            name,
            endpoint,
            api_key,
            None,
        )
    }

    /// Builds a configuration from the process environment, for local use:
    /// [`ENV_PROVIDER`], [`ENV_MODEL`], [`ENV_ENDPOINT`], and the key from [`ENV_API_KEY`] or
    /// the provider's own variable ([`Provider::api_key_env`]). Ollama defaults to
    /// [`LOCAL_OLLAMA`]. Empty variables count as unset.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// [`ModelConfig::from_env`] with an injected variable lookup (for tests and for callers
    /// with their own configuration source).
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let provider = get(ENV_PROVIDER).ok_or_else(|| Error::MissingField {
            field: ENV_PROVIDER.to_owned(),
            message: "set it to anthropic, openai, openrouter, ollama, claude-cli or none"
                .to_owned(),
        })?;
        let parsed = Provider::from_str(&provider).ok();
        let (key, key_field) = match get(ENV_API_KEY) {
            Some(key) => (Some(key), ENV_API_KEY),
            None => match parsed.and_then(Provider::api_key_env) {
                Some(var) => (get(var), var),
                None => (None, ENV_API_KEY),
            },
        };
        let fields = FieldNames {
            provider: ENV_PROVIDER,
            name: ENV_MODEL,
            endpoint: ENV_ENDPOINT,
            api_key: key_field,
        };
        let endpoint = get(ENV_ENDPOINT);
        let model = get(ENV_MODEL);
        Self::validate(
            fields,
            &provider,
            model.as_deref(),
            endpoint.as_deref(),
            key.map(SecretString::from),
            Some(LOCAL_OLLAMA),
        )
    }

    /// The shared validation behind both constructors.
    fn validate(
        fields: FieldNames,
        provider: &str,
        name: Option<&str>,
        endpoint: Option<&str>,
        api_key: Option<SecretString>,
        ollama_default: Option<&str>,
    ) -> Result<Self> {
        let provider = Provider::from_str(provider).map_err(|e| Error::InvalidField {
            field: fields.provider.to_owned(),
            message: e.to_string(),
        })?;
        if provider == Provider::None {
            return Ok(ModelConfig {
                provider,
                model: None,
                endpoint: None,
                api_key: None,
            });
        }

        let model = validate_model_name(fields.name, provider, name)?;
        let endpoint_given = endpoint.map(str::trim).filter(|e| !e.is_empty());
        let endpoint = match (provider, endpoint_given) {
            (Provider::ClaudeCli, Some(_)) => {
                return Err(Error::InvalidField {
                    field: fields.endpoint.to_owned(),
                    message: "provider claude-cli runs the local `claude` command and takes no \
                              endpoint; remove it"
                        .to_owned(),
                });
            }
            (Provider::ClaudeCli, None) => None,
            (_, Some(raw)) => Some(parse_endpoint(fields.endpoint, provider, raw)?),
            (Provider::Ollama, None) => match ollama_default {
                Some(raw) => Some(parse_endpoint(fields.endpoint, provider, raw)?),
                None => {
                    return Err(Error::MissingField {
                        field: fields.endpoint.to_owned(),
                        message: "provider ollama needs the URL of the Ollama server, e.g. \
                                  http://ollama.models:11434"
                            .to_owned(),
                    });
                }
            },
            (_, None) => provider
                .default_endpoint()
                .map(|raw| parse_endpoint(fields.endpoint, provider, raw))
                .transpose()?,
        };

        let api_key = api_key
            .map(|key| validate_api_key(fields.api_key, key))
            .transpose()?
            .flatten();
        if api_key.is_none() && key_required(provider, endpoint_given.is_some()) {
            return Err(Error::MissingField {
                field: fields.api_key.to_owned(),
                message: format!(
                    "provider {provider} needs an API key; reference a Secret key holding it"
                ),
            });
        }

        Ok(ModelConfig {
            provider,
            model,
            endpoint,
            api_key,
        })
    }

    /// The provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The model name, if one is configured (`claude-cli` may use the CLI's default).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The effective base URL of an HTTP provider: the configured or default endpoint, with
    /// `/v1` appended for Ollama when missing. `None` for `claude-cli` and `none`.
    pub fn endpoint(&self) -> Option<&Url> {
        self.endpoint.as_ref()
    }

    /// The API key, if any. Expose it only to put it in a request header.
    pub fn api_key(&self) -> Option<&SecretString> {
        self.api_key.as_ref()
    }
}

/// Whether a provider cannot work without a key. OpenAI at its public endpoint needs one;
/// an OpenAI-compatible server at a custom endpoint (vLLM, llama.cpp) often does not.
fn key_required(provider: Provider, custom_endpoint: bool) -> bool {
    match provider {
        Provider::Anthropic | Provider::OpenRouter => true,
        Provider::OpenAi => !custom_endpoint,
        Provider::Ollama | Provider::ClaudeCli | Provider::None => false,
    }
}

fn validate_model_name(
    field: &str,
    provider: Provider,
    name: Option<&str>,
) -> Result<Option<String>> {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    match name {
        None if provider == Provider::ClaudeCli => Ok(None),
        None => Err(Error::MissingField {
            field: field.to_owned(),
            message: format!(
                "provider {provider} needs a model name as the provider spells it \
                 (e.g. claude-sonnet-4-5, gpt-4o, llama3)"
            ),
        }),
        Some(n) if n.chars().any(char::is_control) || n.len() > 256 => Err(Error::InvalidField {
            field: field.to_owned(),
            message: format!(
                "'{}' is not a model name (control characters or longer than 256 bytes)",
                excerpt(n, 64).escape_default()
            ),
        }),
        Some(n) => Ok(Some(n.to_owned())),
    }
}

/// Parses and checks an endpoint: an absolute http(s) URL with a host, no credentials, no
/// query or fragment (paths are appended to it).
pub(crate) fn parse_endpoint(field: &str, provider: Provider, raw: &str) -> Result<Url> {
    let invalid = |message: String| Error::InvalidField {
        field: field.to_owned(),
        message,
    };
    let shown = redact_userinfo(raw);
    let mut url = Url::parse(raw).map_err(|e| {
        invalid(format!(
            "'{shown}' is not a URL ({e}); write an absolute URL such as https://api.example.com/v1"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "'{shown}' uses scheme '{}'; only http and https are supported",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("'{shown}' has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "the URL contains credentials; remove them and put the key in the Secret".to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "'{shown}' has a query or fragment; give only the base URL"
        )));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let path = if provider == Provider::Ollama && !path.ends_with("/v1") {
        format!("{path}/v1")
    } else {
        path
    };
    url.set_path(&path);
    Ok(url)
}

/// Trims the key (Secrets written with `echo` end in a newline) and checks it can go in an
/// HTTP header. An empty key counts as absent. The key's value is never put in the error.
fn validate_api_key(field: &str, key: SecretString) -> Result<Option<SecretString>> {
    let trimmed = key.expose_secret().trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidField {
            field: field.to_owned(),
            message: "the API key contains spaces, control or non-ASCII characters, so it cannot \
                      be sent in an HTTP header; check the Secret's value"
                .to_owned(),
        });
    }
    if trimmed.len() == key.expose_secret().len() {
        Ok(Some(key))
    } else {
        Ok(Some(SecretString::from(trimmed.to_owned())))
    }
}

/// Replaces `user:password@` in something URL-like, so an unparseable endpoint can be echoed.
fn redact_userinfo(raw: &str) -> String {
    let raw = excerpt(raw, 200);
    let Some(scheme_end) = raw.find("://") else {
        return raw;
    };
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://[REDACTED]@{}", &raw[..scheme_end], &rest[at + 1..]),
        None => raw,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, with `…` when cut.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Options of the `claude -p` runtime.
///
/// Non-exhaustive: start from `ClaudeCliOptions::default()` and use the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaudeCliOptions {
    /// The executable to run (`claude` on `PATH` by default).
    pub program: PathBuf,
    /// At most this many `claude` processes run at once; further calls wait their turn.
    pub max_concurrent: usize,
    /// Arguments placed before the prompt, after the ones the runtime always passes.
    pub extra_args: Vec<String>,
}

impl Default for ClaudeCliOptions {
    fn default() -> Self {
        ClaudeCliOptions {
            program: PathBuf::from("claude"),
            max_concurrent: 4,
            extra_args: Vec::new(),
        }
    }
}

impl ClaudeCliOptions {
    /// The same options with another executable.
    #[must_use]
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// The same options with another limit on concurrent processes.
    #[must_use]
    pub fn with_max_concurrent(mut self, max_concurrent: usize) -> Self {
        self.max_concurrent = max_concurrent;
        self
    }

    /// The same options with other extra arguments.
    #[must_use]
    pub fn with_extra_args(mut self, extra_args: Vec<String>) -> Self {
        self.extra_args = extra_args;
        self
    }
}

/// Bounds on every call a client makes.
///
/// Non-exhaustive: start from `RuntimeOptions::default()` and use the `with_*` methods.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RuntimeOptions {
    /// Deadline for one attempt: connecting, sending, and reading the whole answer (for the
    /// CLI: the whole process run, not the wait for a concurrency slot). Retries each get
    /// their own; a timed-out attempt is not retried. Callers with an overall deadline (the
    /// probe runner) wrap the call in their own timeout, and dropping the call cancels it.
    pub request_timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// When and how often to retry.
    pub retry: RetryPolicy,
    /// Answers longer than this many bytes are refused, so a runaway model or server cannot
    /// exhaust memory.
    pub max_body_bytes: usize,
    /// The `claude -p` runtime's options.
    pub claude_cli: ClaudeCliOptions,
}

/// Default response size cap: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            claude_cli: ClaudeCliOptions::default(),
        }
    }
}

impl RuntimeOptions {
    /// The same options with another deadline per attempt.
    #[must_use]
    pub fn with_request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }

    /// The same options with another connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// The same options with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same options with another answer size cap.
    #[must_use]
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The same options with other `claude -p` options.
    #[must_use]
    pub fn with_claude_cli(mut self, claude_cli: ClaudeCliOptions) -> Self {
        self.claude_cli = claude_cli;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<ModelConfig>) -> String {
        r.expect_err("configuration should be rejected").to_string()
    }

    #[test]
    fn provider_round_trips_through_its_crd_spelling() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
            assert_eq!(p.as_str().to_uppercase().parse::<Provider>(), Ok(p));
        }
        assert!("claude".parse::<Provider>().is_err());
    }

    #[test]
    fn anthropic_defaults_to_the_public_endpoint() {
        let c = ModelConfig::from_parts(
            "anthropic",
            Some("claude-sonnet-4-5"),
            None,
            Some("sk-ant-x".into()),
        )
        .unwrap();
        assert_eq!(c.endpoint().unwrap().as_str(), "https://api.anthropic.com/");
        assert_eq!(c.model(), Some("claude-sonnet-4-5"));
    }

    #[test]
    fn endpoint_that_is_not_a_url_names_the_field() {
        let e = err(ModelConfig::from_parts(
            "openai",
            Some("gpt-4o"),
            Some("foo"),
            None,
        ));
        assert!(
            e.starts_with("spec.model.endpoint: 'foo' is not a URL"),
            "{e}"
        );
    }

    #[test]
    fn unknown_provider_names_the_field() {
        let e = err(ModelConfig::from_parts("gemini", Some("x"), None, None));
        assert!(
            e.starts_with("spec.model.provider: unknown provider 'gemini'"),
            "{e}"
        );
    }

    #[test]
    fn missing_key_names_the_secret_ref() {
        let e = err(ModelConfig::from_parts("anthropic", Some("m"), None, None));
        assert!(
            e.starts_with("spec.model.secretRef: provider anthropic needs an API key"),
            "{e}"
        );
        let e = err(ModelConfig::from_parts(
            "openrouter",
            Some("m"),
            None,
            Some("  \n".into()),
        ));
        assert!(e.starts_with("spec.model.secretRef:"), "{e}");
    }

    #[test]
    fn openai_compatible_server_needs_no_key() {
        let c = ModelConfig::from_parts("openai", Some("m"), Some("http://vllm:8000/v1/"), None)
            .unwrap();
        assert_eq!(c.endpoint().unwrap().as_str(), "http://vllm:8000/v1");
        assert!(c.api_key().is_none());
        let e = err(ModelConfig::from_parts("openai", Some("m"), None, None));
        assert!(e.starts_with("spec.model.secretRef:"), "{e}");
    }

    #[test]
    fn ollama_gets_v1_appended_and_needs_an_endpoint_in_the_spec() {
        let c =
            ModelConfig::from_parts("ollama", Some("llama3"), Some("http://ollama:11434"), None)
                .unwrap();
        assert_eq!(c.endpoint().unwrap().as_str(), "http://ollama:11434/v1");
        let c =
            ModelConfig::from_parts("ollama", Some("llama3"), Some("http://o:1/v1"), None).unwrap();
        assert_eq!(c.endpoint().unwrap().as_str(), "http://o:1/v1");
        let e = err(ModelConfig::from_parts(
            "ollama",
            Some("llama3"),
            None,
            None,
        ));
        assert!(
            e.starts_with("spec.model.endpoint: provider ollama needs"),
            "{e}"
        );
    }

    #[test]
    fn model_name_is_required_except_for_claude_cli() {
        let e = err(ModelConfig::from_parts(
            "ollama",
            None,
            Some("http://o:1"),
            None,
        ));
        assert!(e.starts_with("spec.model.name:"), "{e}");
        let c = ModelConfig::from_parts("claude-cli", None, None, None).unwrap();
        assert_eq!(c.model(), None);
        let e = err(ModelConfig::from_parts(
            "claude-cli",
            None,
            Some("http://x"),
            None,
        ));
        assert!(
            e.starts_with("spec.model.endpoint: provider claude-cli"),
            "{e}"
        );
    }

    #[test]
    fn endpoints_with_wrong_scheme_credentials_or_query_are_rejected() {
        let e = err(ModelConfig::from_parts(
            "openai",
            Some("m"),
            Some("ftp://h/x"),
            None,
        ));
        assert!(e.contains("scheme 'ftp'"), "{e}");
        let e = err(ModelConfig::from_parts(
            "openai",
            Some("m"),
            Some("https://bob:hunter2@h/v1"),
            None,
        ));
        assert!(e.contains("credentials") && !e.contains("hunter2"), "{e}");
        let e = err(ModelConfig::from_parts(
            "openai",
            Some("m"),
            Some("https://h/v1?a=b"),
            None,
        ));
        assert!(e.contains("query"), "{e}");
    }

    #[test]
    fn unparseable_endpoint_with_credentials_is_echoed_redacted() {
        let e = err(ModelConfig::from_parts(
            "openai",
            Some("m"),
            Some("https://bob:hunter2@[bad/v1"),
            None,
        ));
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("[REDACTED]"), "{e}");
    }

    #[test]
    fn key_with_trailing_newline_is_trimmed_and_bad_key_is_not_echoed() {
        let c =
            ModelConfig::from_parts("anthropic", Some("m"), None, Some("sk-1\n".into())).unwrap();
        assert_eq!(c.api_key().unwrap().expose_secret(), "sk-1");
        let e = err(ModelConfig::from_parts(
            "anthropic",
            Some("m"),
            None,
            Some("sk-secret value".into()),
        ));
        assert!(
            e.starts_with("spec.model.secretRef:") && !e.contains("sk-secret"),
            "{e}"
        );
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let c = ModelConfig::from_parts(
            "openrouter",
            Some("m"),
            None,
            Some("sk-or-v1-topsecret".into()),
        )
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn from_env_reads_the_provider_specific_key_and_names_env_vars() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = ModelConfig::from_env_with(env(&[
            ("KGENTS_MODEL_PROVIDER", "anthropic"),
            ("KGENTS_MODEL", "claude-haiku-4-5"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("OPENAI_API_KEY", "sk-openai"),
        ]))
        .unwrap();
        assert_eq!(c.api_key().unwrap().expose_secret(), "sk-ant");

        let c = ModelConfig::from_env_with(env(&[
            ("KGENTS_MODEL_PROVIDER", "openai"),
            ("KGENTS_MODEL", "gpt-4o"),
            ("KGENTS_MODEL_API_KEY", "sk-generic"),
            ("OPENAI_API_KEY", "sk-openai"),
        ]))
        .unwrap();
        assert_eq!(c.api_key().unwrap().expose_secret(), "sk-generic");

        let c = ModelConfig::from_env_with(env(&[
            ("KGENTS_MODEL_PROVIDER", "ollama"),
            ("KGENTS_MODEL", "llama3"),
        ]))
        .unwrap();
        assert_eq!(c.endpoint().unwrap().as_str(), "http://127.0.0.1:11434/v1");

        let e = err(ModelConfig::from_env_with(env(&[
            ("KGENTS_MODEL_PROVIDER", "openrouter"),
            ("KGENTS_MODEL", "x"),
        ])));
        assert!(e.starts_with("OPENROUTER_API_KEY:"), "{e}");
        let e = err(ModelConfig::from_env_with(env(&[(
            "KGENTS_MODEL_ENDPOINT",
            "http://x",
        )])));
        assert!(e.starts_with("KGENTS_MODEL_PROVIDER:"), "{e}");
        let e = err(ModelConfig::from_env_with(env(&[
            ("KGENTS_MODEL_PROVIDER", "openai"),
            ("KGENTS_MODEL", "m"),
            ("KGENTS_MODEL_ENDPOINT", "not a url"),
        ])));
        assert!(
            e.starts_with("KGENTS_MODEL_ENDPOINT: 'not a url' is not a URL"),
            "{e}"
        );
    }

    #[test]
    fn provider_none_needs_nothing() {
        let c = ModelConfig::from_parts("none", None, Some("garbage"), None).unwrap();
        assert_eq!(c.provider(), Provider::None);
        assert!(c.endpoint().is_none());
    }

    #[test]
    fn excerpt_cuts_at_char_boundaries() {
        assert_eq!(excerpt("héllo", 2), "h…");
        assert_eq!(excerpt("abc", 3), "abc");
    }
}
