//! Redaction (pure): what could carry a credential is masked before anything leaves the
//! server. No tool reads Secrets or the kubeconfig; this is the second line, for payloads that
//! carry free text (conditions, messages, reasons, inputs echoed back).
//!
//! - By key: a value under a key that names a credential (`token`, `password`, `secret`,
//!   `apiKey`, `authorization`, `client-key-data`, `kubeconfig`, ...) is replaced, the key kept
//!   (users want to see that the field exists), and `last-applied-configuration` is dropped.
//! - By shape, inside any string: `Bearer <token>`, `password=…` / `token: …`-style pairs, JWTs
//!   and PEM private keys.

use serde_json::Value;

/// What replaces a masked value.
pub const MASK: &str = "[redacted]";

const KEY_WORDS: [&str; 10] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
    "authorization",
    "clientkeydata",
    "kubeconfig",
];

/// Whether a JSON key names a credential.
pub fn is_sensitive_key(key: &str) -> bool {
    let normal: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    KEY_WORDS.iter().any(|w| normal.contains(w))
}

fn is_last_applied(key: &str) -> bool {
    key.ends_with("last-applied-configuration")
}

/// Masks every credential in `value` in place; returns how many values were masked.
pub fn redact_value(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => {
            let mut count = 0;
            map.retain(|k, _| !is_last_applied(k));
            for (key, inner) in map.iter_mut() {
                if is_sensitive_key(key)
                    && !matches!(inner, Value::Null | Value::Bool(_) | Value::Number(_))
                {
                    *inner = Value::String(MASK.into());
                    count += 1;
                } else {
                    count += redact_value(inner);
                }
            }
            count
        }
        Value::Array(items) => items.iter_mut().map(redact_value).sum(),
        Value::String(text) => {
            let (masked, count) = redact_text(text);
            if count > 0 {
                *text = masked;
            }
            count
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// Byte ranges to mask in `text`.
fn spans(text: &str) -> Vec<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let value_end = |mut i: usize| {
        while i < bytes.len()
            && !matches!(
                bytes[i],
                b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b',' | b';' | b'}' | b']' | b')'
            )
        {
            i += 1;
        }
        i
    };
    // PEM private keys, whole.
    let mut from = 0;
    while let Some(at) = lower[from..].find("-----begin") {
        let start = from + at;
        let header_end = lower[start + 10..]
            .find("-----")
            .map(|i| start + 10 + i + 5);
        let Some(header_end) = header_end else { break };
        if lower[start..header_end].contains("private key") {
            let end = lower[header_end..]
                .find("-----end")
                .and_then(|i| {
                    let tail = header_end + i + 8;
                    lower[tail..].find("-----").map(|j| tail + j + 5)
                })
                .unwrap_or(text.len());
            out.push((start, end));
            from = end;
        } else {
            from = header_end;
        }
    }
    // `Bearer <token>`.
    let mut from = 0;
    while let Some(at) = lower[from..].find("bearer ") {
        let mut start = from + at + 7;
        while start < bytes.len() && bytes[start] == b' ' {
            start += 1;
        }
        let end = value_end(start);
        if end > start {
            out.push((start, end));
        }
        from = end.max(from + at + 7);
    }
    // `word=value` / `word: value` for credential words (the word may continue: `api_key`).
    for word in [
        "password", "passwd", "secret", "token", "apikey", "api_key", "api-key",
    ] {
        let mut from = 0;
        while let Some(at) = lower[from..].find(word) {
            let mut i = from + at + word.len();
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'-')
            {
                i += 1;
            }
            let mut j = i;
            while j < bytes.len() && matches!(bytes[j], b' ' | b'"' | b'\'') {
                j += 1;
            }
            if j < bytes.len() && matches!(bytes[j], b'=' | b':') {
                j += 1;
                while j < bytes.len() && matches!(bytes[j], b' ' | b'"' | b'\'') {
                    j += 1;
                }
                let end = value_end(j);
                if end > j {
                    out.push((j, end));
                }
                from = end.max(i);
            } else {
                from = i;
            }
        }
    }
    // JWTs: three dot-separated base64url runs, the first starting `eyJ`.
    let mut from = 0;
    while let Some(at) = text[from..].find("eyJ") {
        let start = from + at;
        let mut i = start;
        let mut dots = 0;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'-' | b'_' | b'.'))
        {
            if bytes[i] == b'.' {
                dots += 1;
            }
            i += 1;
        }
        if dots >= 2 && i - start > 20 {
            out.push((start, i));
        }
        from = i.max(start + 3);
    }
    out.sort_unstable();
    out
}

/// `text` with every credential-shaped part masked, and how many were.
pub fn redact_text(text: &str) -> (String, usize) {
    let spans = spans(text);
    if spans.is_empty() {
        return (text.to_owned(), 0);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut count = 0;
    for (start, end) in spans {
        if end <= at {
            continue;
        }
        let start = start.max(at);
        out.push_str(&text[at..start]);
        out.push_str(MASK);
        at = end;
        count += 1;
    }
    out.push_str(&text[at..]);
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "s3cr3t-V4lue-9f8e7d6c";

    #[test]
    fn credential_keys_are_masked_and_kept() {
        let mut v = json!({
            "name": "b-gent",
            "apiKey": SECRET,
            "auth": {"client-key-data": SECRET, "token": SECRET, "tokens_used": 12},
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": SECRET}},
            "list": [{"password": SECRET}],
        });
        let count = redact_value(&mut v);
        let text = v.to_string();
        assert!(!text.contains(SECRET), "{text}");
        assert_eq!(v["apiKey"], MASK);
        assert_eq!(v["auth"]["tokens_used"], 12, "numbers are not credentials");
        assert!(v["metadata"]["annotations"].as_object().unwrap().is_empty());
        assert_eq!(count, 4);
    }

    #[test]
    fn credential_shapes_inside_text_are_masked() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJlLWJ5dGVz";
        for text in [
            format!("probe failed: Authorization: Bearer {SECRET} rejected"),
            format!("login with password={SECRET}"),
            format!("config {{\"api_key\": \"{SECRET}\"}}"),
            format!("TOKEN: {SECRET}"),
            format!("sa token {jwt} expired"),
            format!(
                "key:\n-----BEGIN RSA PRIVATE KEY-----\nMII{SECRET}\n-----END RSA PRIVATE KEY-----\nrest"
            ),
        ] {
            let (masked, count) = redact_text(&text);
            assert!(count >= 1, "{text}");
            assert!(
                !masked.contains(SECRET) && !masked.contains("c2lnbmF0dXJl"),
                "{masked}"
            );
            assert!(masked.contains(MASK), "{masked}");
        }
        // Ordinary prose about tokens and secrets is left alone.
        for text in [
            "3 tokens used",
            "no secret here",
            "phase Running",
            "CONFIG_SECRET",
        ] {
            assert_eq!(redact_text(text), (text.to_owned(), 0), "{text}");
        }
    }
}
