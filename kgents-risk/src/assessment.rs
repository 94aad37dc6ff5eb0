//! The outcome of an assessment: [`RiskLevel`], [`Decision`] and [`RiskAssessment`] with its
//! factor breakdown and human explanation.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::change_type::ChangeType;
use crate::policy::LevelThresholds;
use crate::proposal::{ProposerKind, ReviewRequirements};

/// Risk level of a score. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(description = "Risk level of a proposal.")
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    /// score ≤ `low_max` (0.2).
    Low,
    /// `low_max` < score ≤ `medium_max` (0.5).
    Medium,
    /// `medium_max` < score ≤ `high_max` (0.8).
    High,
    /// score > `high_max`, or not a number.
    Critical,
}

impl RiskLevel {
    /// The level of `score`. Boundaries are inclusive upwards (0.2 is LOW, the next `f64` above
    /// it MEDIUM). NaN is CRITICAL: an unknown risk fails closed.
    pub fn classify(score: f64, thresholds: &LevelThresholds) -> Self {
        if score <= thresholds.low_max {
            RiskLevel::Low
        } else if score <= thresholds.medium_max {
            RiskLevel::Medium
        } else if score <= thresholds.high_max {
            RiskLevel::High
        } else {
            RiskLevel::Critical
        }
    }

    /// The wire spelling, e.g. `"HIGH"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "LOW",
            RiskLevel::Medium => "MEDIUM",
            RiskLevel::High => "HIGH",
            RiskLevel::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a proposal (DESIGN §2, "Proposal lifecycle"):
///
/// | level    | proposer | review requirements                 | decision       |
/// |----------|----------|-------------------------------------|----------------|
/// | CRITICAL | any      | any                                 | `Block`        |
/// | HIGH     | agent    | any                                 | `Block`        |
/// | HIGH     | person   | any                                 | `RequireHuman` |
/// | MEDIUM   | any      | any                                 | `Review`       |
/// | LOW      | any      | autoMerge and 0 required approvers  | `AutoApprove`  |
/// | LOW      | any      | otherwise                           | `Review`       |
///
/// LOW with required approvers is `Review`, not `RequireHuman`: the review path already waits for
/// `requiredApprovers` approvals, and `RequireHuman` is kept for escalation by risk (HIGH), where
/// an LLM review can never suffice.
///
/// Serialised in SCREAMING_SNAKE_CASE (`REQUIRE_HUMAN`), as in a Proposal's
/// `status.riskAssessment.decision`; [`Decision::as_str`] and `Display` give the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(
        description = "What a risk assessment decided (the decision table of `kgents_risk::Decision`)."
    )
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// Approved without review.
    AutoApprove,
    /// Reviewed (LLM reviewer and/or human approvals) before approval.
    Review,
    /// Admitted, but only a human approval can approve it.
    RequireHuman,
    /// Denied at admission.
    Block,
}

impl Decision {
    /// The decision table above.
    pub fn decide(level: RiskLevel, proposer: ProposerKind, review: &ReviewRequirements) -> Self {
        match (level, proposer) {
            (RiskLevel::Critical, _) => Decision::Block,
            (RiskLevel::High, ProposerKind::Agent) => Decision::Block,
            (RiskLevel::High, ProposerKind::Person) => Decision::RequireHuman,
            (RiskLevel::Medium, _) => Decision::Review,
            (RiskLevel::Low, _) if review.auto_merge && review.required_approvers == 0 => {
                Decision::AutoApprove
            }
            (RiskLevel::Low, _) => Decision::Review,
        }
    }

    /// Whether the admission webhook lets the proposal in (everything but `Block`).
    pub const fn admits(self) -> bool {
        !matches!(self, Decision::Block)
    }

    /// The name, e.g. `"RequireHuman"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::AutoApprove => "AutoApprove",
            Decision::Review => "Review",
            Decision::RequireHuman => "RequireHuman",
            Decision::Block => "Block",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One assessment with every factor, so a human can see why
/// (score = clamp(base × size × tests × (1 + velocity) + cumulative, 0, 1)).
/// `Display` prints [`RiskAssessment::explain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RiskAssessment {
    /// The proposal's change type.
    pub change_type: ChangeType,
    /// Base risk of the change type.
    pub base: f64,
    /// Size factor (≥ 1).
    pub size_factor: f64,
    /// Test factor (floor ≤ factor ≤ cap).
    pub test_factor: f64,
    /// Velocity penalty (0 ≤ velocity ≤ cap).
    pub velocity: f64,
    /// Cumulative penalty (0 ≤ cumulative ≤ cap).
    pub cumulative: f64,
    /// Final score in [0, 1], rounded to nine decimals.
    pub score: f64,
    /// Level of the score.
    pub level: RiskLevel,
    /// What happens to the proposal.
    pub decision: Decision,
    /// Who filed it.
    pub proposer_kind: ProposerKind,
    /// Its review requirements.
    pub review: ReviewRequirements,
    /// Other proposals inside the velocity window that counted.
    pub recent_proposals: u64,
    /// Changes applied inside the cumulative window.
    pub applied_changes: u64,
    /// The `now` the assessment was made at.
    pub assessed_at: Timestamp,
}

