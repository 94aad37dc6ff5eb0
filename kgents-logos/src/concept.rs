//! The model-backed paths: `concept.define` (a term's definition), `concept.blend.forge`
//! (two concepts blended) and `concept.refine` (a text critiqued and improved).
//!
//! Each path has typed input, a JSON Schema for the model's answer ([`output_schema`]) and a
//! typed result ([`ConceptOutput`]). The answer is checked against the schema
//! ([`crate::schema`]); an invalid answer is asked for once more with the violation named,
//! then reported as [`Error::InvalidAnswer`]. Every call is bounded by a deadline and by the
//! caller's daily token budget ([`crate::budget`]): the Umwelt's `constraints.tokenBudget` for
//! a restricted caller, [`ConceptOptions::default_budget`] for an unrestricted one. The budget
//! is reserved before the model is asked (refused, with what was spent, when nothing is left)
//! and the tokens used and left are reported in the result.
//!
//! Prompts, parsing and checking are pure functions; the model is the one I/O edge, any
//! [`LlmClient`] given to [`Logos::with_model`](crate::Logos::with_model).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kgents_core::agentese::Path;
use kgents_core::clock::Clock;
use kgents_probes::{Completion, CompletionRequest, LlmClient, LlmError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::budget::{Allowance, Day, Ledger};
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::logos::Args;
use crate::schema;

/// The environment variables and flags that configure the model, for the "no model" error.
pub const NO_MODEL_HINT: &str = "set KGENTS_MODEL_PROVIDER (anthropic, openai, openrouter, \
    ollama or claude-cli), KGENTS_MODEL and the provider's API key (KGENTS_MODEL_API_KEY); a \
    daemon also takes `kgents cortex serve --model-provider P --model M`";

/// The longest term or concept accepted, in characters.
pub const MAX_TERM_CHARS: usize = 200;
/// The longest context, goal or text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 16 * 1024;

/// Which model path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConceptKind {
    /// `concept.define`.
    Define,
    /// `concept.blend.forge`.
    Blend,
    /// `concept.refine`.
    Refine,
}

impl ConceptKind {
    /// The path.
    pub fn path(self) -> &'static str {
        match self {
            ConceptKind::Define => "concept.define",
            ConceptKind::Blend => "concept.blend.forge",
            ConceptKind::Refine => "concept.refine",
        }
    }
}

/// Input of `concept.define`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefineConceptInput {
    /// The term to define (required).
    pub term: Option<String>,
    /// Where the term is used (optional: "in a Kubernetes operator", ...).
    pub context: Option<String>,
}

/// Input of `concept.blend.forge`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlendInput {
    /// The first concept (required).
    pub a: Option<String>,
    /// The second concept (required).
    pub b: Option<String>,
}

/// Input of `concept.refine`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefineInput {
    /// The text to critique and improve (required).
    pub text: Option<String>,
    /// What the text should achieve (optional).
    pub goal: Option<String>,
}

/// `concept.define`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The term defined.
    pub term: String,
    /// The definition.
    pub definition: String,
    /// Short examples of use.
    pub examples: Vec<String>,
    /// Related terms.
    pub related: Vec<String>,
}

/// `concept.blend.forge`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blend {
    /// A name for the blended concept.
    pub name: String,
    /// What the blend is.
    pub description: String,
    /// What it takes from the first concept.
    pub from_a: Vec<String>,
    /// What it takes from the second concept.
    pub from_b: Vec<String>,
    /// What neither had alone.
    pub emergent: Vec<String>,
}

/// `concept.refine`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refinement {
    /// What was wrong with the text.
    pub critique: Vec<String>,
    /// The improved text.
    pub refined: String,
    /// What was changed, and why.
    pub changes: Vec<String>,
}

/// A model path's typed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConceptOutput {
    /// `concept.define`.
    Definition(Definition),
    /// `concept.blend.forge`.
    Blend(Blend),
    /// `concept.refine`.
    Refinement(Refinement),
}

