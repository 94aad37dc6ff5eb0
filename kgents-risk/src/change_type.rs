//! The fifteen kinds of change a Proposal can carry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a Proposal changes (`spec.changeType`). Each kind has a base risk in
/// [`RiskPolicy::base_risks`](crate::RiskPolicy::base_risks); the defaults are
/// [`ChangeType::default_base_risk`].
///
/// Serialised, printed and parsed in SCREAMING_SNAKE_CASE (`AGENT_DELETE`), exactly as in the
/// Proposal custom resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(description = "Kind of change a proposal makes.")
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeType {
    /// A small code fix.
    CodePatch,
    /// New code functionality.
    CodeFeature,
    /// Restructured code with intended equal behaviour.
    CodeRefactor,
    /// Removed code.
    CodeDelete,
    /// A configuration value changes.
    ConfigUpdate,
    /// A secret changes.
    ConfigSecret,
    /// A new agent is deployed.
    AgentDeploy,
    /// An agent's replica count changes.
    AgentScale,
    /// An agent is removed.
    AgentDelete,
    /// An agent's image or version changes.
    AgentUpgrade,
    /// A memory store is migrated.
    MemoryMigrate,
    /// A memory store is compacted.
    MemoryCompact,
    /// A memory store is deleted.
    MemoryDelete,
    /// A governance policy changes.
    PolicyUpdate,
    /// The risk rules themselves are overridden.
    RiskOverride,
}

impl ChangeType {
    /// Number of change types.
    pub const COUNT: usize = 15;

    /// Every change type, in declaration order (the order of `original-kgents` §1.5).
    pub const ALL: [ChangeType; Self::COUNT] = [
        ChangeType::CodePatch,
        ChangeType::CodeFeature,
        ChangeType::CodeRefactor,
        ChangeType::CodeDelete,
        ChangeType::ConfigUpdate,
        ChangeType::ConfigSecret,
        ChangeType::AgentDeploy,
        ChangeType::AgentScale,
        ChangeType::AgentDelete,
        ChangeType::AgentUpgrade,
        ChangeType::MemoryMigrate,
        ChangeType::MemoryCompact,
        ChangeType::MemoryDelete,
        ChangeType::PolicyUpdate,
        ChangeType::RiskOverride,
    ];

    /// The wire spelling, e.g. `"AGENT_DELETE"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeType::CodePatch => "CODE_PATCH",
            ChangeType::CodeFeature => "CODE_FEATURE",
            ChangeType::CodeRefactor => "CODE_REFACTOR",
            ChangeType::CodeDelete => "CODE_DELETE",
            ChangeType::ConfigUpdate => "CONFIG_UPDATE",
            ChangeType::ConfigSecret => "CONFIG_SECRET",
            ChangeType::AgentDeploy => "AGENT_DEPLOY",
            ChangeType::AgentScale => "AGENT_SCALE",
            ChangeType::AgentDelete => "AGENT_DELETE",
            ChangeType::AgentUpgrade => "AGENT_UPGRADE",
            ChangeType::MemoryMigrate => "MEMORY_MIGRATE",
            ChangeType::MemoryCompact => "MEMORY_COMPACT",
            ChangeType::MemoryDelete => "MEMORY_DELETE",
            ChangeType::PolicyUpdate => "POLICY_UPDATE",
            ChangeType::RiskOverride => "RISK_OVERRIDE",
        }
    }

    /// The base risk of the original implementation's `BASE_RISK_BY_TYPE` (the defaults of
    /// [`RiskPolicy::base_risks`](crate::RiskPolicy::base_risks)).
    pub const fn default_base_risk(self) -> f64 {
        match self {
            ChangeType::CodePatch => 0.1,
            ChangeType::CodeFeature => 0.3,
            ChangeType::CodeRefactor => 0.4,
            ChangeType::CodeDelete => 0.5,
            ChangeType::ConfigUpdate => 0.2,
            ChangeType::ConfigSecret => 0.6,
            ChangeType::AgentDeploy => 0.3,
            ChangeType::AgentScale => 0.1,
            ChangeType::AgentDelete => 0.7,
            ChangeType::AgentUpgrade => 0.4,
            ChangeType::MemoryMigrate => 0.6,
            ChangeType::MemoryCompact => 0.3,
            ChangeType::MemoryDelete => 0.8,
            ChangeType::PolicyUpdate => 0.5,
            ChangeType::RiskOverride => 0.9,
        }
    }

    /// Whether this is a code change (CODE_PATCH, CODE_FEATURE, CODE_REFACTOR, CODE_DELETE):
    /// the only kinds of change that may record a change made outside the cluster.
    pub const fn is_code(self) -> bool {
        matches!(
            self,
            ChangeType::CodePatch
                | ChangeType::CodeFeature
                | ChangeType::CodeRefactor
                | ChangeType::CodeDelete
        )
    }

    /// Position in [`ChangeType::ALL`], used to index per-type tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeType {
    type Err = Error;

    /// Parses the exact SCREAMING_SNAKE_CASE spelling. Unknown strings are an error (the original
    /// silently gave them a base risk of 0.5).
    fn from_str(input: &str) -> Result<Self> {
        ChangeType::ALL
            .into_iter()
            .find(|change| change.as_str() == input)
            .ok_or_else(|| Error::UnknownChangeType {
                input: input.chars().take(64).collect(),
                expected: ChangeType::ALL.map(ChangeType::as_str).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_each_type_once_at_its_index() {
        for (position, change) in ChangeType::ALL.into_iter().enumerate() {
            assert_eq!(change.index(), position, "{change}");
        }
    }

    #[test]
    fn display_from_str_and_serde_agree() {
        for change in ChangeType::ALL {
            let text = change.to_string();
            assert_eq!(text.parse::<ChangeType>(), Ok(change));
            let json = serde_json::to_string(&change).expect("serialises");
            assert_eq!(json, format!("\"{text}\""));
            let back: ChangeType = serde_json::from_str(&json).expect("deserialises");
            assert_eq!(back, change);
        }
    }

    #[test]
    fn unknown_type_is_a_typed_error_naming_the_input() {
        let err = "agent_delete".parse::<ChangeType>().unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"agent_delete\""), "{message}");
        assert!(message.contains("AGENT_DELETE"), "{message}");
        assert!(serde_json::from_str::<ChangeType>("\"SCALE\"").is_err());
    }

    #[test]
    fn default_base_risks_match_the_original_constants() {
        let expected = [
            0.1, 0.3, 0.4, 0.5, 0.2, 0.6, 0.3, 0.1, 0.7, 0.4, 0.6, 0.3, 0.8, 0.5, 0.9,
        ];
        let actual = ChangeType::ALL.map(ChangeType::default_base_risk);
        assert_eq!(actual, expected);
    }
}
