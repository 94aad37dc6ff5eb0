//! The crate's error type. Every variant says what was wrong, where, and what to do about it.

use crate::agentese::PathError;

/// The result type of `kgents-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `kgents-core`. All of it is bad input; nothing here does I/O.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An AGENTESE path was malformed.
    #[error(transparent)]
    Path(#[from] PathError),

    /// An affordance glob was malformed.
    #[error(
        "invalid affordance glob {glob:?}: element {element} ({found:?}) {reason}; \
         expected `context.segment…` where an element is a lowercase segment, `*` (exactly one \
         element) or a trailing `*` (any non-empty suffix), e.g. `world.*.manifest` or `self.memory.*`"
    )]
    InvalidGlob {
        /// The glob as given (shortened when very long).
        glob: String,
        /// Zero-based index of the offending dot-separated element.
        element: usize,
        /// The offending element (shortened when very long).
        found: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A registry path template was malformed.
    #[error(
        "invalid path template {template:?}: {reason}; expected an AGENTESE path whose segments \
         may be `<name>` placeholders, e.g. `world.cluster.agents.<agent>.tether`"
    )]
    InvalidTemplate {
        /// The template as given (shortened when very long).
        template: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A template was instantiated without a value for one of its placeholders.
    #[error(
        "path template {template:?} needs a value for placeholder <{placeholder}>; pass it in the bindings"
    )]
    MissingBinding {
        /// The template.
        template: String,
        /// The placeholder without a value.
        placeholder: String,
    },

    /// Two registry entries share a CLI command or a path template.
    #[error(
        "registry has two entries for {what} {value:?}; each command and each path template must appear once"
    )]
    DuplicateRegistryEntry {
        /// `"command"` or `"path template"`.
        what: &'static str,
        /// The duplicated value.
        value: String,
    },

    /// An intensity was NaN or outside [0, 1].
    #[error(
        "intensity {value} is outside [0, 1]; give a finite number from 0.0 to 1.0 (or use Intensity::clamped)"
    )]
    IntensityOutOfRange {
        /// The rejected value.
        value: f64,
    },

    /// A half-life was NaN, infinite, zero, negative or longer than the supported maximum.
    #[error(
        "half-life of {value} {unit} is invalid; it must be a finite number greater than zero and at \
         most {max_seconds} seconds"
    )]
    InvalidHalfLife {
        /// The rejected value, in `unit`.
        value: f64,
        /// The unit `value` was given in.
        unit: &'static str,
        /// The supported maximum, in seconds.
        max_seconds: f64,
    },

    /// A legacy `decay_rate` was NaN, infinite, zero or negative.
    #[error(
        "legacy decay_rate {value} per minute is invalid; it must be a finite number greater than \
         zero (half-life = ln 2 / rate), or set halfLifeMinutes instead"
    )]
    InvalidDecayRate {
        /// The rejected rate.
        value: f64,
    },

    /// A string did not name a genus.
    #[error("unknown genus {input:?}; expected one letter A–Z, PSI or OMEGA (case-insensitive)")]
    UnknownGenus {
        /// The rejected input (shortened when very long).
        input: String,
    },

    /// A string did not name a pheromone type.
    #[error(
        "unknown pheromone type {input:?}; expected one of METAPHOR, WARNING, MEMORY, NARRATIVE, \
         OPPORTUNITY, SCARCITY, CAPABILITY, STATE, TEST, INTENT, DREAM, CHAOS, REVIEW_REQUEST"
    )]
    UnknownPheromoneType {
        /// The rejected input (shortened when very long).
        input: String,
    },

    /// A time computation left the range jiff can represent (about ±9999 years).
    #[error(
        "{operation} overflowed the representable time range (years -9999..=9999); use a smaller value"
    )]
    TimeOverflow {
        /// What was being computed.
        operation: &'static str,
    },
}

/// Shortens user input echoed in error messages so a 10,000-character string does not produce a
/// 10,000-character error.
pub(crate) fn excerpt(input: &str) -> String {
    const MAX_CHARS: usize = 64;
    match input.char_indices().nth(MAX_CHARS) {
        None => input.to_owned(),
        Some((cut, _)) => format!("{}…", &input[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_short_input_and_cuts_long_input_on_char_boundaries() {
        assert_eq!(excerpt("world.x"), "world.x");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), 65);
        assert!(cut.ends_with('…'));
    }
}
