//! The crate's error type.

/// Everything that can go wrong in `kgents-risk`: parsing a change type, or a [`RiskPolicy`]
/// that does not validate.
///
/// [`RiskPolicy`]: crate::RiskPolicy
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string is not one of the fifteen change types.
    #[error(
        "unknown change type {input:?}: expected one of {expected} (SCREAMING_SNAKE_CASE, as in the Proposal's spec.changeType)"
    )]
    UnknownChangeType {
        /// The string that failed to parse.
        input: String,
        /// The accepted spellings, comma separated.
        expected: String,
    },

    /// A policy weight is NaN, infinite, or outside its allowed range.
    #[error(
        "risk policy field `{field}` is {value}, but it must be {expected}; fix the policy value"
    )]
    InvalidWeight {
        /// The policy field, e.g. `velocity.cap` or `base_risks.AGENT_DELETE`.
        field: String,
        /// The offending value.
        value: f64,
        /// The allowed range in words, e.g. "finite and in [0, 1]".
        expected: &'static str,
    },

    /// A policy time window is zero or negative.
    #[error(
        "risk policy window `{field}` is {value}, but it must be longer than zero; use e.g. \"PT1H\""
    )]
    NonPositiveWindow {
        /// The policy field, e.g. `velocity.window`.
        field: &'static str,
        /// The offending window.
        value: jiff::SignedDuration,
    },

    /// The level thresholds are not strictly increasing inside [0, 1].
    #[error(
        "risk level thresholds must satisfy 0 <= low_max < medium_max < high_max <= 1, got low_max {low_max}, medium_max {medium_max}, high_max {high_max}; reorder them"
    )]
    UnorderedThresholds {
        /// Highest score that is still LOW.
        low_max: f64,
        /// Highest score that is still MEDIUM.
        medium_max: f64,
        /// Highest score that is still HIGH.
        high_max: f64,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
