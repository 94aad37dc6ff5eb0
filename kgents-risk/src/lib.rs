//! K8-gents proposal risk calculus and decisions. Pure: no I/O, no clock (the caller passes
//! `now`), no Kubernetes types.
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`change_type`] | [`ChangeType`], the fifteen kinds of change, and their default base risks |
//! | [`magnitude`] | [`Magnitude`], how big a change is |
//! | [`proposal`] | [`ProposalInput`], [`ProposerKind`], [`ReviewRequirements`] |
//! | [`policy`] | [`RiskPolicy`]: every weight, window and threshold, defaults, validation |
//! | [`ledger`] | the [`ProposalLedger`] trait and the in-memory [`LedgerSnapshot`] |
//! | [`factors`] | each factor of the score as a pure function |
//! | [`assessment`] | [`RiskLevel`], [`Decision`], [`RiskAssessment`] and its explanation |
//! | [`mod@assess`] | [`assess()`], which puts it all together |
//! | [`error`] | [`Error`] and [`Result`] |
//!
//! score = clamp(base × size × tests × (1 + velocity) + cumulative, 0, 1); see DESIGN §2 and
//! [`assess()`].
//!
//! With the `schemars` feature, [`ChangeType`], [`RiskLevel`], [`Decision`] and [`ProposerKind`]
//! implement `schemars::JsonSchema` (the Proposal resource of `kgents-crds` uses them).
//!
//! ```
//! use kgents_risk::{assess, ChangeType, LedgerSnapshot, ProposalInput, ProposerKind, RiskPolicy, RiskLevel};
//! let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
//! let proposal = ProposalInput::new("scale-b", "kgents", "system:serviceaccount:kgents:b-gent",
//!     ProposerKind::Agent, ChangeType::AgentScale);
//! let assessment = assess(&proposal, &LedgerSnapshot::new(), &RiskPolicy::default(), now);
//! assert_eq!(assessment.level, RiskLevel::Low);
//! println!("{assessment}");
//! ```
#![forbid(unsafe_code)]

pub mod assess;
pub mod assessment;
pub mod change_type;
pub mod error;
pub mod factors;
pub mod ledger;
pub mod magnitude;
pub mod policy;
pub mod proposal;

pub use assess::assess;
pub use assessment::{Decision, RiskAssessment, RiskLevel};
pub use change_type::ChangeType;
pub use error::{Error, Result};
pub use ledger::{LedgerProposal, LedgerSnapshot, ProposalLedger};
pub use magnitude::Magnitude;
pub use policy::{
    BaseRisks, CumulativeWeights, LevelThresholds, RiskPolicy, SizeWeights, TestWeights,
    VelocityScope, VelocityWeights,
};
pub use proposal::{ProposalInput, ProposerKind, ReviewRequirements};
