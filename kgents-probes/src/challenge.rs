//! Challenges and their exact checks. Pure functions: drawing a challenge from an RNG, turning
//! it into a prompt, and judging a reply.
//!
//! # What counts as a correct reply
//!
//! Every check first **normalises** the reply: surrounding whitespace is removed, then one
//! trailing period directly after the answer (`12.`). Nothing else is forgiven:
//!
//! | probe | correct reply after normalising | rejected (examples) |
//! |---|---|---|
//! | Echo | exactly the nonce, same case | `UNHEALTHY`, `"k3v9x2q7mn"`, `` `k3v9x2q7mn` ``, `Nonce: k3v9x2q7mn` |
//! | Reasoning | the integer in canonical decimal: ASCII digits, optional `-`, no leading zeros, no separators | `112` for 12, `012`, `+12`, `12.0`, `1,234`, `The answer is 12`, `１２` |
//! | Json | a JSON object with exactly the fields `status` = `"alive"` and `nonce` = the number, each once; optionally inside **one** Markdown code fence (```` ```json ```` or ```` ``` ````) with nothing outside it | extra or duplicate fields, `"nonce":"123"`, `123.0`, prose before or after the object or the fence |
//! | Path | any non-empty answer from the resolver | an empty or whitespace-only answer |
//!
//! The Json probe tolerates a code fence because chat models wrap JSON in one by habit and
//! the content is still unambiguous; prose around it is not tolerated, because a client
//! parsing that reply would have to guess where the object starts. Quotes or backticks
//! around an echoed nonce are rejected: the prompt asks for the nonce alone and the check is
//! exact.

use std::fmt;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use kgents_core::agentese::Path;

use crate::client::CompletionRequest;

/// The kinds of cognitive probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeKind {
    /// Reply with exactly a random nonce.
    Echo,
    /// Compute a random sum or product.
    Reasoning,
    /// Return a small JSON object carrying a random nonce.
    Json,
    /// Resolve an AGENTESE path through a resolver.
    Path,
}

impl ProbeKind {
    /// The lower-case name used in messages (`echo`, `reasoning`, `json`, `path`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Echo => "echo",
            ProbeKind::Reasoning => "reasoning",
            ProbeKind::Json => "json",
            ProbeKind::Path => "path",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The arithmetic operation of a reasoning challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// `lhs + rhs`.
    Sum,
    /// `lhs × rhs`.
    Product,
}

/// One concrete question a probe asks, with everything needed to judge the answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Challenge {
    /// Reply with exactly `nonce`.
    Echo {
        /// The text to echo.
        nonce: String,
    },
    /// Reply with the integer `lhs op rhs`.
    Reasoning {
        /// The operation.
        operation: Operation,
        /// Left operand.
        lhs: u32,
        /// Right operand.
        rhs: u32,
    },
    /// Reply with `{"status":"alive","nonce":nonce}`.
    Json {
        /// The number the object must carry.
        nonce: u64,
    },
    /// Resolve this AGENTESE path to a non-empty answer.
    Path {
        /// The path (serialised in its printed form).
        path: Path,
    },
}

/// Symbols of an echo nonce: lower-case letters and digits without the look-alikes
/// `0 o 1 l i`, so a nonce is never a word and never misread.
const NONCE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Length of an echo nonce: 31^10 ≈ 8·10^14 possibilities, far beyond guessing.
const NONCE_LEN: usize = 10;
/// Operand range of a sum: three-digit numbers, so the answer is never a small memorised fact.
const SUM_OPERANDS: std::ops::RangeInclusive<u32> = 100..=999;
/// Operand range of a product: two-digit numbers without trivial factors.
const PRODUCT_OPERANDS: std::ops::RangeInclusive<u32> = 12..=99;
/// Range of a JSON nonce: nine digits, well inside what every JSON parser keeps exact (2^53).
const JSON_NONCES: std::ops::RangeInclusive<u64> = 100_000_000..=999_999_999;

/// The system prompt of every LLM probe.
pub const PROBE_SYSTEM_PROMPT: &str = "You are answering an automated health check. \
Follow the instruction exactly. Reply with only what is asked for: no greeting, no explanation, \
no quotes, no extra punctuation.";

impl Challenge {
    /// Draws a fresh echo challenge.
    pub fn echo(rng: &mut dyn RngCore) -> Challenge {
        let nonce = (0..NONCE_LEN)
            .map(|_| char::from(NONCE_ALPHABET[rng.random_range(0..NONCE_ALPHABET.len())]))
            .collect();
        Challenge::Echo { nonce }
    }

