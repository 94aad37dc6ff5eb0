//! The crate's [`Error`]: everything that can go wrong before a model is called (configuration,
//! client construction). Failures of a call itself are [`kgents_probes::LlmError`]s.
//!
//! No variant ever carries an API key: fields hold field names, endpoints with their
//! credentials removed, and explanations.

/// A configuration or construction failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration field has a value that cannot be used.
    #[error("{field}: {message}")]
    InvalidField {
        /// Where the value came from, e.g. `spec.model.endpoint` or `KGENTS_MODEL_ENDPOINT`.
        field: String,
        /// What is wrong with it and what to do.
        message: String,
    },
    /// A configuration field that the chosen provider needs is absent.
    #[error("{field}: {message}")]
    MissingField {
        /// The field that must be set.
        field: String,
        /// Why it is needed and what to set it to.
        message: String,
    },
    /// The provider is `none`: there is no model to build a client for.
    #[error(
        "provider 'none' has no model to call; choose anthropic, openai, openrouter, ollama or claude-cli"
    )]
    NoModel,
    /// The HTTP client could not be constructed.
    #[error("could not build the HTTP client: {message}")]
    HttpClient {
        /// What the HTTP stack reported.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
