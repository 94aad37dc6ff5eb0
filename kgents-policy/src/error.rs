//! The crate's [`Error`] and [`Result`].

/// What can go wrong building a policy or reading a patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The admission policy document is invalid.
    #[error(
        "admission policy, {location}: {message} (the policy is the policy.yaml key of the policy ConfigMap)"
    )]
    Policy {
        /// Where in the policy document: `allowedKinds`, `risk`, `rules[max-replicas]`, ….
        location: String,
        /// What was wrong and what to do.
        message: String,
    },

    /// A proposal's patch does not parse for its type, or would rename, move or re-kind its
    /// target. The message is a complete sentence for the proposal's author.
    #[error("{0}")]
    Patch(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
