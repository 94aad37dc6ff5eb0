//! Validated names that become file names in the ghost cache.
//!
//! Agent names and pheromone types end up as path components (`agents/<name>.json`,
//! `pheromones/by_type/<TYPE>.json`). Validating an [`AgentName`] once, at construction, is what
//! keeps every path the store builds inside its root: it cannot hold `/`, `\`, `..`, a leading
//! dot, NUL or any other byte outside a small ASCII alphabet. A pheromone type is the closed enum
//! [`kgents_core::field::PheromoneType`], whose names are upper-case letters and `_` only.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest agent name accepted. Kubernetes allows 253 characters for a DNS-1123 subdomain, but
/// `<name>.json` must also fit the 255-byte file-name limit of common filesystems.
pub const MAX_AGENT_NAME_LEN: usize = 250;

/// The name of an Agent resource: a DNS-1123 subdomain (lowercase letters, digits, `-` and `.`,
/// dot-separated labels of 1–63 characters that start and end with a letter or digit), at most
/// [`MAX_AGENT_NAME_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentName(String);

impl AgentName {
    /// Validates `name` as an agent name.
    ///
    /// # Errors
    /// [`Error::InvalidName`] saying which rule the name breaks.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        match agent_name_problem(&name) {
            None => Ok(Self(name)),
            Some(reason) => Err(Error::InvalidName {
                what: "agent name",
                name,
                reason,
            }),
        }
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `name` is not a valid agent name, or `None` when it is.
fn agent_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > MAX_AGENT_NAME_LEN {
        return Some("it is longer than 250 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty dot-separated part (leading, trailing or doubled '.')");
        }
        if label.len() > 63 {
            return Some("a dot-separated part is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Some("only lowercase letters, digits, '-' and '.' are allowed");
        }
        let first = label.as_bytes()[0];
        let last = label.as_bytes()[label.len() - 1];
        if first == b'-' || last == b'-' {
            return Some("each dot-separated part must start and end with a letter or digit");
        }
    }
    None
}

impl TryFrom<String> for AgentName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<AgentName> for String {
    fn from(value: AgentName) -> Self {
        value.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_style_agent_names() {
        for ok in ["l-gent", "a", "b-gent.v2", "0abc", "x9"] {
            assert!(AgentName::new(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn rejects_agent_names_that_could_escape_the_root() {
        let long = "a".repeat(251);
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            ".hidden",
            "a..b",
            "_index",
            "A",
            "a-",
            "-a",
            "a\0b",
            "é",
            long.as_str(),
        ] {
            let err = AgentName::new(bad).expect_err(bad);
            assert!(err.to_string().contains("agent name"), "{err}");
        }
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<AgentName>("\"../../x\"").is_err());
        assert_eq!(
            serde_json::from_str::<AgentName>("\"l-gent\"").unwrap(),
            AgentName::new("l-gent").unwrap()
        );
    }
}
