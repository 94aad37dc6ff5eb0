//! The crate's error type: misconfiguration and misuse detected before a probe runs.
//!
//! A probe that runs never fails with an [`Error`]: everything that can go wrong while asking
//! a model (timeouts, transport errors, wrong answers) is a [`ProbeOutcome`](crate::ProbeOutcome).

use std::time::Duration;

use crate::challenge::ProbeKind;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with how probes are configured or called.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The probe timeout is zero, so every probe would be reported unresponsive.
    #[error("probe timeout is zero; set a positive timeout (the default is 10s)")]
    ZeroTimeout,

    /// The latency budget is longer than the timeout, so no probe could ever be Degraded.
    #[error(
        "latency budget {budget:?} exceeds the probe timeout {timeout:?}; \
         choose a budget no longer than the timeout (defaults: budget 5s, timeout 10s)"
    )]
    BudgetExceedsTimeout {
        /// The configured latency budget.
        budget: Duration,
        /// The configured timeout.
        timeout: Duration,
    },

    /// A health-tracker threshold is zero or unreasonably large.
    #[error(
        "health tracker {name} is {value}; it must be between 1 and {max} \
         (defaults: failure threshold 3, success threshold 1)"
    )]
    InvalidThreshold {
        /// Which threshold (`failure threshold` or `success threshold`).
        name: &'static str,
        /// The rejected value.
        value: u32,
        /// The largest accepted value.
        max: u32,
    },

    /// A path probe was configured without any path to resolve.
    #[error(
        "path probe has no AGENTESE path to resolve; give it at least one, e.g. `concept.define`"
    )]
    NoPaths,

    /// A path given to the path probe is not a valid AGENTESE path.
    #[error("path probe: `{path}` is not a valid AGENTESE path: {reason}")]
    InvalidPath {
        /// The rejected text.
        path: String,
        /// Why the AGENTESE parser rejected it.
        reason: String,
    },

    /// A challenge was handed to a probe of another kind.
    #[error(
        "a {challenge} challenge cannot be posed by the {probe} probe; \
         draw the challenge from the same probe that runs it"
    )]
    ChallengeMismatch {
        /// The kind of the probe that was asked to run it.
        probe: ProbeKind,
        /// The kind of the challenge.
        challenge: ProbeKind,
    },
}