    /// Draws a fresh reasoning challenge: a sum of two three-digit numbers or a product of two
    /// two-digit numbers, with equal probability.
    pub fn reasoning(rng: &mut dyn RngCore) -> Challenge {
        let (operation, range) = if rng.random_bool(0.5) {
            (Operation::Sum, SUM_OPERANDS)
        } else {
            (Operation::Product, PRODUCT_OPERANDS)
        };
        let lhs = rng.random_range(range.clone());
        let rhs = rng.random_range(range);
        Challenge::Reasoning {
            operation,
            lhs,
            rhs,
        }
    }

    /// Draws a fresh JSON challenge.
    pub fn json(rng: &mut dyn RngCore) -> Challenge {
        Challenge::Json {
            nonce: rng.random_range(JSON_NONCES),
        }
    }

    /// Which probe kind this challenge belongs to.
    pub fn kind(&self) -> ProbeKind {
        match self {
            Challenge::Echo { .. } => ProbeKind::Echo,
            Challenge::Reasoning { .. } => ProbeKind::Reasoning,
            Challenge::Json { .. } => ProbeKind::Json,
            Challenge::Path { .. } => ProbeKind::Path,
        }
    }

    /// The correct answer of a reasoning challenge (`None` for other kinds). Computed in `u64`,
    /// so it never overflows.
    pub fn expected_integer(&self) -> Option<u64> {
        match *self {
            Challenge::Reasoning {
                operation,
                lhs,
                rhs,
            } => Some(match operation {
                Operation::Sum => u64::from(lhs) + u64::from(rhs),
                Operation::Product => u64::from(lhs) * u64::from(rhs),
            }),
            _ => None,
        }
    }

    /// The expected answer, as a person would read it.
    pub fn expected(&self) -> String {
        match self {
            Challenge::Echo { nonce } => nonce.clone(),
            Challenge::Reasoning { .. } => self
                .expected_integer()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            Challenge::Json { nonce } => format!(r#"{{"status":"alive","nonce":{nonce}}}"#),
            Challenge::Path { .. } => "a non-empty answer".to_owned(),
        }
    }

    /// The user message that poses this challenge to a model (`None` for a path challenge,
    /// which is resolved, not prompted).
    pub fn prompt(&self) -> Option<String> {
        match self {
            Challenge::Echo { nonce } => Some(format!(
                "Reply with exactly this token and nothing else: {nonce}"
            )),
            Challenge::Reasoning {
                operation,
                lhs,
                rhs,
            } => {
                let symbol = match operation {
                    Operation::Sum => "+",
                    Operation::Product => "*",
                };
                Some(format!(
                    "What is {lhs} {symbol} {rhs}? Reply with the result as a plain integer \
                     in digits only: no words, no spaces, no thousands separators."
                ))
            }
            Challenge::Json { nonce } => Some(format!(
                "Reply with a JSON object that has exactly two fields: \"status\" set to the \
                 string \"alive\" and \"nonce\" set to the number {nonce}. \
                 Output the JSON object only."
            )),
            Challenge::Path { .. } => None,
        }
    }

    /// The full completion request for this challenge (`None` for a path challenge).
    pub fn completion_request(&self, settings: &CompletionSettings) -> Option<CompletionRequest> {
        self.prompt().map(|user| CompletionRequest {
            system: PROBE_SYSTEM_PROMPT.to_owned(),
            user,
            temperature: settings.temperature,
            max_tokens: settings.max_tokens,
        })
    }

    /// Judges `reply` against this challenge. Exact, as the module documentation describes.
    pub fn judge(&self, reply: &str) -> Judgement {
        let answer = normalize(reply);
        match self {
            Challenge::Echo { nonce } => judge_echo(nonce, answer),
            Challenge::Reasoning { .. } => {
                judge_integer(self.expected_integer().unwrap_or_default(), answer)
            }
            Challenge::Json { nonce } => judge_json(*nonce, answer),
            Challenge::Path { .. } => {
                if answer.is_empty() {
                    Judgement::Wrong("the resolver returned an empty answer".to_owned())
                } else {
                    Judgement::Correct
                }
            }
        }
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Challenge::Echo { nonce } => write!(f, "echo {nonce}"),
            Challenge::Reasoning {
                operation,
                lhs,
                rhs,
            } => match operation {
                Operation::Sum => write!(f, "{lhs} + {rhs}"),
                Operation::Product => write!(f, "{lhs} * {rhs}"),
            },
            Challenge::Json { nonce } => write!(f, r#"json {{"status":"alive","nonce":{nonce}}}"#),
            Challenge::Path { path } => write!(f, "resolve {path}"),
        }
    }
}

/// Sampling settings of an LLM probe's completion request.
///
/// Non-exhaustive: start from `CompletionSettings::default()` and set the fields to change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CompletionSettings {
    /// Sampling temperature (default 0).
    pub temperature: f32,
    /// Token limit (default 64: room for the answer and a little slack, not for an essay).
    pub max_tokens: u32,
}

