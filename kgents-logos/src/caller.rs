//! Who invokes a path, and what they may use.
//!
//! A person using their own kubeconfig is [`Grant::Unrestricted`]: the API server's RBAC is the
//! authority over what they do. An agent (or a person restricting themselves with `--umwelt` /
//! `--as-agent`) carries an Umwelt's affordances: a path no glob matches is **denied**, and the
//! denial names the globs that exist.

use kgents_core::agentese::{Affordances, Path};
use kgents_crds::Umwelt;
use serde::Serialize;

use crate::error::{Error, Result};

/// What a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every path (the API server's RBAC still applies to what the handlers do).
    Unrestricted,
    /// Only the paths an Umwelt's affordances match.
    Umwelt {
        /// `namespace/name` of the Umwelt.
        umwelt: String,
        /// Its affordance globs.
        affordances: Affordances,
    },
}

/// An identity and its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    identity: String,
    grant: Grant,
    token_budget: Option<u64>,
}

/// What a caller looks like in results and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerInfo {
    /// The identity.
    pub identity: String,
    /// `None` when unrestricted, else the Umwelt whose affordances apply.
    pub umwelt: Option<String>,
    /// The affordance globs (empty when unrestricted).
    pub affordances: Vec<String>,
}

impl Caller {
    /// A person acting with their own credentials: every path.
    pub fn unrestricted(identity: impl Into<String>) -> Caller {
        Caller {
            identity: identity.into(),
            grant: Grant::Unrestricted,
            token_budget: None,
        }
    }

    /// A caller restricted to `affordances` (named `umwelt` in denials).
    pub fn restricted(
        identity: impl Into<String>,
        umwelt: impl Into<String>,
        affordances: Affordances,
    ) -> Caller {
        Caller {
            identity: identity.into(),
            grant: Grant::Umwelt {
                umwelt: umwelt.into(),
                affordances,
            },
            token_budget: None,
        }
    }

    /// With a daily model-token budget (an Umwelt's `constraints.tokenBudget`); `None` leaves
    /// the model paths to the Logos' configured default.
    #[must_use]
    pub fn with_token_budget(mut self, tokens: Option<u64>) -> Caller {
        self.token_budget = tokens;
        self
    }

    /// The caller's own daily model-token budget, if its Umwelt sets one.
    pub fn token_budget(&self) -> Option<u64> {
        self.token_budget
    }

    /// The key model-token spending is accounted under: the Umwelt for a restricted caller
    /// (every process acting as it shares one budget), else the identity.
    pub fn budget_key(&self) -> String {
        match &self.grant {
            Grant::Unrestricted => self.identity.clone(),
            Grant::Umwelt { umwelt, .. } => format!("umwelt {umwelt}"),
        }
    }

    /// The caller an Umwelt describes: its agent, restricted to its affordances. An affordance
    /// that does not parse is an error naming it (a typo must not silently widen or narrow a
    /// grant).
    pub fn from_umwelt(umwelt: &Umwelt) -> Result<Caller> {
        let name = format!(
            "{}/{}",
            umwelt.metadata.namespace.as_deref().unwrap_or_default(),
            umwelt.metadata.name.as_deref().unwrap_or_default()
        );
        let affordances = Affordances::parse_all(
            umwelt.spec.affordances.iter().map(String::as_str),
        )
        .map_err(|e| Error::BadInput {
            path: format!("Umwelt {name}"),
            reason: format!("spec.affordances: {e}"),
        })?;
        // A negative budget is refused by the CRD's CEL rule; were one stored anyway, it
        // grants nothing rather than everything.
        let budget = umwelt
            .spec
            .constraints
            .as_ref()
            .and_then(|c| c.token_budget)
            .map(|tokens| u64::try_from(tokens).unwrap_or(0));
        Ok(
            Caller::restricted(format!("agent {}", umwelt.spec.agent), name, affordances)
                .with_token_budget(budget),
        )
    }

    /// The identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// How the caller appears in results.
    pub fn info(&self) -> CallerInfo {
        match &self.grant {
            Grant::Unrestricted => CallerInfo {
                identity: self.identity.clone(),
                umwelt: None,
                affordances: Vec::new(),
            },
            Grant::Umwelt {
                umwelt,
                affordances,
            } => CallerInfo {
                identity: self.identity.clone(),
                umwelt: Some(umwelt.clone()),
                affordances: affordances
                    .globs()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
        }
    }

    /// Whether the caller may use `path`: `Ok` when unrestricted or a glob matches, else the
    /// explained denial.
    pub fn check(&self, path: &Path) -> Result<()> {
        match &self.grant {
            Grant::Unrestricted => Ok(()),
            Grant::Umwelt {
                umwelt,
                affordances,
            } => {
                if affordances.allows(path) {
                    Ok(())
                } else {
                    Err(Error::Denied {
                        caller: format!("{} (Umwelt {umwelt})", self.identity),
                        path: path.to_string(),
                        globs: affordances
                            .globs()
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umwelt(affordances: &[&str]) -> Umwelt {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kgents.io/v1", "kind": "Umwelt",
            "metadata": {"name": "b-view", "namespace": "team"},
            "spec": {"agent": "b-gent", "affordances": affordances},
        }))
        .unwrap()
    }

    #[test]
    fn an_umwelt_grants_exactly_its_globs() {
        let caller =
            Caller::from_umwelt(&umwelt(&["world.*.*.manifest", "void.pheromone.*"])).unwrap();
        assert_eq!(caller.identity(), "agent b-gent");
        for allowed in ["world.cluster.agents.manifest", "void.pheromone.emit"] {
            assert!(
                caller.check(&Path::parse(allowed).unwrap()).is_ok(),
                "{allowed}"
            );
        }
        let denied = caller
            .check(&Path::parse("self.deployment.define").unwrap())
            .unwrap_err();
        let text = denied.to_string();
        assert!(
            text.contains("world.*.*.manifest") && text.contains("void.pheromone.*"),
            "{text}"
        );
        assert!(text.contains("team/b-view"), "{text}");
        assert_eq!(denied.kind(), crate::ErrorKind::Denied);
    }

    #[test]
    fn empty_affordances_deny_everything_and_say_so() {
        let caller = Caller::from_umwelt(&umwelt(&[])).unwrap();
        let err = caller
            .check(&Path::parse("world.cluster.agents.manifest").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("affordances are empty"), "{err}");
    }

    #[test]
    fn a_bad_glob_is_an_error_not_a_grant() {
        let err = Caller::from_umwelt(&umwelt(&["wor*.x"])).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        assert!(err.to_string().contains("spec.affordances"), "{err}");
    }

    #[test]
    fn unrestricted_allows_everything() {
        let caller = Caller::unrestricted("alice");
        assert!(
            caller
                .check(&Path::parse("self.deployment.define").unwrap())
                .is_ok()
        );
        assert!(caller.info().umwelt.is_none());
    }
}
