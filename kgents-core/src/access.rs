//! What an Umwelt's affordances allow on the Kubernetes API: the pure half of "Umwelt → RBAC".
//!
//! Every AGENTESE path that touches the cluster is listed once in [`ACCESS_TABLE`] with the
//! Kubernetes access it needs. [`compile`] takes an agent's [`Affordances`] and returns exactly the
//! union of the access of the table paths they allow, merged per API group and resource and in a
//! stable order, so the operator can turn it into a Role verbatim and a re-compile of the same
//! Umwelt produces the same Role (no needless writes).
//!
//! Nothing outside the table is ever granted: a glob that allows paths the table does not know
//! (e.g. `concept.*.refine`, which only involves the agent's model) adds no Kubernetes access, and
//! an empty Umwelt compiles to no rules at all.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;

use crate::agentese::{Affordances, Path};

/// A Kubernetes API verb an RBAC rule can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// `get` one object.
    Get,
    /// `list` objects.
    List,
    /// `watch` objects.
    Watch,
    /// `create` an object.
    Create,
    /// `update` an object.
    Update,
    /// `patch` an object.
    Patch,
    /// `delete` an object.
    Delete,
}

impl Verb {
    /// The verb as RBAC spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const READ: &[Verb] = &[Verb::Get, Verb::List, Verb::Watch];
const CREATE: &[Verb] = &[Verb::Create];

/// The Kubernetes access one AGENTESE path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathAccess {
    /// The canonical path, e.g. `void.pheromone.sense`.
    pub path: &'static str,
    /// API group (`""` for the core group).
    pub api_group: &'static str,
    /// Resource (plural, optionally with a subresource such as `pods/log`).
    pub resource: &'static str,
    /// Verbs needed.
    pub verbs: &'static [Verb],
}

/// Every cluster-touching AGENTESE path and the access it needs.
///
/// Reading a kind is `get`/`list`/`watch`; emitting a signal, defining a memory or filing a
/// proposal is `create` only — an agent never updates or deletes directly: it files a Proposal.
pub const ACCESS_TABLE: &[PathAccess] = &[
    // world: what the agent may observe about the cluster.
    PathAccess {
        path: "world.cluster.agents.manifest",
        api_group: "kgents.io",
        resource: "agents",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.memories.manifest",
        api_group: "kgents.io",
        resource: "memories",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.umwelts.manifest",
        api_group: "kgents.io",
        resource: "umwelts",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.proposals.manifest",
        api_group: "kgents.io",
        resource: "proposals",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.pods.manifest",
        api_group: "",
        resource: "pods",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.pods.witness",
        api_group: "",
        resource: "pods/log",
        verbs: &[Verb::Get],
    },
    PathAccess {
        path: "world.cluster.events.witness",
        api_group: "events.k8s.io",
        resource: "events",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.deployments.manifest",
        api_group: "apps",
        resource: "deployments",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.services.manifest",
        api_group: "",
        resource: "services",
        verbs: READ,
    },
    PathAccess {
        path: "world.cluster.configmaps.manifest",
        api_group: "",
        resource: "configmaps",
        verbs: READ,
    },
    // void: the stigmergic medium.
    PathAccess {
        path: "void.pheromone.sense",
        api_group: "kgents.io",
        resource: "pheromones",
        verbs: READ,
    },
    PathAccess {
        path: "void.pheromone.emit",
        api_group: "kgents.io",
        resource: "pheromones",
        verbs: CREATE,
    },
    // self: the agent's own memory and governance.
    PathAccess {
        path: "self.memory.manifest",
        api_group: "kgents.io",
        resource: "memories",
        verbs: READ,
    },
    PathAccess {
        path: "self.memory.define",
        api_group: "kgents.io",
        resource: "memories",
        verbs: CREATE,
    },
    PathAccess {
        path: "self.governance.proposal.define",
        api_group: "kgents.io",
        resource: "proposals",
        verbs: CREATE,
    },
    PathAccess {
        path: "self.governance.proposal.manifest",
        api_group: "kgents.io",
        resource: "proposals",
        verbs: READ,
    },
    PathAccess {
        path: "self.deployment.define",
        api_group: "kgents.io",
        resource: "proposals",
        verbs: CREATE,
    },
    // time: history.
    PathAccess {
        path: "time.witness.events.replay",
        api_group: "events.k8s.io",
        resource: "events",
        verbs: READ,
    },
];

/// One compiled rule: verbs on one resource of one API group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessRule {
    /// API group (`""` for the core group).
    pub api_group: String,
    /// Resource (plural, optionally `resource/subresource`).
    pub resource: String,
    /// Verbs, sorted and without duplicates.
    pub verbs: BTreeSet<Verb>,
}

/// The result of compiling an Umwelt: its rules, and which table paths granted them (to show a
/// person why a permission exists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledAccess {
    /// Rules, sorted by API group then resource.
    pub rules: Vec<AccessRule>,
    /// The table paths the affordances allowed, in table order.
    pub granted_paths: Vec<&'static str>,
}