/// Tokens a model path used, and the caller's budget after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens, every attempt.
    pub input: u64,
    /// Generated tokens, every attempt.
    pub output: u64,
    /// `input + output`: what was charged to the budget.
    pub total: u64,
    /// Whether a count was estimated (the runtime reported none: about 4 characters a token).
    pub estimated: bool,
    /// The caller's daily budget (`None`: unlimited).
    pub budget: Option<u64>,
    /// What is left of it today (`None`: unlimited).
    pub left: Option<u64>,
}

/// The result of a model path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptAnswer {
    /// The path.
    pub path: String,
    /// The model that answered (as configured).
    pub model: String,
    /// How many times the model was asked (2: the first answer broke the schema).
    pub attempts: u32,
    /// The answer, checked against the path's schema.
    pub answer: ConceptOutput,
    /// The tokens used and the budget left.
    pub usage: TokenUsage,
}

/// How the model paths run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConceptOptions {
    /// The whole call's deadline, per attempt.
    pub deadline: Duration,
    /// The most tokens one answer may have (less when the budget has less left).
    pub max_tokens: u32,
    /// The daily budget of a caller whose Umwelt sets none, unrestricted callers included
    /// (`None`: unlimited).
    pub default_budget: Option<u64>,
}

impl Default for ConceptOptions {
    /// 60 s per attempt, 1,024 tokens an answer, no default budget.
    fn default() -> Self {
        ConceptOptions {
            deadline: Duration::from_secs(60),
            max_tokens: 1024,
            default_budget: None,
        }
    }
}

/// The model behind the paths, its options and every caller's spending.
pub struct ConceptModel {
    client: Arc<dyn LlmClient>,
    name: String,
    options: ConceptOptions,
    ledger: Mutex<Ledger>,
}

impl std::fmt::Debug for ConceptModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConceptModel")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ConceptModel {
    /// The paths answered by `client`, reported as `name`, run with `options`.
    pub fn new(
        client: Arc<dyn LlmClient>,
        name: impl Into<String>,
        options: ConceptOptions,
    ) -> ConceptModel {
        ConceptModel {
            client,
            name: name.into(),
            options,
            ledger: Mutex::new(Ledger::new()),
        }
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options.
    pub fn options(&self) -> &ConceptOptions {
        &self.options
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The budget that applies to `caller`.
    pub fn budget_of(&self, caller: &Caller) -> Option<u64> {
        caller.token_budget().or(self.options.default_budget)
    }

    /// What `caller` may still spend today (`None`: unlimited).
    pub fn left(&self, caller: &Caller, clock: &dyn Clock) -> Option<u64> {
        match self.ledger().allowance(
            &caller.budget_key(),
            self.budget_of(caller),
            Day::of(clock.now()),
        ) {
            Allowance::Unlimited => None,
            Allowance::Left(left) => Some(left),
        }
    }
}

/// The JSON Schema of a path's answer (the subset [`crate::schema`] checks).
pub fn output_schema(kind: ConceptKind) -> Value {
    let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max});
    let list = |max: usize| json!({"type": "array", "maxItems": max, "items": text(400)});
    match kind {
        ConceptKind::Define => json!({
            "type": "object",
            "required": ["term", "definition", "examples", "related"],
            "additionalProperties": false,
            "properties": {
                "term": text(MAX_TERM_CHARS),
                "definition": text(4000),
                "examples": list(10),
                "related": list(10)
            }
        }),
        ConceptKind::Blend => json!({
            "type": "object",
            "required": ["name", "description", "from_a", "from_b", "emergent"],
            "additionalProperties": false,
            "properties": {
                "name": text(MAX_TERM_CHARS),
                "description": text(4000),
                "from_a": list(10),
                "from_b": list(10),
                "emergent": list(10)
            }
        }),
        ConceptKind::Refine => json!({
            "type": "object",
            "required": ["critique", "refined", "changes"],
            "additionalProperties": false,
            "properties": {
                "critique": {"type": "array", "minItems": 1, "maxItems": 20, "items": text(1000)},
                "refined": text(MAX_TEXT_CHARS * 2),
                "changes": list(20)
            }
        }),
    }
}

