//! Model configuration as the operator builds it from an Agent's `spec.model` and the API key
//! read from a Secret, or as the CLI builds it from the environment; and the `Retry-After`
//! values a provider's error answers carry.
//!
//! Properties: validation never panics; whatever the provider, model name, endpoint and key,
//! neither the error (Display and Debug) nor the configuration's Debug output contains the
//! key; a configuration that validates has an endpoint exactly when its provider speaks HTTP;
//! `Retry-After` parsing never panics, and the wait it leads to stays within the retry
//! policy's limits.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::{Result, Unstructured};
use kgents_llm::retry::{parse_retry_after, parse_retry_after_ms};
use kgents_llm::{ModelConfig, Provider, RetryPolicy};
use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret, SecretString};

/// A key that cannot appear by accident in any message: a fixed canary with fuzz bytes inside.
const CANARY: &str = "kgcanary7Q";

fn field(u: &mut Unstructured<'_>, choices: &[&str]) -> Result<Option<String>> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => None,
        1 => Some(u.arbitrary::<String>()?),
        _ => Some((*u.choose(choices)?).to_owned()),
    })
}

struct Input {
    provider: String,
    name: Option<String>,
    endpoint: Option<String>,
    key: Option<String>,
    retry_after: String,
}

fn input(u: &mut Unstructured<'_>) -> Result<Input> {
    let provider = field(
        u,
        &[
            "anthropic",
            "openai",
            "openrouter",
            "ollama",
            "claude-cli",
            "none",
            "OpenAI",
        ],
    )?
    .unwrap_or_default();
    let name = field(u, &["claude-sonnet-4-5", "gpt-4o", "llama3", "", " m "])?;
    let endpoint = field(
        u,
        &[
            "https://api.example.com",
            "http://127.0.0.1:9/v1",
            "ftp://x",
            "http://user:pw@host/",
            "not a url",
            "",
        ],
    )?;
    let key = if u.ratio(1, 8)? {
        None
    } else {
        let inner: String = u.arbitrary()?;
        Some(format!("{CANARY}{inner}{CANARY}"))
    };
    Ok(Input {
        provider,
        name,
        endpoint,
        key,
        retry_after: u.arbitrary()?,
    })
}

/// Asserts that `text` does not show the key. `others` is what else went in (provider, name,
/// endpoint): a message may quote those, so the canary counts only when they do not hold it.
fn assert_no_key(text: &str, key: &str, others: &str) {
    if !others.contains(CANARY) {
        assert!(!text.contains(CANARY), "the key leaked: {text}");
    }
    if key.len() >= 2 * CANARY.len() + 4 && !others.contains(key) {
        assert!(!text.contains(key), "the key leaked: {text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(input) = input(&mut u) else {
        return;
    };
    let key = input.key.clone().unwrap_or_default();
    let others = format!(
        "{} {} {}",
        input.provider,
        input.name.as_deref().unwrap_or_default(),
        input.endpoint.as_deref().unwrap_or_default()
    );
    // A URL parser drops ASCII tabs and newlines from an endpoint (the WHATWG URL rules), so the
    // endpoint shown may hold a canary the input spelled with one in between.
    let others = format!("{others} {}", others.replace(['\t', '\n', '\r'], ""));
    let from_parts = ModelConfig::from_parts(
        &input.provider,
        input.name.as_deref(),
        input.endpoint.as_deref(),
        input.key.clone().map(SecretString::from),
    );
    // The same through the environment lookup the CLI uses.
    let from_env = ModelConfig::from_env_with(|name| match name {
        "KGENTS_MODEL_PROVIDER" => Some(input.provider.clone()),
        "KGENTS_MODEL" => input.name.clone(),
        "KGENTS_MODEL_ENDPOINT" => input.endpoint.clone(),
        _ => input.key.clone(),
    });
    for result in [&from_parts, &from_env] {
        match result {
            Ok(config) => {
                assert_no_key(&format!("{config:?} {config:#?}"), &key, &others);
                let http = !matches!(config.provider(), Provider::ClaudeCli | Provider::None);
                assert_eq!(config.endpoint().is_some(), http, "{config:?}");
                if let Some(stored) = config.api_key() {
                    assert!(!stored.expose_secret().is_empty());
                }
            }
            Err(error) => assert_no_key(&format!("{error} {error:?}"), &key, &others),
        }
    }

    // A provider's wish is followed only up to the policy's limits.
    let policy = RetryPolicy::default();
    let limit = policy.max_retry_after.max(policy.max_delay);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for retry_after in [
        parse_retry_after(&input.retry_after, now),
        parse_retry_after_ms(&input.retry_after),
    ] {
        for retry in [0, 1, 40] {
            if let Some(wait) = policy.wait_before_retry(retry, retry_after, 0.5) {
                assert!(wait <= limit, "{:?} → {wait:?}", input.retry_after);
            }
        }
    }
});
