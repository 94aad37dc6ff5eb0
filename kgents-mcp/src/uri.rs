//! `kgents://` resource URIs: parsing, the canonical form, and the catalogue of resources and
//! templates the server offers (pure).
//!
//! ```text
//! kgents://agents[?namespace=NS|all=true&cursor=C&limit=N&detail=full]
//! kgents://agents/{namespace}/{name}
//! kgents://pheromones[?…]            kgents://pheromones/{type}[?…]
//! kgents://proposals[?…]             kgents://proposals/{namespace}/{name}
//! kgents://cluster/status[?namespace=NS|all=true&detail=full]
//! ```
//!
//! Query parameters are how a plain `resources/read` pages (`cursor` is the opaque
//! `next_cursor` of the previous page) and asks for full detail.

use std::fmt;
use std::str::FromStr;

use kgents_core::field::PheromoneType;
use kgents_logos::summary::{check_name, enum_name};
use serde::{Deserialize, Serialize};

/// The scheme and authority prefix of every resource.
pub const PREFIX: &str = "kgents://";

/// How much of each item a result shows.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    /// A compact row per item (the default: what a model needs, few tokens).
    #[default]
    Summary,
    /// Every field the Logos returns.
    Full,
}

impl FromStr for Detail {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "summary" => Ok(Detail::Summary),
            "full" => Ok(Detail::Full),
            other => Err(format!("{other:?} is not a detail level (summary or full)")),
        }
    }
}

/// Where and how much a listing resource reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// One namespace (`None`: the server's default scope).
    pub namespace: Option<String>,
    /// Every namespace.
    pub all_namespaces: bool,
    /// The opaque cursor of the page to read.
    pub cursor: Option<String>,
    /// At most this many items.
    pub limit: Option<usize>,
    /// Summary rows or full objects.
    pub detail: Detail,
}

/// A parsed `kgents://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceRef {
    /// `kgents://agents`.
    Agents(ListQuery),
    /// `kgents://agents/{namespace}/{name}`.
    Agent {
        /// Namespace.
        namespace: String,
        /// Agent name.
        name: String,
    },
    /// `kgents://pheromones`, `kgents://pheromones/{type}`.
    Pheromones {
        /// Only this type.
        pheromone_type: Option<PheromoneType>,
        /// Where and how much.
        query: ListQuery,
    },
    /// `kgents://proposals`.
    Proposals(ListQuery),
    /// `kgents://proposals/{namespace}/{name}`.
    Proposal {
        /// Namespace.
        namespace: String,
        /// Proposal name.
        name: String,
    },
    /// `kgents://cluster/status`.
    ClusterStatus(ListQuery),
}

/// A fixed resource or a template the server lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Catalogued {
    /// The URI, or the RFC 6570 template.
    pub uri: &'static str,
    /// The programmatic name.
    pub name: &'static str,
    /// What reading it returns.
    pub description: &'static str,
}

/// The fixed resources.
pub const RESOURCES: [Catalogued; 4] = [
    Catalogued {
        uri: "kgents://agents",
        name: "agents",
        description: "Agents by phase, readiness and cognitive health (world.cluster.agents.manifest). \
            Paged: ?cursor=NEXT_CURSOR; ?namespace=NS or ?all=true; ?detail=full; ?limit=N.",
    },
    Catalogued {
        uri: "kgents://pheromones",
        name: "pheromones",
        description: "The live pheromone field, strongest first, with heat per type (void.pheromone.sense). \
            Paged like kgents://agents.",
    },
    Catalogued {
        uri: "kgents://proposals",
        name: "proposals",
        description: "Proposals with their risk and phase (world.cluster.proposals.manifest). \
            Paged like kgents://agents.",
    },
    Catalogued {
        uri: "kgents://cluster/status",
        name: "cluster-status",
        description: "One screen: cluster health, agents by phase, pheromone heat, pending proposals.",
    },
];

/// The templates.
pub const TEMPLATES: [Catalogued; 3] = [
    Catalogued {
        uri: "kgents://agents/{namespace}/{name}",
        name: "agent",
        description: "One agent with its conditions (world.cluster.agents.<agent>.manifest).",
    },
    Catalogued {
        uri: "kgents://pheromones/{type}",
        name: "pheromones-of-type",
        description: "The field of one pheromone type (WARNING, INTENT, DREAM, ...), strongest first.",
    },
    Catalogued {
        uri: "kgents://proposals/{namespace}/{name}",
        name: "proposal",
        description: "One proposal with its risk factors, approvals and rejections.",
    },
];

