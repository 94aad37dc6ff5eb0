//! Conversions between the resources and the pure types of `kgents-core` and `kgents-risk`.
//!
//! The vocabulary enums (genus, pheromone type, change type, risk level and decision, proposer
//! kind, cognitive health, probe kind and outcome) need no conversion: the resources use the pure
//! crates' own enums (see [`crate::common`], [`crate::proposal`], [`crate::agent`]).
//!
//! - A [`Pheromone`] resource is a [`Signal`] through the checked view [`PheromoneSignal`]:
//!   `emittedAt` defaults to `metadata.creationTimestamp`, and a resource with neither is an
//!   [`Error::MissingEmissionTime`] (the original let such pheromones never decay).
//! - A [`Proposal`] becomes a [`kgents_risk::ProposalInput`] with [`Proposal::risk_input`], and a
//!   [`kgents_risk::RiskAssessment`] becomes the status' [`RiskAssessment`].

use std::time::Duration;

use jiff::Timestamp;
use kgents_core::decay::{HalfLife, Intensity};
use kgents_core::field::Signal;

use crate::common::Time;
use crate::error::{Error, Result};
use crate::pheromone::Pheromone;
use crate::proposal::{Magnitude, Proposal, ReviewRequirements, RiskAssessment};

/// A factor as stored in status: rounded to nine decimals like the score. A number with at
/// most fifteen significant digits reads back from JSON as exactly the same `f64`; a full
/// 17-digit factor may come back one unit in the last place off, so the status read back
/// would differ from the status written.
fn stored(factor: f64) -> f64 {
    let scale = kgents_risk::factors::SCORE_DECIMAL_SCALE;
    let rounded = (factor * scale).round() / scale;
    if rounded.is_finite() { rounded } else { factor }
}

impl From<&kgents_risk::RiskAssessment> for RiskAssessment {
    /// The status form: every factor rounded to nine decimals (see `stored`), so that it
    /// reads back from the API server unchanged.
    fn from(assessment: &kgents_risk::RiskAssessment) -> Self {
        RiskAssessment {
            base_risk: stored(assessment.base),
            size_factor: stored(assessment.size_factor),
            test_factor: stored(assessment.test_factor),
            velocity_penalty: stored(assessment.velocity),
            cumulative_penalty: stored(assessment.cumulative),
            score: assessment.score,
            level: assessment.level,
            decision: assessment.decision,
            recent_proposals: i64::try_from(assessment.recent_proposals).unwrap_or(i64::MAX),
            applied_changes: i64::try_from(assessment.applied_changes).unwrap_or(i64::MAX),
            explanation: Some(assessment.explain()),
            calculated_at: Time(assessment.assessed_at),
        }
    }
}

fn non_negative(field: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::OutOfRange {
        field,
        value: value.to_string(),
        expected: "must not be negative",
    })
}

impl TryFrom<&Magnitude> for kgents_risk::Magnitude {
    type Error = Error;

    fn try_from(m: &Magnitude) -> Result<Self> {
        Ok(kgents_risk::Magnitude {
            lines_added: non_negative("spec.magnitude.linesAdded", m.lines_added)?,
            lines_removed: non_negative("spec.magnitude.linesRemoved", m.lines_removed)?,
            files_changed: non_negative("spec.magnitude.filesChanged", m.files_changed)?,
            tests_added: non_negative("spec.magnitude.testsAdded", m.tests_added)?,
            tests_removed: non_negative("spec.magnitude.testsRemoved", m.tests_removed)?,
        })
    }
}

impl TryFrom<&ReviewRequirements> for kgents_risk::ReviewRequirements {
    type Error = Error;

    fn try_from(r: &ReviewRequirements) -> Result<Self> {
        if !(0..=10).contains(&r.required_approvers) {
            return Err(Error::OutOfRange {
                field: "spec.reviewRequirements.requiredApprovers",
                value: r.required_approvers.to_string(),
                expected: "must be between 0 and 10",
            });
        }
        Ok(kgents_risk::ReviewRequirements {
            auto_merge: r.auto_merge,
            required_approvers: r.required_approvers.unsigned_abs(),
        })
    }
}

impl Proposal {
    /// What the risk calculus needs to know about this proposal.
    ///
    /// `proposer_kind` is not read from `spec.proposer` (a free-form name anyone can write): the
    /// admission webhook classifies the requesting user with
    /// [`kgents_risk::ProposerKind::from_username`], and the controller reuses what admission
    /// recorded. Guessing from the spec would let an agent pass itself off as a person.
    ///
    /// Fails when the object has no namespace (it was never stored) or a count is out of range.
    pub fn risk_input(
        &self,
        proposer_kind: kgents_risk::ProposerKind,
    ) -> Result<kgents_risk::ProposalInput> {
        let namespace = self.metadata.namespace.clone().ok_or(Error::Conversion {
            field: "metadata.namespace",
            reason: "a Proposal without a namespace cannot be assessed (velocity and cumulative \
                     penalties are per namespace); read it from the API server or set the namespace"
                .to_owned(),
        })?;
        Ok(kgents_risk::ProposalInput {
            name: self.metadata.name.clone().unwrap_or_default(),
            uid: self.metadata.uid.clone(),
            namespace,
            proposer: self.spec.proposer.clone(),
            proposer_kind,
            change_type: self.spec.change_type,
            magnitude: (&self.spec.magnitude).try_into()?,
            review: (&self.spec.review_requirements).try_into()?,
            created_at: self.metadata.creation_timestamp.as_ref().map(|t| t.0),
        })
    }
}

