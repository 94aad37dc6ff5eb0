//! [`ProposalInput`]: what the risk calculus needs to know about one proposal.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::change_type::ChangeType;
use crate::magnitude::Magnitude;

/// Who filed a proposal: an agent (a Kubernetes ServiceAccount) or a person. HIGH risk filed by
/// an agent is blocked; filed by a person it needs a human approval.
///
/// Serialised as `AGENT` or `PERSON`, as in a Proposal's `status.proposerKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    // The line breaks are those of the custom resource's schema (deploy/crds/).
    schemars(
        description = "Who filed a proposal, established from the requester's authenticated username: AGENT (a\nServiceAccount, `system:serviceaccount:<namespace>:<name>`) or PERSON (any other user).\nHIGH risk is denied for an AGENT and needs a human approval for a PERSON."
    )
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProposerKind {
    /// An agent, authenticated as a ServiceAccount.
    Agent,
    /// A person (any other authenticated user).
    Person,
}

impl ProposerKind {
    /// Classifies a Kubernetes username (`userInfo.username` of an admission request):
    /// `system:serviceaccount:<namespace>:<name>` is an [`Agent`](Self::Agent), anything else a
    /// [`Person`](Self::Person).
    pub fn from_username(username: &str) -> Self {
        if username.starts_with("system:serviceaccount:") {
            ProposerKind::Agent
        } else {
            ProposerKind::Person
        }
    }
}

/// `spec.reviewRequirements` of a Proposal, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReviewRequirements {
    /// Whether a LOW-risk proposal may be approved without review (CRD default: true).
    pub auto_merge: bool,
    /// Approvals needed before the proposal may be approved (CRD default: 0).
    pub required_approvers: u32,
}

impl Default for ReviewRequirements {
    fn default() -> Self {
        ReviewRequirements {
            auto_merge: true,
            required_approvers: 0,
        }
    }
}

/// One proposal to assess. The CRD adapter builds it from a Proposal custom resource (or from an
/// admission request, where `uid` and `created_at` may not exist yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalInput {
    /// `metadata.name`; identifies the proposal inside its namespace.
    pub name: String,
    /// `metadata.uid`, when the API server has assigned one.
    pub uid: Option<String>,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Who filed it (a ServiceAccount username or a person's name).
    pub proposer: String,
    /// Whether the proposer is an agent or a person.
    pub proposer_kind: ProposerKind,
    /// What it changes.
    pub change_type: ChangeType,
    /// How big the change is.
    #[serde(default)]
    pub magnitude: Magnitude,
    /// Review requirements.
    #[serde(default)]
    pub review: ReviewRequirements,
    /// `metadata.creationTimestamp`, when it exists. Other proposals created after this instant
    /// are later filings and do not count towards this proposal's velocity (they carry this
    /// one's contribution instead), so an assessment does not change when later proposals arrive.
    pub created_at: Option<Timestamp>,
}

impl ProposalInput {
    /// A proposal with no magnitude, default review requirements, no uid and no creation time.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        proposer: impl Into<String>,
        proposer_kind: ProposerKind,
        change_type: ChangeType,
    ) -> Self {
        ProposalInput {
            name: name.into(),
            uid: None,
            namespace: namespace.into(),
            proposer: proposer.into(),
            proposer_kind,
            change_type,
            magnitude: Magnitude::default(),
            review: ReviewRequirements::default(),
            created_at: None,
        }
    }

    /// This proposal with `magnitude`.
    pub fn with_magnitude(mut self, magnitude: Magnitude) -> Self {
        self.magnitude = magnitude;
        self
    }

    /// This proposal with `review` requirements.
    pub fn with_review(mut self, review: ReviewRequirements) -> Self {
        self.review = review;
        self
    }

    /// This proposal with a `uid`.
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// This proposal with a creation time.
    pub fn with_created_at(mut self, created_at: Timestamp) -> Self {
        self.created_at = Some(created_at);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_are_agents_everyone_else_is_a_person() {
        assert_eq!(
            ProposerKind::from_username("system:serviceaccount:kgents:b-gent"),
            ProposerKind::Agent
        );
        assert_eq!(
            ProposerKind::from_username("alice@example.com"),
            ProposerKind::Person
        );
        assert_eq!(
            ProposerKind::from_username("system:admin"),
            ProposerKind::Person
        );
        assert_eq!(ProposerKind::from_username(""), ProposerKind::Person);
    }

    #[test]
    fn proposer_kind_serialises_as_in_the_proposal_status() {
        let json = serde_json::to_string(&[ProposerKind::Agent, ProposerKind::Person]).unwrap();
        assert_eq!(json, r#"["AGENT","PERSON"]"#);
        let back: Vec<ProposerKind> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [ProposerKind::Agent, ProposerKind::Person]);
        assert!(serde_json::from_str::<ProposerKind>(r#""Agent""#).is_err());
    }

    #[test]
    fn review_requirements_default_like_the_crd() {
        let review: ReviewRequirements = serde_json::from_str("{}").expect("empty object");
        assert_eq!(
            review,
            ReviewRequirements {
                auto_merge: true,
                required_approvers: 0
            }
        );
    }
}