fn required(path: &str, field: &str, value: Option<String>, max: usize) -> Result<String> {
    let value = value.map(|v| v.trim().to_owned()).unwrap_or_default();
    if value.is_empty() {
        return Err(Error::BadInput {
            path: path.to_owned(),
            reason: format!("bad input: {field:?} is required (a non-empty string)"),
        });
    }
    bounded(path, field, value, max)
}

fn bounded(path: &str, field: &str, value: String, max: usize) -> Result<String> {
    let length = value.chars().count();
    if length > max {
        return Err(Error::BadInput {
            path: path.to_owned(),
            reason: format!(
                "bad input: {field:?} has {length} characters; at most {max} are accepted"
            ),
        });
    }
    Ok(value)
}

fn optional(path: &str, field: &str, value: Option<String>, max: usize) -> Result<Option<String>> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .map(|v| bounded(path, field, v, max))
        .transpose()
}

/// The prompt for `kind` with `input` (the path's JSON input), checked: required fields
/// present, lengths within bounds. `max_tokens` is set later, from the budget.
///
/// # Errors
/// [`Error::BadInput`] naming the field.
pub fn prompt(kind: ConceptKind, input: &Value) -> Result<CompletionRequest> {
    let path = kind.path();
    let parse = |input: &Value| -> Result<Value> {
        Ok(if input.is_null() {
            json!({})
        } else {
            input.clone()
        })
    };
    let bad = |e: serde_json::Error| Error::BadInput {
        path: path.to_owned(),
        reason: format!("bad input: {e}"),
    };
    let user = match kind {
        ConceptKind::Define => {
            let input: DefineConceptInput = serde_json::from_value(parse(input)?).map_err(bad)?;
            let term = required(path, "term", input.term, MAX_TERM_CHARS)?;
            let context = optional(path, "context", input.context, MAX_TEXT_CHARS)?;
            let mut user = format!(
                "Define the term {term:?} for someone operating a Kubernetes cluster of AI agents."
            );
            if let Some(context) = context {
                user.push_str(&format!("\nContext: {context}"));
            }
            user.push_str(
                "\nGive a precise definition, up to 5 short examples of use and up to 5 related terms.",
            );
            user
        }
        ConceptKind::Blend => {
            let input: BlendInput = serde_json::from_value(parse(input)?).map_err(bad)?;
            let a = required(path, "a", input.a, MAX_TERM_CHARS)?;
            let b = required(path, "b", input.b, MAX_TERM_CHARS)?;
            format!(
                "Blend the concepts {a:?} (a) and {b:?} (b) into one new concept: name it, describe \
                 it, list what it takes from a (from_a) and from b (from_b), and what emerges that \
                 neither has alone (emergent)."
            )
        }
        ConceptKind::Refine => {
            let input: RefineInput = serde_json::from_value(parse(input)?).map_err(bad)?;
            let text = required(path, "text", input.text, MAX_TEXT_CHARS)?;
            let goal = optional(path, "goal", input.goal, MAX_TEXT_CHARS)?;
            let mut user = String::from(
                "Critique the text below (critique: at least one point), then rewrite it \
                 (refined) and list what you changed and why (changes).",
            );
            if let Some(goal) = goal {
                user.push_str(&format!("\nThe text should: {goal}"));
            }
            user.push_str(&format!("\n<text>\n{text}\n</text>"));
            user
        }
    };
    Ok(CompletionRequest {
        system: format!(
            "You answer for the K8-gents path {path}. Reply with exactly one JSON object and \
             nothing else (no prose, no code fences) that conforms to this JSON Schema:\n{}",
            output_schema(kind)
        ),
        user,
        temperature: 0.2,
        max_tokens: 0,
    })
}