/// A [`Pheromone`] resource seen as a [`Signal`], with every value checked once.
///
/// Build it with `PheromoneSignal::try_from(&pheromone)`; it borrows the resource's strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PheromoneSignal<'a> {
    resource: &'a Pheromone,
    initial_intensity: Intensity,
    half_life: HalfLife,
    emitted_at: Timestamp,
    ttl: Option<Duration>,
}

impl<'a> PheromoneSignal<'a> {
    /// The resource this signal views.
    pub fn resource(&self) -> &'a Pheromone {
        self.resource
    }
}

impl<'a> TryFrom<&'a Pheromone> for PheromoneSignal<'a> {
    type Error = Error;

    fn try_from(resource: &'a Pheromone) -> Result<Self> {
        let spec = &resource.spec;
        let initial = spec.initial_intensity;
        if !(initial > 0.0 && initial <= 1.0) {
            return Err(Error::OutOfRange {
                field: "spec.initialIntensity",
                value: initial.to_string(),
                expected: "must be greater than 0 and at most 1",
            });
        }
        let initial_intensity = Intensity::new(initial).map_err(|e| Error::Conversion {
            field: "spec.initialIntensity",
            reason: e.to_string(),
        })?;
        // Written so that NaN is refused too.
        if spec.half_life_minutes.is_nan() || spec.half_life_minutes < 0.1 {
            return Err(Error::OutOfRange {
                field: "spec.halfLifeMinutes",
                value: spec.half_life_minutes.to_string(),
                expected: "must be at least 0.1",
            });
        }
        let half_life =
            HalfLife::from_minutes(spec.half_life_minutes).map_err(|e| Error::Conversion {
                field: "spec.halfLifeMinutes",
                reason: e.to_string(),
            })?;
        let emitted_at = spec
            .emitted_at
            .as_ref()
            .or(resource.metadata.creation_timestamp.as_ref())
            .map(|t| t.0)
            .ok_or_else(|| Error::MissingEmissionTime {
                name: resource.metadata.name.clone().unwrap_or_default(),
            })?;
        let ttl = match spec.ttl_seconds {
            None => None,
            Some(seconds) if seconds >= 1 => Some(Duration::from_secs(seconds.unsigned_abs())),
            Some(seconds) => {
                return Err(Error::OutOfRange {
                    field: "spec.ttlSeconds",
                    value: seconds.to_string(),
                    expected: "must be at least 1 (leave it unset for no hard limit)",
                });
            }
        };
        Ok(PheromoneSignal {
            resource,
            initial_intensity,
            half_life,
            emitted_at,
            ttl,
        })
    }
}

impl Signal for PheromoneSignal<'_> {
    fn pheromone_type(&self) -> kgents_core::field::PheromoneType {
        self.resource.spec.kind
    }
    fn source(&self) -> &str {
        &self.resource.spec.source
    }
    fn target(&self) -> Option<&str> {
        self.resource.spec.target.as_deref()
    }
    fn initial_intensity(&self) -> Intensity {
        self.initial_intensity
    }
    fn half_life(&self) -> HalfLife {
        self.half_life
    }
    fn emitted_at(&self) -> Timestamp {
        self.emitted_at
    }
    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }
}

impl TryFrom<&Pheromone> for kgents_core::field::Pheromone {
    type Error = Error;

    /// An owned copy of the signal (see [`PheromoneSignal`] for the checks and defaults).
    fn try_from(resource: &Pheromone) -> Result<Self> {
        let signal = PheromoneSignal::try_from(resource)?;
        Ok(kgents_core::field::Pheromone {
            pheromone_type: signal.pheromone_type(),
            source: signal.source().to_owned(),
            target: signal.target().map(str::to_owned),
            initial_intensity: signal.initial_intensity,
            half_life: signal.half_life,
            emitted_at: signal.emitted_at,
            ttl: signal.ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgents_risk::{
        ChangeType, LedgerSnapshot, ProposalInput, ProposerKind, RiskPolicy, assess,
    };

    /// Found by the `crd_convert` fuzz target: a size factor of 1.390689059560852 (14 lines)
    /// was written to status as 17 digits and read back as 1.3906890595608519.
    #[test]
    fn a_risk_assessment_in_status_reads_back_unchanged() {
        for lines in 0..2_000 {
            let input = ProposalInput::new(
                "p",
                "ns",
                "alice",
                ProposerKind::Person,
                ChangeType::CodePatch,
            )
            .with_magnitude(kgents_risk::Magnitude::lines(
                lines,
                lines / 3,
                lines / 50,
            ));
            let now = Timestamp::from_second(1_800_000_000).expect("a timestamp");
            let assessment = assess(&input, &LedgerSnapshot::new(), &RiskPolicy::default(), now);
            let status = RiskAssessment::from(&assessment);
            let text = serde_json::to_string(&status).expect("serialises");
            let back: RiskAssessment = serde_json::from_str(&text).expect("reads back");
            assert_eq!(back, status, "{lines} lines: {text}");
            assert!((status.size_factor - assessment.size_factor).abs() < 1e-9);
        }
    }
}
