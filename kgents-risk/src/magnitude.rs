//! How big a change is.

use serde::{Deserialize, Serialize};

/// The size of a change (`spec.magnitude` of a Proposal). All counts are non-negative by type;
/// arithmetic on them saturates, so no value can overflow or panic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Magnitude {
    /// Lines added.
    pub lines_added: u64,
    /// Lines removed.
    pub lines_removed: u64,
    /// Files touched.
    pub files_changed: u64,
    /// Tests added.
    pub tests_added: u64,
    /// Tests removed.
    pub tests_removed: u64,
}

impl Magnitude {
    /// A change of `lines_added` + `lines_removed` lines over `files_changed` files, no tests.
    pub const fn lines(lines_added: u64, lines_removed: u64, files_changed: u64) -> Self {
        Magnitude {
            lines_added,
            lines_removed,
            files_changed,
            tests_added: 0,
            tests_removed: 0,
        }
    }

    /// The same change with `tests_added` and `tests_removed` tests.
    pub const fn with_tests(mut self, tests_added: u64, tests_removed: u64) -> Self {
        self.tests_added = tests_added;
        self.tests_removed = tests_removed;
        self
    }

    /// Lines touched: added + removed (saturating).
    pub const fn lines_touched(&self) -> u64 {
        self.lines_added.saturating_add(self.lines_removed)
    }

    /// Net tests: added − removed. Exact for every input (i128 holds any difference of two u64).
    pub const fn net_tests(&self) -> i128 {
        self.tests_added as i128 - self.tests_removed as i128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_counts_saturate_instead_of_overflowing() {
        let huge = Magnitude::lines(u64::MAX, u64::MAX, u64::MAX).with_tests(0, u64::MAX);
        assert_eq!(huge.lines_touched(), u64::MAX);
        assert_eq!(huge.net_tests(), -(u64::MAX as i128));
    }

    #[test]
    fn serde_uses_the_crd_field_names_and_defaults_missing_ones() {
        let magnitude: Magnitude = serde_json::from_str(
            r#"{"linesAdded":100,"linesRemoved":20,"filesChanged":3,"testsAdded":5}"#,
        )
        .expect("valid magnitude");
        assert_eq!(magnitude, Magnitude::lines(100, 20, 3).with_tests(5, 0));
    }
}