/// The request asking again after `answer` broke the schema with `problem`.
pub fn retry_prompt(first: &CompletionRequest, answer: &str, problem: &str) -> CompletionRequest {
    let shown: String = answer.chars().take(2000).collect();
    CompletionRequest {
        user: format!(
            "{}\n\nYour previous answer was rejected: {problem}.\nIt was:\n{shown}\n\nAnswer \
             again with only the JSON object, conforming to the schema.",
            first.user
        ),
        ..first.clone()
    }
}

/// The model's text as the path's typed answer: the JSON object (code fences around it are
/// tolerated), checked against the schema.
///
/// # Errors
/// What is wrong with it: not JSON (with line and column), or the schema violation.
pub fn parse_answer(kind: ConceptKind, text: &str) -> std::result::Result<ConceptOutput, String> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    if unfenced.is_empty() {
        return Err("the answer was empty".into());
    }
    let value: Value =
        serde_json::from_str(unfenced).map_err(|e| format!("the answer is not JSON ({e})"))?;
    schema::validate(&output_schema(kind), &value)
        .map_err(|v| format!("the answer does not match the schema at {v}"))?;
    let typed = match kind {
        ConceptKind::Define => serde_json::from_value(value).map(ConceptOutput::Definition),
        ConceptKind::Blend => serde_json::from_value(value).map(ConceptOutput::Blend),
        ConceptKind::Refine => serde_json::from_value(value).map(ConceptOutput::Refinement),
    };
    typed.map_err(|e| format!("the answer does not match the schema: {e}"))
}

/// Tokens of a completion: `(input, output, estimated)`; about 4 characters a token when the
/// runtime reports no count.
pub fn tokens_of(request: &CompletionRequest, completion: &Completion) -> (u64, u64, bool) {
    let estimate = |text: usize| u64::try_from(text.div_ceil(4)).unwrap_or(u64::MAX);
    let input = completion
        .input_tokens
        .map(u64::from)
        .ok_or_else(|| estimate(request.system.len() + request.user.len()));
    let output = completion
        .output_tokens
        .map(u64::from)
        .ok_or_else(|| estimate(completion.text.len()));
    let estimated = input.is_err() || output.is_err();
    (
        input.unwrap_or_else(|e| e),
        output.unwrap_or_else(|e| e),
        estimated,
    )
}

