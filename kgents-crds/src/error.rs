//! The crate's error type.

/// Everything that can go wrong when reading, validating or converting a kgents.io resource.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Pheromone has neither `spec.emittedAt` nor `metadata.creationTimestamp`, so its age — and
    /// therefore its intensity — is unknown.
    #[error(
        "pheromone {name:?} has neither spec.emittedAt nor metadata.creationTimestamp; \
         set spec.emittedAt, or read the object back from the API server (which sets creationTimestamp)"
    )]
    MissingEmissionTime {
        /// `metadata.name` of the pheromone (empty when unnamed).
        name: String,
    },

    /// A numeric field lies outside the range the schema allows (the API server would have refused
    /// the object; this guards objects built in Rust that never went through it).
    #[error("{field} = {value} is out of range: {expected}")]
    OutOfRange {
        /// JSON path of the field, e.g. `spec.initialIntensity`.
        field: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What the schema allows, e.g. `must be in (0, 1]`.
        expected: &'static str,
    },

    /// An Umwelt affordance is not a valid AGENTESE glob.
    #[error("spec.affordances[{index}] = {glob:?} is not an AGENTESE glob: {reason}")]
    InvalidAffordance {
        /// Position of the glob in `spec.affordances`.
        index: usize,
        /// The glob as written.
        glob: String,
        /// Why it was refused.
        reason: String,
    },

    /// A Workflow's spec is not runnable: a cycle, an unknown or unregistered AGENTESE path, a
    /// proposal template that is not a Proposal spec, or a missing dependency.
    #[error("workflow step {step:?}: {reason}")]
    InvalidWorkflow {
        /// Name of the step at fault (empty when the fault is the whole workflow's).
        step: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A value could not be converted into the pure core or risk types.
    #[error("cannot convert {field}: {reason}")]
    Conversion {
        /// JSON path of the field.
        field: &'static str,
        /// Why the conversion failed.
        reason: String,
    },

    /// Rendering a CustomResourceDefinition as YAML failed.
    #[error("cannot render CRD {name} as YAML: {source}")]
    Render {
        /// `metadata.name` of the CRD.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_saphyr::SerializeError,
    },
}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