impl RiskAssessment {
    /// A one-line explanation listing every factor, e.g.
    ///
    /// ```text
    /// risk 0.91 CRITICAL: AGENT_DELETE base 0.70 × size 1.00 × tests 1.00 × (1 + velocity 0.30) + cumulative 0.00 (3 other proposal(s) in the velocity window, 0 change(s) applied in the cumulative window) → Block: CRITICAL risk is never admitted
    /// ```
    pub fn explain(&self) -> String {
        self.to_string()
    }

    /// Why the decision follows from the level, proposer and review requirements.
    pub fn decision_reason(&self) -> String {
        match (self.decision, self.level) {
            (Decision::Block, RiskLevel::Critical) => "CRITICAL risk is never admitted".into(),
            (Decision::Block, _) => {
                format!("{} risk filed by an agent is not admitted", self.level)
            }
            (Decision::RequireHuman, _) => {
                format!(
                    "{} risk filed by a person needs a human approval",
                    self.level
                )
            }
            (Decision::AutoApprove, _) => format!(
                "{} risk with autoMerge and no required approvers is approved without review",
                self.level
            ),
            (Decision::Review, RiskLevel::Low) if !self.review.auto_merge => {
                "LOW risk, but autoMerge is off, so it is reviewed".into()
            }
            (Decision::Review, RiskLevel::Low) => format!(
                "LOW risk, reviewed because it requires {} approval(s)",
                self.review.required_approvers
            ),
            (Decision::Review, level) => format!("{level} risk is reviewed"),
        }
    }
}

impl fmt::Display for RiskAssessment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "risk {:.2} {}: {} base {:.2} × size {:.2} × tests {:.2} × (1 + velocity {:.2}) + cumulative {:.2} \
             ({} other proposal(s) in the velocity window, {} change(s) applied in the cumulative window) \
             → {}: {}",
            self.score,
            self.level,
            self.change_type,
            self.base,
            self.size_factor,
            self.test_factor,
            self.velocity,
            self.cumulative,
            self.recent_proposals,
            self.applied_changes,
            self.decision,
            self.decision_reason(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_is_inclusive_upwards_at_every_boundary() {
        let t = LevelThresholds::default();
        assert_eq!(RiskLevel::classify(0.0, &t), RiskLevel::Low);
        assert_eq!(RiskLevel::classify(0.2, &t), RiskLevel::Low);
        assert_eq!(RiskLevel::classify(0.2f64.next_up(), &t), RiskLevel::Medium);
        assert_eq!(RiskLevel::classify(0.5, &t), RiskLevel::Medium);
        assert_eq!(RiskLevel::classify(0.5f64.next_up(), &t), RiskLevel::High);
        assert_eq!(RiskLevel::classify(0.8, &t), RiskLevel::High);
        assert_eq!(
            RiskLevel::classify(0.8f64.next_up(), &t),
            RiskLevel::Critical
        );
        assert_eq!(RiskLevel::classify(1.0, &t), RiskLevel::Critical);
        assert_eq!(RiskLevel::classify(f64::NAN, &t), RiskLevel::Critical);
    }

    #[test]
    fn decision_table() {
        use Decision::*;
        use ProposerKind::*;
        use RiskLevel::*;
        let auto = ReviewRequirements {
            auto_merge: true,
            required_approvers: 0,
        };
        let manual = ReviewRequirements {
            auto_merge: false,
            required_approvers: 0,
        };
        let approvers = ReviewRequirements {
            auto_merge: true,
            required_approvers: 2,
        };
        let table = [
            (Critical, Agent, auto, Block),
            (Critical, Person, auto, Block),
            (Critical, Person, approvers, Block),
            (High, Agent, auto, Block),
            (High, Agent, approvers, Block),
            (High, Person, auto, RequireHuman),
            (High, Person, manual, RequireHuman),
            (Medium, Agent, auto, Review),
            (Medium, Person, auto, Review),
            (Medium, Person, approvers, Review),
            (Low, Agent, auto, AutoApprove),
            (Low, Person, auto, AutoApprove),
            (Low, Agent, manual, Review),
            (Low, Person, approvers, Review),
        ];
        for (level, proposer, review, expected) in table {
            assert_eq!(
                Decision::decide(level, proposer, &review),
                expected,
                "{level} {proposer:?} {review:?}"
            );
        }
        assert!(!Block.admits());
        assert!(RequireHuman.admits() && Review.admits() && AutoApprove.admits());
    }

    #[test]
    fn levels_and_decisions_serialise_as_their_names() {
        assert_eq!(
            serde_json::to_string(&RiskLevel::Critical).unwrap(),
            "\"CRITICAL\""
        );
        assert_eq!(
            serde_json::to_string(&Decision::RequireHuman).unwrap(),
            "\"REQUIRE_HUMAN\""
        );
        assert_eq!(Decision::AutoApprove.to_string(), "AutoApprove");
    }
}