/// A URI that names no resource; the message lists what exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri:?} is not a kgents resource: {reason}. The resources are {}; the templates are {}", catalogue(&RESOURCES), catalogue(&TEMPLATES))]
pub struct UriError {
    /// The URI (shortened).
    pub uri: String,
    /// What is wrong with it.
    pub reason: String,
}

fn catalogue(entries: &[Catalogued]) -> String {
    entries.iter().map(|e| e.uri).collect::<Vec<_>>().join(", ")
}

/// Every template, for error data.
pub fn template_uris() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.uri).collect()
}

/// The largest `limit` a page may ask for.
pub const MAX_LIMIT: usize = 1000;

fn parse_query(uri: &str, query: &str, single: bool) -> Result<ListQuery, UriError> {
    let bad = |reason: String| UriError {
        uri: uri.chars().take(200).collect(),
        reason,
    };
    let mut out = ListQuery::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "namespace" => {
                check_name("namespace", value)
                    .map_err(|e| bad(format!("query parameter namespace: {e}")))?;
                out.namespace = Some(value.to_owned());
            }
            "all" => {
                out.all_namespaces = match value {
                    "true" | "" => true,
                    "false" => false,
                    other => {
                        return Err(bad(format!(
                            "query parameter all: {other:?} is not true or false"
                        )));
                    }
                }
            }
            "detail" => {
                out.detail = value
                    .parse()
                    .map_err(|e| bad(format!("query parameter detail: {e}")))?;
            }
            "cursor" if !single => out.cursor = Some(value.to_owned()),
            "limit" if !single => {
                let limit: usize = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "query parameter limit: {value:?} is not a number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
                out.limit = Some(limit);
            }
            other => {
                let known = if single {
                    "namespace, all, detail"
                } else {
                    "namespace, all, cursor, limit, detail"
                };
                return Err(bad(format!(
                    "unknown query parameter {other:?} (this resource takes {known})"
                )));
            }
        }
    }
    if out.all_namespaces && out.namespace.is_some() {
        return Err(bad("name one namespace or all=true, not both".into()));
    }
    Ok(out)
}