impl Default for CompletionSettings {
    fn default() -> Self {
        CompletionSettings {
            temperature: 0.0,
            max_tokens: 64,
        }
    }
}

/// The verdict of a check on a reply's content (latency is judged separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The reply is exactly right.
    Correct,
    /// The reply is wrong; the text says how, for a person.
    Wrong(String),
}

impl Judgement {
    /// Whether the reply was correct.
    pub fn is_correct(&self) -> bool {
        matches!(self, Judgement::Correct)
    }
}

/// Removes surrounding whitespace, then one trailing period. Nothing else.
pub fn normalize(reply: &str) -> &str {
    let trimmed = reply.trim();
    trimmed.strip_suffix('.').unwrap_or(trimmed)
}

/// How many characters of a wrong reply are quoted in a judgement's reason.
const QUOTE_CHARS: usize = 60;

/// Quotes (a prefix of) a reply for a human-readable reason, escaping control characters.
pub(crate) fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

fn judge_echo(nonce: &str, answer: &str) -> Judgement {
    if answer == nonce {
        Judgement::Correct
    } else if answer.is_empty() {
        Judgement::Wrong(format!("expected exactly {nonce:?}, got an empty reply"))
    } else {
        Judgement::Wrong(format!("expected exactly {nonce:?}, got {}", quote(answer)))
    }
}

/// Parses an integer in canonical decimal form: an optional `-`, then ASCII digits with no
/// leading zero (except `0` itself; `-0` is not canonical). Anything else is `None`.
pub fn parse_canonical_integer(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && !(text.starts_with('-') && digits == "0");
    if canonical { text.parse().ok() } else { None }
}

fn judge_integer(expected: u64, answer: &str) -> Judgement {
    match parse_canonical_integer(answer) {
        Some(value) if value == i128::from(expected) => Judgement::Correct,
        Some(value) => Judgement::Wrong(format!("expected {expected}, got {value}")),
        None if answer.is_empty() => {
            Judgement::Wrong(format!("expected {expected}, got an empty reply"))
        }
        None => Judgement::Wrong(format!(
            "expected the integer {expected} alone, got {}",
            quote(answer)
        )),
    }
}

/// The only shape the Json probe accepts. Derived deserialisation rejects unknown and
/// duplicate fields, a non-integer or negative nonce, and a non-object document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliveReply {
    status: String,
    nonce: u64,
}

/// Strips one Markdown code fence around the whole text, if there is one. The info string
/// must be empty or `json` (any case). Returns `None` for a malformed fence.
fn unfence(text: &str) -> Option<&str> {
    let Some(inner) = text.strip_prefix("```") else {
        return Some(text);
    };
    let inner = inner.strip_suffix("```")?;
    let (info, body) = match inner.split_once('\n') {
        Some((info, body)) => (info.trim(), body),
        // A one-line fence: ```{...}``` or ```json {...}```.
        None => match inner.get(..4) {
            Some(tag) if tag.eq_ignore_ascii_case("json") => ("json", &inner[4..]),
            _ => ("", inner),
        },
    };
    (info.is_empty() || info.eq_ignore_ascii_case("json")).then_some(body.trim())
}

fn judge_json(nonce: u64, answer: &str) -> Judgement {
    let Some(body) = unfence(answer) else {
        return Judgement::Wrong(format!(
            "expected a JSON object (a ```json fence is allowed), got a malformed code fence: {}",
            quote(answer)
        ));
    };
    match serde_json::from_str::<AliveReply>(body) {
        Ok(reply) if reply.status == "alive" && reply.nonce == nonce => Judgement::Correct,
        Ok(reply) if reply.status != "alive" => Judgement::Wrong(format!(
            "expected \"status\":\"alive\", got \"status\":{}",
            quote(&reply.status)
        )),
        Ok(reply) => Judgement::Wrong(format!(
            "expected \"nonce\":{nonce}, got \"nonce\":{}",
            reply.nonce
        )),
        Err(error) => Judgement::Wrong(format!(
            "expected exactly {{\"status\":\"alive\",\"nonce\":{nonce}}}, \
             got {} ({error})",
            quote(answer)
        )),
    }
}
