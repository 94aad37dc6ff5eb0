//! The probe vocabulary of an Agent resource: which probes `spec.health.probes` may request
//! ([`ModelProbeKind`]) and what `status.lastProbe.outcome` records ([`RecordedOutcome`]).
//!
//! Both are narrower than the probe machinery's own types, on purpose:
//!
//! - [`ProbeKind`] also has `Path`, which needs an AGENTESE resolver besides the model; an Agent
//!   can only ask for the probes that need nothing but its model.
//! - [`Verdict`] has four values; the status records three (DESIGN §2: Healthy, Degraded —
//!   correct but slow, *or partly wrong* — and Unresponsive). A wrong answer is recorded as
//!   Degraded; the full verdict stays in the probe's message and events.
//!
//! `kgents-crds` uses these enums in its schema (feature `schemars`) under the names it has
//! always used (`ProbeKind`, `ProbeOutcome` in `kgents_crds::agent`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::challenge::ProbeKind;
use crate::client::LlmClient;
use crate::outcome::Verdict;
use crate::probe::{EchoProbe, JsonProbe, Probe, ReasoningProbe};

/// A probe that needs nothing but a model: the kinds an Agent may list in
/// `spec.health.probes` and that its `status.lastProbe.kind` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(description = "A cognitive probe.")
)]
pub enum ModelProbeKind {
    /// Echo a random nonce exactly.
    Echo,
    /// Compute a random arithmetic problem.
    Reasoning,
    /// Return a small JSON object with given fields.
    Json,
}

impl ModelProbeKind {
    /// Every model probe, in schema order (the default of `spec.health.probes`).
    pub const ALL: [ModelProbeKind; 3] = [
        ModelProbeKind::Echo,
        ModelProbeKind::Reasoning,
        ModelProbeKind::Json,
    ];

    /// The general probe kind.
    pub const fn kind(self) -> ProbeKind {
        match self {
            ModelProbeKind::Echo => ProbeKind::Echo,
            ModelProbeKind::Reasoning => ProbeKind::Reasoning,
            ModelProbeKind::Json => ProbeKind::Json,
        }
    }

    /// The lower-case name used in messages and metrics (`echo`, `reasoning`, `json`).
    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    /// This probe over `client`, with the default completion settings.
    pub fn probe(self, client: Arc<dyn LlmClient>) -> Box<dyn Probe> {
        match self {
            ModelProbeKind::Echo => Box::new(EchoProbe::new(client)),
            ModelProbeKind::Reasoning => Box::new(ReasoningProbe::new(client)),
            ModelProbeKind::Json => Box::new(JsonProbe::new(client)),
        }
    }
}

impl fmt::Display for ModelProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ModelProbeKind> for ProbeKind {
    fn from(kind: ModelProbeKind) -> ProbeKind {
        kind.kind()
    }
}

impl TryFrom<ProbeKind> for ModelProbeKind {
    /// The kind itself: only `Path` is refused (it needs a resolver, not just a model).
    type Error = ProbeKind;

    fn try_from(kind: ProbeKind) -> Result<ModelProbeKind, ProbeKind> {
        match kind {
            ProbeKind::Echo => Ok(ModelProbeKind::Echo),
            ProbeKind::Reasoning => Ok(ModelProbeKind::Reasoning),
            ProbeKind::Json => Ok(ModelProbeKind::Json),
            ProbeKind::Path => Err(kind),
        }
    }
}

/// A probe's outcome as an Agent's `status.lastProbe.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(description = "Outcome of one probe.")
)]
pub enum RecordedOutcome {
    /// Correct and in time.
    Healthy,
    /// Correct but slow, or wrong ([`Verdict::Degraded`] and [`Verdict::Unhealthy`]).
    Degraded,
    /// Timed out or could not connect.
    Unresponsive,
}

impl RecordedOutcome {
    /// The name as written to status (`Healthy`, `Degraded`, `Unresponsive`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordedOutcome::Healthy => "Healthy",
            RecordedOutcome::Degraded => "Degraded",
            RecordedOutcome::Unresponsive => "Unresponsive",
        }
    }
}

impl fmt::Display for RecordedOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Verdict> for RecordedOutcome {
    /// Healthy → Healthy; Degraded and Unhealthy (a wrong answer) → Degraded; Unresponsive →
    /// Unresponsive.
    fn from(verdict: Verdict) -> RecordedOutcome {
        match verdict {
            Verdict::Healthy => RecordedOutcome::Healthy,
            Verdict::Degraded | Verdict::Unhealthy => RecordedOutcome::Degraded,
            Verdict::Unresponsive => RecordedOutcome::Unresponsive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_probes_are_every_kind_but_path() {
        for kind in ModelProbeKind::ALL {
            assert_eq!(ModelProbeKind::try_from(kind.kind()), Ok(kind));
            assert_eq!(kind.to_string(), ProbeKind::from(kind).to_string());
        }
        assert_eq!(
            ModelProbeKind::try_from(ProbeKind::Path),
            Err(ProbeKind::Path)
        );
    }

    #[test]
    fn model_probes_serialise_as_in_the_agent_spec() {
        let json = serde_json::to_string(&ModelProbeKind::ALL).unwrap();
        assert_eq!(json, r#"["Echo","Reasoning","Json"]"#);
        assert!(serde_json::from_str::<ModelProbeKind>(r#""Path""#).is_err());
    }

    #[test]
    fn a_wrong_answer_is_recorded_as_degraded() {
        let recorded = [
            Verdict::Healthy,
            Verdict::Degraded,
            Verdict::Unhealthy,
            Verdict::Unresponsive,
        ]
        .map(RecordedOutcome::from);
        assert_eq!(
            recorded,
            [
                RecordedOutcome::Healthy,
                RecordedOutcome::Degraded,
                RecordedOutcome::Degraded,
                RecordedOutcome::Unresponsive,
            ]
        );
        let json = serde_json::to_string(&recorded).unwrap();
        assert_eq!(json, r#"["Healthy","Degraded","Degraded","Unresponsive"]"#);
    }

    #[test]
    fn each_model_probe_builds_the_probe_of_its_kind() {
        struct NoModel;
        #[async_trait::async_trait]
        impl LlmClient for NoModel {
            async fn complete(
                &self,
                _: &crate::client::CompletionRequest,
            ) -> Result<crate::client::Completion, crate::client::LlmError> {
                Err(crate::client::LlmError::Transport {
                    message: "no model".into(),
                })
            }
        }
        let client: Arc<dyn LlmClient> = Arc::new(NoModel);
        for kind in ModelProbeKind::ALL {
            assert_eq!(kind.probe(client.clone()).kind(), kind.kind());
        }
    }
}
