//! Review of a proposal: the [`Reviewer`] trait and the [`LlmReviewer`], which asks a model
//! behind `kgents_probes::LlmClient` and reads its answer strictly with
//! [`kgents_policy::review::parse_answer`] (re-exported here).
//!
//! The answer's first non-empty line must be exactly `ALLOW`, `DENY` or `ESCALATE` (case and
//! surrounding whitespace aside); the rest is the report. Anything else — another word, a
//! sentence that merely contains "ALLOW", an empty answer, an error, a timeout — is ESCALATE:
//! humans decide. (The original passed "UNHEALTHY" as healthy by substring matching.)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kgents_policy::review::truncate_report;
use kgents_probes::{CompletionRequest, LlmClient};

pub use kgents_policy::review::{ReviewReport, ReviewVerdict, parse_answer};

/// What a reviewer is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRequest {
    /// `namespace/name` of the proposal.
    pub proposal: String,
    /// The proposal's spec as JSON.
    pub spec: serde_json::Value,
    /// The parsed patch document, if any.
    pub patch: Option<serde_json::Value>,
    /// The target as it is now (without managed fields), if it exists and could be read.
    pub target: Option<serde_json::Value>,
    /// The risk assessment in one line.
    pub risk: String,
}

/// Something that reviews proposals. Object safe (`Arc<dyn Reviewer>`).
#[async_trait]
pub trait Reviewer: Send + Sync {
    /// Who reviews, as recorded in `status.review.reviewer`.
    fn name(&self) -> String;
    /// Reviews one proposal; never fails (a failure is an ESCALATE with the reason).
    async fn review(&self, request: &ReviewRequest) -> ReviewReport;
}

/// The instructions the model gets.
pub const SYSTEM_PROMPT: &str = "You are the T-gent, the reviewer of changes that agents propose to a Kubernetes cluster. \
You are shown a proposal (its spec), its patch, the target object as it is now, and its risk assessment. \
Decide whether the change is safe and consistent with its description and rationale. \
Answer with exactly one word on the first line: ALLOW (apply it), DENY (never apply it) or ESCALATE (a human must decide). \
On the following lines, explain your verdict in at most five sentences.";

/// A reviewer backed by a language model.
pub struct LlmReviewer {
    client: Arc<dyn LlmClient>,
    name: String,
    timeout: Duration,
}

impl std::fmt::Debug for LlmReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmReviewer")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LlmReviewer {
    /// A reviewer named `name` (e.g. `t-gent/claude-sonnet`) asking `client`, giving up (and
    /// escalating) after `timeout`.
    pub fn new(client: Arc<dyn LlmClient>, name: impl Into<String>, timeout: Duration) -> Self {
        Self {
            client,
            name: name.into(),
            timeout,
        }
    }

    /// The user message for `request`.
    pub fn prompt(request: &ReviewRequest) -> String {
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
        format!(
            "Proposal {}\n\nSpec:\n{}\n\nPatch:\n{}\n\nTarget now:\n{}\n\nRisk: {}\n",
            request.proposal,
            pretty(&request.spec),
            request
                .patch
                .as_ref()
                .map(pretty)
                .unwrap_or_else(|| "(none)".to_owned()),
            request
                .target
                .as_ref()
                .map(pretty)
                .unwrap_or_else(|| "(does not exist or could not be read)".to_owned()),
            request.risk,
        )
    }
}

#[async_trait]
impl Reviewer for LlmReviewer {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn review(&self, request: &ReviewRequest) -> ReviewReport {
        let completion = CompletionRequest {
            system: SYSTEM_PROMPT.to_owned(),
            user: Self::prompt(request),
            temperature: 0.0,
            max_tokens: 400,
        };
        match tokio::time::timeout(self.timeout, self.client.complete(&completion)).await {
            Ok(Ok(answer)) => parse_answer(&answer.text),
            Ok(Err(e)) => ReviewReport {
                verdict: ReviewVerdict::Escalate,
                report: truncate_report(format!(
                    "the reviewer model could not be asked ({e}); humans decide"
                )),
            },
            Err(_) => ReviewReport {
                verdict: ReviewVerdict::Escalate,
                report: format!(
                    "the reviewer model did not answer within {:?}; humans decide",
                    self.timeout
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgents_probes::{Completion, LlmError};

    struct Fixed(Result<&'static str, LlmError>, Duration);

    #[async_trait]
    impl LlmClient for Fixed {
        async fn complete(&self, _: &CompletionRequest) -> Result<Completion, LlmError> {
            tokio::time::sleep(self.1).await;
            self.0.clone().map(|text| Completion {
                text: text.to_owned(),
                input_tokens: None,
                output_tokens: None,
                latency: self.1,
            })
        }
    }

    fn request() -> ReviewRequest {
        ReviewRequest {
            proposal: "ns/p".into(),
            spec: serde_json::json!({"changeType": "AGENT_SCALE"}),
            patch: Some(serde_json::json!({"spec": {"replicas": 2}})),
            target: None,
            risk: "risk 0.30 MEDIUM".into(),
        }
    }

    #[tokio::test]
    async fn model_errors_and_timeouts_escalate() {
        let ok = LlmReviewer::new(
            Arc::new(Fixed(Ok("ALLOW\nfine"), Duration::ZERO)),
            "t",
            Duration::from_secs(1),
        );
        assert_eq!(ok.review(&request()).await.verdict, ReviewVerdict::Allow);
        let failing = LlmReviewer::new(
            Arc::new(Fixed(
                Err(LlmError::Transport {
                    message: "refused".into(),
                }),
                Duration::ZERO,
            )),
            "t",
            Duration::from_secs(1),
        );
        let report = failing.review(&request()).await;
        assert_eq!(report.verdict, ReviewVerdict::Escalate);
        assert!(report.report.contains("refused"));
        let slow = LlmReviewer::new(
            Arc::new(Fixed(Ok("ALLOW"), Duration::from_millis(200))),
            "t",
            Duration::from_millis(20),
        );
        assert_eq!(
            slow.review(&request()).await.verdict,
            ReviewVerdict::Escalate
        );
    }

    #[test]
    fn the_prompt_shows_spec_patch_target_and_risk() {
        let prompt = LlmReviewer::prompt(&request());
        assert!(
            prompt.contains("AGENT_SCALE")
                && prompt.contains("replicas")
                && prompt.contains("MEDIUM")
        );
        assert!(prompt.contains("does not exist"));
    }
}
