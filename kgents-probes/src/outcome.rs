//! What one probe run concluded: [`ProbeOutcome`] (the verdict with its evidence) and
//! [`ProbeRecord`] (the shape of an Agent's `status.lastProbe`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::challenge::{Challenge, ProbeKind};

/// Longest reply kept in an outcome, in bytes. Replies can be any size; the status of a
/// Kubernetes object cannot.
pub const MAX_REPLY_BYTES: usize = 512;

/// The four verdicts a probe can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Correct and within the latency budget.
    Healthy,
    /// Correct, but slower than the latency budget.
    Degraded,
    /// The model answered, and the answer was wrong. There is no partial credit: a reply that
    /// is nearly right (the answer inside a sentence, an extra field) is wrong, because
    /// partial matching is how "UNHEALTHY" once passed as healthy.
    Unhealthy,
    /// No answer to judge: timeout, transport error, or any other runtime failure.
    Unresponsive,
}

impl Verdict {
    /// The name as written to status (`Healthy`, `Degraded`, `Unhealthy`, `Unresponsive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "Healthy",
            Verdict::Degraded => "Degraded",
            Verdict::Unhealthy => "Unhealthy",
            Verdict::Unresponsive => "Unresponsive",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model's reply as kept in an outcome: at most [`MAX_REPLY_BYTES`], cut on a character
/// boundary, with the original size so a reader knows whether it was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// The (possibly truncated) reply text.
    pub text: String,
    /// The size of the whole reply in bytes.
    pub total_bytes: usize,
}

impl Reply {
    /// Keeps at most [`MAX_REPLY_BYTES`] of `full`.
    pub fn capture(full: &str) -> Reply {
        Reply {
            text: truncate_on_char_boundary(full, MAX_REPLY_BYTES).to_owned(),
            total_bytes: full.len(),
        }
    }

    /// Whether part of the reply was dropped.
    pub fn is_truncated(&self) -> bool {
        self.text.len() < self.total_bytes
    }
}

/// The longest prefix of `text` that is at most `max_bytes` long and ends on a character
/// boundary.
pub fn truncate_on_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    // A UTF-8 character is at most 4 bytes, so this loop runs at most 3 times.
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The evidence behind a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeDetail {
    /// The question that was asked.
    pub challenge: Challenge,
    /// The reply, when one arrived (truncated to [`MAX_REPLY_BYTES`]).
    pub reply: Option<Reply>,
    /// Time from posing the challenge to the reply, timeout or error, as the probe runner
    /// measured it. Serialised as whole milliseconds (`latencyMs`).
    #[serde(rename = "latencyMs", with = "millis")]
    pub latency: Duration,
    /// Why the verdict was reached, for a person.
    pub reason: String,
}

/// The result of one probe run.
///
/// Serialised with the verdict as the `outcome` field next to the detail's fields, e.g.
/// `{"outcome":"Unhealthy","challenge":{"kind":"Reasoning",...},"reply":{...},"latencyMs":812,"reason":"expected 12, got 112"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome")]
pub enum ProbeOutcome {
    /// Correct and within the latency budget.
    Healthy(ProbeDetail),
    /// Correct, but slower than the latency budget.
    Degraded(ProbeDetail),
    /// The model answered wrongly.
    Unhealthy(ProbeDetail),
    /// No answer to judge (timeout or transport error).
    Unresponsive(ProbeDetail),
}