impl ResourceRef {
    /// Parses a `kgents://` URI.
    ///
    /// # Errors
    /// [`UriError`] naming what is wrong and listing the resources and templates.
    pub fn parse(uri: &str) -> Result<ResourceRef, UriError> {
        let bad = |reason: &str| UriError {
            uri: uri.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("it does not start with kgents://"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let object =
            |kind: &str, namespace: &str, name: &str| -> Result<(String, String), UriError> {
                check_name("namespace", namespace).map_err(|e| bad(&e))?;
                check_name(kind, name).map_err(|e| bad(&e))?;
                if !query.is_empty() {
                    return Err(bad("a single object takes no query parameters"));
                }
                Ok((namespace.to_owned(), name.to_owned()))
            };
        match segments.as_slice() {
            ["agents"] => Ok(ResourceRef::Agents(parse_query(uri, query, false)?)),
            ["agents", namespace, name] => {
                let (namespace, name) = object("agent", namespace, name)?;
                Ok(ResourceRef::Agent { namespace, name })
            }
            ["pheromones"] => Ok(ResourceRef::Pheromones {
                pheromone_type: None,
                query: parse_query(uri, query, false)?,
            }),
            ["pheromones", kind] => {
                let pheromone_type = PheromoneType::from_str(kind)
                    .map_err(|e| bad(&format!("pheromone type: {e}")))?;
                Ok(ResourceRef::Pheromones {
                    pheromone_type: Some(pheromone_type),
                    query: parse_query(uri, query, false)?,
                })
            }
            ["proposals"] => Ok(ResourceRef::Proposals(parse_query(uri, query, false)?)),
            ["proposals", namespace, name] => {
                let (namespace, name) = object("proposal", namespace, name)?;
                Ok(ResourceRef::Proposal { namespace, name })
            }
            ["cluster", "status"] => Ok(ResourceRef::ClusterStatus(parse_query(uri, query, true)?)),
            _ => Err(bad("no resource or template has this path")),
        }
    }

    /// The URI without query parameters (what subscriptions and notifications name).
    pub fn base(&self) -> String {
        match self {
            ResourceRef::Agents(_) => "kgents://agents".into(),
            ResourceRef::Agent { namespace, name } => agent_uri(namespace, name),
            ResourceRef::Pheromones {
                pheromone_type: None,
                ..
            } => "kgents://pheromones".into(),
            ResourceRef::Pheromones {
                pheromone_type: Some(t),
                ..
            } => pheromone_type_uri(*t),
            ResourceRef::Proposals(_) => "kgents://proposals".into(),
            ResourceRef::Proposal { namespace, name } => proposal_uri(namespace, name),
            ResourceRef::ClusterStatus(_) => "kgents://cluster/status".into(),
        }
    }

    /// The listing's query, for listing resources.
    pub fn query(&self) -> Option<&ListQuery> {
        match self {
            ResourceRef::Agents(q)
            | ResourceRef::Proposals(q)
            | ResourceRef::ClusterStatus(q)
            | ResourceRef::Pheromones { query: q, .. } => Some(q),
            ResourceRef::Agent { .. } | ResourceRef::Proposal { .. } => None,
        }
    }
}

/// `kgents://agents/{namespace}/{name}`.
pub fn agent_uri(namespace: &str, name: &str) -> String {
    format!("{PREFIX}agents/{namespace}/{name}")
}

/// `kgents://proposals/{namespace}/{name}`.
pub fn proposal_uri(namespace: &str, name: &str) -> String {
    format!("{PREFIX}proposals/{namespace}/{name}")
}

/// `kgents://pheromones/{TYPE}`.
pub fn pheromone_type_uri(t: PheromoneType) -> String {
    format!("{PREFIX}pheromones/{}", enum_name(&t))
}

/// The URI of the next page: `base` with the query's scope and detail and the new cursor.
pub fn next_page_uri(base: &str, query: &ListQuery, cursor: &str) -> String {
    let mut uri = format!("{base}?cursor={cursor}");
    if let Some(ns) = &query.namespace {
        uri.push_str(&format!("&namespace={ns}"));
    }
    if query.all_namespaces {
        uri.push_str("&all=true");
    }
    if let Some(limit) = query.limit {
        uri.push_str(&format!("&limit={limit}"));
    }
    if query.detail == Detail::Full {
        uri.push_str("&detail=full");
    }
    uri
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Detail::Summary => "summary",
            Detail::Full => "full",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_and_template_parses_and_round_trips() {
        for uri in [
            "kgents://agents",
            "kgents://agents/team/b-gent",
            "kgents://pheromones",
            "kgents://pheromones/WARNING",
            "kgents://proposals",
            "kgents://proposals/team/scale-b-gent-x",
            "kgents://cluster/status",
        ] {
            let parsed = ResourceRef::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(parsed.base(), uri);
        }
        // Any case of a type name is accepted; the canonical form is upper case.
        let parsed = ResourceRef::parse("kgents://pheromones/warning").unwrap();
        assert_eq!(parsed.base(), "kgents://pheromones/WARNING");
    }

    #[test]
    fn query_parameters_page_scope_and_detail() {
        let parsed =
            ResourceRef::parse("kgents://agents?namespace=team&cursor=abc&limit=5&detail=full")
                .unwrap();
        let q = parsed.query().unwrap();
        assert_eq!(q.namespace.as_deref(), Some("team"));
        assert_eq!(q.cursor.as_deref(), Some("abc"));
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.detail, Detail::Full);
        let next = next_page_uri(&parsed.base(), q, "def");
        assert_eq!(
            ResourceRef::parse(&next)
                .unwrap()
                .query()
                .unwrap()
                .cursor
                .as_deref(),
            Some("def")
        );
        assert!(
            ResourceRef::parse("kgents://agents?all=true")
                .unwrap()
                .query()
                .unwrap()
                .all_namespaces
        );
    }

    #[test]
    fn unknown_uris_name_the_problem_and_list_the_templates() {
        for (uri, expect) in [
            ("kgents://nothing", "no resource or template"),
            ("http://agents", "kgents://"),
            ("kgents://agents/team", "no resource or template"),
            ("kgents://agents/Team/x", "namespace"),
            ("kgents://pheromones/LOUD", "pheromone type"),
            (
                "kgents://agents?colour=red",
                "unknown query parameter \"colour\"",
            ),
            ("kgents://agents?limit=0", "limit"),
            ("kgents://agents?limit=5000", "limit"),
            ("kgents://agents?namespace=a&all=true", "not both"),
            ("kgents://agents/team/x?detail=full", "no query parameters"),
            (
                "kgents://cluster/status?cursor=x",
                "unknown query parameter",
            ),
        ] {
            let err = ResourceRef::parse(uri).unwrap_err().to_string();
            assert!(err.contains(expect), "{uri}: {err}");
            assert!(err.contains("kgents://agents/{namespace}/{name}"), "{err}");
        }
    }
}