/// Runs `kind` for `caller` with `args` on `model`.
pub(crate) async fn run(
    model: &ConceptModel,
    clock: &dyn Clock,
    caller: &Caller,
    path: &Path,
    kind: ConceptKind,
    args: &Args,
) -> Result<ConceptAnswer> {
    let first = prompt(kind, &args.input)?;
    let key = caller.budget_key();
    let budget = model.budget_of(caller);
    let mut usage = TokenUsage {
        input: 0,
        output: 0,
        total: 0,
        estimated: false,
        budget,
        left: budget,
    };
    let mut request = first.clone();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let day = Day::of(clock.now());
        let reservation = model
            .ledger()
            .reserve(&key, budget, day, u64::from(model.options.max_tokens))
            .map_err(|exhausted| Error::BudgetExhausted {
                caller: caller.identity().to_owned(),
                path: path.to_string(),
                limit: exhausted.limit,
                spent: exhausted.spent,
            })?;
        request.max_tokens = reservation
            .granted()
            .map_or(model.options.max_tokens, |granted| {
                u32::try_from(granted).unwrap_or(u32::MAX)
            });
        let answered =
            tokio::time::timeout(model.options.deadline, model.client.complete(&request))
                .await
                .unwrap_or(Err(LlmError::Timeout {
                    after: model.options.deadline,
                }));
        let completion = match answered {
            Ok(completion) => completion,
            Err(source) => {
                // Nothing is known to have been generated: the reservation is released.
                model.ledger().settle(reservation, 0);
                return Err(Error::Model {
                    path: path.to_string(),
                    source,
                });
            }
        };
        let (input, output, estimated) = tokens_of(&request, &completion);
        usage.input = usage.input.saturating_add(input);
        usage.output = usage.output.saturating_add(output);
        usage.total = usage.input.saturating_add(usage.output);
        usage.estimated |= estimated;
        let left = model
            .ledger()
            .settle(reservation, input.saturating_add(output));
        usage.left = match left {
            Allowance::Unlimited => None,
            Allowance::Left(left) => Some(left),
        };
        match parse_answer(kind, &completion.text) {
            Ok(answer) => {
                return Ok(ConceptAnswer {
                    path: path.to_string(),
                    model: model.name.clone(),
                    attempts,
                    answer,
                    usage,
                });
            }
            Err(problem) if attempts == 1 => {
                tracing::debug!(%path, %problem, "the model's answer broke the schema; asking again");
                request = retry_prompt(&first, &completion.text, &problem);
            }
            Err(problem) => {
                return Err(Error::InvalidAnswer {
                    path: path.to_string(),
                    attempts,
                    reason: problem,
                    usage: Box::new(usage),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_schema_is_in_the_checked_subset() {
        for kind in [ConceptKind::Define, ConceptKind::Blend, ConceptKind::Refine] {
            assert_eq!(schema::supported(&output_schema(kind)), Ok(()), "{kind:?}");
        }
    }

    #[test]
    fn prompts_carry_the_schema_and_refuse_missing_or_oversized_fields() {
        let request = prompt(ConceptKind::Define, &json!({"term": "umwelt"})).unwrap();
        assert!(
            request.system.contains("\"definition\""),
            "{}",
            request.system
        );
        assert!(request.user.contains("\"umwelt\""));
        let missing = prompt(ConceptKind::Blend, &json!({"a": "ant"})).unwrap_err();
        assert!(
            missing.to_string().contains("\"b\" is required"),
            "{missing}"
        );
        let long = prompt(ConceptKind::Define, &json!({"term": "x".repeat(201)})).unwrap_err();
        assert!(long.to_string().contains("at most 200"), "{long}");
        let unknown = prompt(ConceptKind::Refine, &json!({"txt": "hello"})).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `txt`"),
            "{unknown}"
        );
        assert!(prompt(ConceptKind::Refine, &Value::Null).is_err());
    }

    #[test]
    fn answers_are_parsed_through_fences_and_violations_are_named() {
        let good = r#"```json
{"term": "pod", "definition": "the smallest unit", "examples": ["a pod"], "related": []}
```"#;
        assert!(matches!(
            parse_answer(ConceptKind::Define, good),
            Ok(ConceptOutput::Definition(Definition { term, .. })) if term == "pod"
        ));
        let broken = parse_answer(ConceptKind::Define, "{\"term\": ").unwrap_err();
        assert!(broken.contains("not JSON"), "{broken}");
        let wrong = parse_answer(
            ConceptKind::Refine,
            r#"{"critique": [], "refined": "x", "changes": []}"#,
        )
        .unwrap_err();
        assert!(
            wrong.contains("$.critique: expected at least 1 items"),
            "{wrong}"
        );
        assert_eq!(
            parse_answer(ConceptKind::Blend, "  ").unwrap_err(),
            "the answer was empty"
        );
    }

    #[test]
    fn token_counts_are_estimated_only_when_missing() {
        let request = CompletionRequest {
            system: "s".repeat(40),
            user: "u".repeat(40),
            temperature: 0.0,
            max_tokens: 10,
        };
        let completion = |input, output| Completion {
            text: "t".repeat(8),
            input_tokens: input,
            output_tokens: output,
            latency: Duration::ZERO,
        };
        assert_eq!(
            tokens_of(&request, &completion(Some(7), Some(3))),
            (7, 3, false)
        );
        assert_eq!(
            tokens_of(&request, &completion(None, Some(3))),
            (20, 3, true)
        );
        assert_eq!(
            tokens_of(&request, &completion(Some(7), None)),
            (7, 2, true)
        );
    }
}