/// Compiles `affordances` into the Kubernetes access they need. Deny by default: only the
/// table paths the affordances allow contribute, and nothing else is ever granted.
pub fn compile(affordances: &Affordances) -> CompiledAccess {
    let mut merged: BTreeMap<(&'static str, &'static str), BTreeSet<Verb>> = BTreeMap::new();
    let mut granted_paths = Vec::new();
    for entry in ACCESS_TABLE {
        let Ok(path) = Path::parse(entry.path) else {
            // Every table path parses (a unit test checks it); skip rather than panic.
            continue;
        };
        if affordances.allows(&path) {
            granted_paths.push(entry.path);
            merged
                .entry((entry.api_group, entry.resource))
                .or_default()
                .extend(entry.verbs.iter().copied());
        }
    }
    let rules = merged
        .into_iter()
        .map(|((api_group, resource), verbs)| AccessRule {
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            verbs,
        })
        .collect();
    CompiledAccess {
        rules,
        granted_paths,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn affordances(globs: &[&str]) -> Affordances {
        Affordances::parse_all(globs.iter().copied()).expect("valid globs")
    }

    fn rule(rules: &[AccessRule], group: &str, resource: &str) -> Option<Vec<Verb>> {
        rules
            .iter()
            .find(|r| r.api_group == group && r.resource == resource)
            .map(|r| r.verbs.iter().copied().collect())
    }

    #[test]
    fn every_table_path_parses() {
        for entry in ACCESS_TABLE {
            assert!(
                Path::parse(entry.path).is_ok(),
                "{} does not parse",
                entry.path
            );
        }
    }

    #[test]
    fn sense_only_grants_read_and_not_create() {
        let compiled = compile(&affordances(&["void.pheromone.sense"]));
        assert_eq!(
            compiled.rules,
            vec![AccessRule {
                api_group: "kgents.io".into(),
                resource: "pheromones".into(),
                verbs: [Verb::Get, Verb::List, Verb::Watch].into_iter().collect(),
            }]
        );
        assert_eq!(compiled.granted_paths, vec!["void.pheromone.sense"]);
    }

    #[test]
    fn sense_and_emit_merge_into_one_rule() {
        let compiled = compile(&affordances(&["void.pheromone.*"]));
        assert_eq!(
            rule(&compiled.rules, "kgents.io", "pheromones"),
            Some(vec![Verb::Get, Verb::List, Verb::Watch, Verb::Create])
        );
        assert_eq!(compiled.rules.len(), 1);
    }

    #[test]
    fn examples_from_the_design() {
        let compiled = compile(&affordances(&[
            "world.cluster.agents.manifest",
            "self.governance.proposal.define",
        ]));
        assert_eq!(
            rule(&compiled.rules, "kgents.io", "agents"),
            Some(vec![Verb::Get, Verb::List, Verb::Watch])
        );
        assert_eq!(
            rule(&compiled.rules, "kgents.io", "proposals"),
            Some(vec![Verb::Create])
        );
        assert_eq!(compiled.rules.len(), 2);
    }

    #[test]
    fn nothing_afforded_means_nothing_granted() {
        assert_eq!(compile(&Affordances::deny_all()), CompiledAccess::default());
        // A glob that allows only model-side paths grants no Kubernetes access either.
        assert!(
            compile(&affordances(&["concept.*.refine"]))
                .rules
                .is_empty()
        );
    }

    #[test]
    fn agents_never_get_update_or_delete() {
        let everything = compile(&affordances(&["*"]));
        for rule in &everything.rules {
            for verb in &rule.verbs {
                assert!(
                    !matches!(verb, Verb::Update | Verb::Patch | Verb::Delete),
                    "{verb} on {} granted",
                    rule.resource
                );
            }
        }
        assert_eq!(everything.granted_paths.len(), ACCESS_TABLE.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The rules of any subset of the table are exactly the union of the subset's entries:
        /// nothing more, nothing less, and compiling is deterministic.
        #[test]
        fn rules_are_exactly_the_union_of_the_granted_entries(mask in proptest::collection::vec(any::<bool>(), ACCESS_TABLE.len())) {
            let chosen: Vec<&str> = ACCESS_TABLE
                .iter()
                .zip(&mask)
                .filter(|(_, keep)| **keep)
                .map(|(entry, _)| entry.path)
                .collect();
            let compiled = compile(&affordances(&chosen));
            let mut expected: BTreeMap<(String, String), BTreeSet<Verb>> = BTreeMap::new();
            for entry in ACCESS_TABLE.iter().zip(&mask).filter(|(_, keep)| **keep).map(|(e, _)| e) {
                expected.entry((entry.api_group.to_owned(), entry.resource.to_owned())).or_default().extend(entry.verbs.iter().copied());
            }
            let actual: BTreeMap<(String, String), BTreeSet<Verb>> = compiled
                .rules
                .iter()
                .map(|r| ((r.api_group.clone(), r.resource.clone()), r.verbs.clone()))
                .collect();
            prop_assert_eq!(actual, expected);
            prop_assert_eq!(compile(&affordances(&chosen)), compiled);
        }
    }
}