impl ProbeOutcome {
    /// Builds the outcome of a verdict.
    pub fn new(verdict: Verdict, detail: ProbeDetail) -> ProbeOutcome {
        match verdict {
            Verdict::Healthy => ProbeOutcome::Healthy(detail),
            Verdict::Degraded => ProbeOutcome::Degraded(detail),
            Verdict::Unhealthy => ProbeOutcome::Unhealthy(detail),
            Verdict::Unresponsive => ProbeOutcome::Unresponsive(detail),
        }
    }

    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        match self {
            ProbeOutcome::Healthy(_) => Verdict::Healthy,
            ProbeOutcome::Degraded(_) => Verdict::Degraded,
            ProbeOutcome::Unhealthy(_) => Verdict::Unhealthy,
            ProbeOutcome::Unresponsive(_) => Verdict::Unresponsive,
        }
    }

    /// The evidence.
    pub fn detail(&self) -> &ProbeDetail {
        match self {
            ProbeOutcome::Healthy(detail)
            | ProbeOutcome::Degraded(detail)
            | ProbeOutcome::Unhealthy(detail)
            | ProbeOutcome::Unresponsive(detail) => detail,
        }
    }

    /// Which probe produced it.
    pub fn kind(&self) -> ProbeKind {
        self.detail().challenge.kind()
    }

    /// The measured latency.
    pub fn latency(&self) -> Duration {
        self.detail().latency
    }

    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        &self.detail().reason
    }

    /// The summary written to an Agent's `status.lastProbe`, stamped with `time`.
    pub fn record(&self, time: jiff::Timestamp) -> ProbeRecord {
        ProbeRecord {
            kind: self.kind(),
            outcome: self.verdict(),
            latency_ms: duration_millis(self.latency()),
            message: self.reason().to_owned(),
            time,
        }
    }
}

/// The summary of a probe for an Agent's status: `lastProbe {kind, outcome, latencyMs,
/// message, time}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    /// Which probe ran.
    pub kind: ProbeKind,
    /// Its verdict.
    pub outcome: Verdict,
    /// Measured latency in whole milliseconds.
    pub latency_ms: u64,
    /// Why, for a person.
    pub message: String,
    /// When the probe finished.
    pub time: jiff::Timestamp,
}

/// Whole milliseconds of `duration`, saturating at `u64::MAX`.
fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Serialises a [`Duration`] as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::duration_millis(*duration))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_replies_are_kept_whole() {
        let reply = Reply::capture("12");
        assert_eq!(reply.text, "12");
        assert_eq!(reply.total_bytes, 2);
        assert!(!reply.is_truncated());
    }

    #[test]
    fn truncation_never_splits_a_character() {
        // 511 ASCII bytes then a 4-byte emoji straddling the 512-byte limit.
        let text = format!("{}🦀tail", "a".repeat(511));
        let reply = Reply::capture(&text);
        assert_eq!(reply.text, "a".repeat(511));
        assert!(reply.is_truncated());
        assert_eq!(reply.total_bytes, text.len());
    }

    #[test]
    fn outcome_serialises_with_the_verdict_beside_the_detail() {
        let outcome = ProbeOutcome::Unhealthy(ProbeDetail {
            challenge: Challenge::Reasoning {
                operation: crate::challenge::Operation::Sum,
                lhs: 5,
                rhs: 7,
            },
            reply: Some(Reply::capture("112")),
            latency: Duration::from_millis(812),
            reason: "expected 12, got 112".to_owned(),
        });
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "outcome": "Unhealthy",
                "challenge": {"kind": "Reasoning", "operation": "Sum", "lhs": 5, "rhs": 7},
                "reply": {"text": "112", "totalBytes": 3},
                "latencyMs": 812,
                "reason": "expected 12, got 112",
            })
        );
        let back: ProbeOutcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, outcome);
    }

    #[test]
    fn record_matches_the_agent_status_shape() {
        let outcome = ProbeOutcome::Degraded(ProbeDetail {
            challenge: Challenge::Echo {
                nonce: "abc".into(),
            },
            reply: Some(Reply::capture("abc")),
            latency: Duration::from_millis(6_250),
            reason: "slow".into(),
        });
        let time: jiff::Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let record = serde_json::to_value(outcome.record(time)).unwrap();
        assert_eq!(
            record,
            serde_json::json!({
                "kind": "Echo",
                "outcome": "Degraded",
                "latencyMs": 6250,
                "message": "slow",
                "time": "2026-11-26T10:00:00Z",
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn captured_reply_is_a_bounded_prefix(text in any::<String>(), extra in 0usize..600) {
            let long = format!("{text}{}", "é".repeat(extra));
            let reply = Reply::capture(&long);
            prop_assert!(reply.text.len() <= MAX_REPLY_BYTES);
            prop_assert!(long.starts_with(&reply.text));
            prop_assert_eq!(reply.total_bytes, long.len());
            // Nothing is dropped that would have fitted: the next character would overflow.
            if reply.is_truncated() {
                let next = long[reply.text.len()..].chars().next().unwrap();
                prop_assert!(reply.text.len() + next.len_utf8() > MAX_REPLY_BYTES);
            }
        }
    }
}
