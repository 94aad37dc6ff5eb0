//! The status digest (`status/digest.json`): what a one-screen status shows, kept small enough
//! to read in a few milliseconds whatever the size of the field.
//!
//! A status needs counts, not lists: agents by phase, readiness and health (with the few that
//! need attention named), the heat of each pheromone type, and the proposals still waiting.
//! The digest keeps exactly that per namespace. Pheromones are kept without their names,
//! sources and targets, grouped by type and half-life: each member is its intensity when the
//! digest was taken and its TTL left then. Decay continues from the digest exactly as it does
//! from a full snapshot (the same kgents-core functions), so a digest read later shows the heat
//! and the count of live signals at the time it is read, not at the time it was written.
//!
//! Everything here is pure: [`StatusDigest::build`] from snapshot rows, [`StatusDigest::view`]
//! at a time and for a namespace scope.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use kgents_core::decay::{self, EVAPORATION_THRESHOLD, HalfLife, Intensity};
use kgents_core::field::PheromoneType;

use crate::snapshot::{AgentSummary, PheromoneSummary, ProposalSummary};

/// Whether an agent needs a person's attention: not Running, not cognitively HEALTHY, or with
/// fewer ready replicas than desired.
#[must_use]
pub fn needs_attention(agent: &AgentSummary) -> bool {
    agent.phase != "Running"
        || agent.cognitive_health != "HEALTHY"
        || agent.ready_replicas < agent.replicas
}

/// Whether an agent has every replica ready, and at least one.
#[must_use]
pub fn is_ready(agent: &AgentSummary) -> bool {
    agent.replicas > 0 && agent.ready_replicas >= agent.replicas
}

/// How many of the agents needing attention a digest names per namespace (and a view in all):
/// a status is one screen; the rest are counted in [`AgentCounts::attention_total`].
pub const ATTENTION_LIMIT: usize = 20;

/// Agents of one namespace, counted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentCounts {
    /// How many agents.
    pub total: usize,
    /// How many have every replica ready ([`is_ready`]).
    pub ready: usize,
    /// How many are in each phase.
    pub by_phase: BTreeMap<String, usize>,
    /// How many have each cognitive health.
    pub by_health: BTreeMap<String, usize>,
    /// The first [`ATTENTION_LIMIT`] agents that need attention ([`needs_attention`]), by
    /// namespace and name.
    pub attention: Vec<AgentSummary>,
    /// How many agents need attention in all.
    #[serde(default)]
    pub attention_total: usize,
}

impl AgentCounts {
    /// Counts `agents`.
    #[must_use]
    pub fn of<'a>(agents: impl IntoIterator<Item = &'a AgentSummary>) -> AgentCounts {
        let mut counts = AgentCounts::default();
        for agent in agents {
            counts.add(agent);
        }
        counts.sort();
        counts
    }

    fn add(&mut self, agent: &AgentSummary) {
        self.total += 1;
        self.ready += usize::from(is_ready(agent));
        *self.by_phase.entry(agent.phase.clone()).or_default() += 1;
        *self
            .by_health
            .entry(agent.cognitive_health.clone())
            .or_default() += 1;
        if needs_attention(agent) {
            self.attention_total += 1;
            self.attention.push(agent.clone());
        }
    }

    fn merge(&mut self, other: &AgentCounts) {
        self.total += other.total;
        self.ready += other.ready;
        for (phase, n) in &other.by_phase {
            *self.by_phase.entry(phase.clone()).or_default() += n;
        }
        for (health, n) in &other.by_health {
            *self.by_health.entry(health.clone()).or_default() += n;
        }
        self.attention_total += other.attention_total;
        self.attention.extend(other.attention.iter().cloned());
    }

    /// Sorts the named agents by namespace and name and keeps the first [`ATTENTION_LIMIT`].
    fn sort(&mut self) {
        self.attention.sort_by(|a, b| {
            (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
        });
        self.attention.truncate(ATTENTION_LIMIT);
    }
}

/// One pheromone of a [`HeatGroup`]: its intensity when the digest was taken and the TTL it had
/// left then (`None`: no TTL). Stored as a two-element array.
pub type HeatMember = (f64, Option<f64>);

/// Pheromones of one type and base half-life: for each, the intensity when the digest was
/// taken and the TTL it had left then (`None`: no TTL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatGroup {
    /// The type.
    pub pheromone_type: PheromoneType,
    /// The base half-life in seconds (DREAM decays with twice this, as everywhere).
    pub half_life_seconds: f64,
    /// `[intensity, ttl_left_seconds]` per pheromone.
    pub members: Vec<HeatMember>,
}

/// One namespace of the digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceDigest {
    /// The namespace.
    pub namespace: String,
    /// Its agents, counted.
    pub agents: AgentCounts,
    /// Its pheromones, grouped.
    pub heat: Vec<HeatGroup>,
    /// Pheromones stored but already evaporated when the digest was taken.
    pub evaporated: usize,
    /// Its proposals still waiting (Pending, Reviewing, Approved), by name.
    pub pending: Vec<ProposalSummary>,
}

impl NamespaceDigest {
    fn new(namespace: &str) -> NamespaceDigest {
        NamespaceDigest {
            namespace: namespace.to_owned(),
            agents: AgentCounts::default(),
            heat: Vec::new(),
            evaporated: 0,
            pending: Vec::new(),
        }
    }
}

/// The status digest: one entry per namespace that has agents, pheromones or waiting
/// proposals, by namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StatusDigest {
    /// The namespaces.
    pub namespaces: Vec<NamespaceDigest>,
}

/// Heat of one type at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TypeHeat {
    /// The type.
    pub pheromone_type: PheromoneType,
    /// How many live signals.
    pub count: usize,
    /// Sum of their current intensities.
    pub sum: f64,
    /// The strongest current intensity.
    pub max: f64,
}

/// The field of a digest at a time, for a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldHeat {
    /// Live signals (above the evaporation threshold and within their TTL).
    pub live: usize,
    /// Signals stored but evaporated by then.
    pub evaporated: usize,
    /// Heat per type, by type; only types with live signals.
    pub heat: Vec<TypeHeat>,
}

/// A digest seen at a time for a scope: the namespaces merged.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestView {
    /// Agents, counted.
    pub agents: AgentCounts,
    /// The field.
    pub field: FieldHeat,
    /// Proposals still waiting, by namespace and name.
    pub pending: Vec<ProposalSummary>,
}

impl StatusDigest {
    /// How many Pheromones of each type the digest holds (evaporated ones have no type here
    /// and are not counted), largest first; types with none are left out.
    #[must_use]
    pub fn type_counts(&self) -> Vec<(PheromoneType, usize)> {
        let mut counts: BTreeMap<PheromoneType, usize> = BTreeMap::new();
        for group in self.namespaces.iter().flat_map(|ns| &ns.heat) {
            *counts.entry(group.pheromone_type).or_default() += group.members.len();
        }
        let mut counts: Vec<_> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
        counts.sort_by(|(a, m), (b, n)| n.cmp(m).then(a.cmp(b)));
        counts
    }

    /// The digest of snapshot rows taken at `taken_at` (pheromone intensities are those at
    /// `taken_at`; `pending` holds only the proposals still waiting).
    #[must_use]
    pub fn build<'a>(
        agents: &'a [AgentSummary],
        pheromones: &'a [PheromoneSummary],
        pending: &'a [ProposalSummary],
        taken_at: Timestamp,
    ) -> StatusDigest {
        fn slot<'m, 'a>(
            namespaces: &'m mut BTreeMap<&'a str, NamespaceDigest>,
            ns: &'a str,
        ) -> &'m mut NamespaceDigest {
            namespaces
                .entry(ns)
                .or_insert_with(|| NamespaceDigest::new(ns))
        }
        let mut namespaces: BTreeMap<&str, NamespaceDigest> = BTreeMap::new();
        for agent in agents {
            slot(&mut namespaces, &agent.namespace).agents.add(agent);
        }
        // (namespace, type, half-life bits) → members.
        type GroupKey<'k> = (&'k str, PheromoneType, u64);
        let mut groups: BTreeMap<GroupKey<'_>, Vec<HeatMember>> = BTreeMap::new();
        for p in pheromones {
            let digest = slot(&mut namespaces, &p.namespace);
            let ttl_left = p
                .expires_at
                .map(|at| at.duration_since(taken_at).as_secs_f64());
            if p.intensity < EVAPORATION_THRESHOLD || ttl_left.is_some_and(|s| s <= 0.0) {
                digest.evaporated += 1;
                continue;
            }
            // Grouped by the half-life's bits: equal half-lives share a group exactly.
            groups
                .entry((
                    &p.namespace,
                    p.pheromone_type,
                    p.half_life_seconds.to_bits(),
                ))
                .or_default()
                .push((p.intensity, ttl_left));
        }
        for ((ns, pheromone_type, half_life), members) in groups {
            slot(&mut namespaces, ns).heat.push(HeatGroup {
                pheromone_type,
                half_life_seconds: f64::from_bits(half_life),
                members,
            });
        }
        for proposal in pending {
            slot(&mut namespaces, &proposal.namespace)
                .pending
                .push(proposal.clone());
        }
        let namespaces = namespaces
            .into_values()
            .map(|mut digest| {
                digest.agents.sort();
                digest.pending.sort_by(|a, b| a.name.cmp(&b.name));
                digest
            })
            .collect();
        StatusDigest { namespaces }
    }

    /// The digest taken at `taken_at` as seen at `now`, for one namespace (`Some`) or all.
    #[must_use]
    pub fn view(&self, namespace: Option<&str>, taken_at: Timestamp, now: Timestamp) -> DigestView {
        let mut agents = AgentCounts::default();
        let mut heat: BTreeMap<PheromoneType, TypeHeat> = BTreeMap::new();
        let mut live = 0;
        let mut evaporated = 0;
        let mut pending = Vec::new();
        let elapsed = now.duration_since(taken_at).as_secs_f64().max(0.0);
        for digest in self
            .namespaces
            .iter()
            .filter(|d| namespace.is_none_or(|ns| ns == d.namespace))
        {
            agents.merge(&digest.agents);
            evaporated += digest.evaporated;
            pending.extend(digest.pending.iter().cloned());
            for group in &digest.heat {
                let Ok(base) = HalfLife::from_seconds(group.half_life_seconds) else {
                    evaporated += group.members.len();
                    continue;
                };
                let half_life = decay::effective_half_life(group.pheromone_type, base);
                for &(intensity, ttl_left) in &group.members {
                    let current = decay::intensity_at(
                        Intensity::clamped(intensity),
                        half_life,
                        taken_at,
                        now,
                    )
                    .get();
                    let past_ttl = ttl_left.is_some_and(|left| left <= elapsed);
                    if current < EVAPORATION_THRESHOLD || past_ttl {
                        evaporated += 1;
                        continue;
                    }
                    live += 1;
                    let row = heat.entry(group.pheromone_type).or_insert(TypeHeat {
                        pheromone_type: group.pheromone_type,
                        count: 0,
                        sum: 0.0,
                        max: 0.0,
                    });
                    row.count += 1;
                    row.sum += current;
                    row.max = row.max.max(current);
                }
            }
        }
        agents.sort();
        pending.sort_by(|a, b| {
            (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
        });
        DigestView {
            agents,
            field: FieldHeat {
                live,
                evaporated,
                heat: heat.into_values().collect(),
            },
            pending,
        }
    }

    /// What is wrong with the digest's numbers, if anything (intensities and risk scores in
    /// `[0, 1]`, positive half-lives, finite TTLs).
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        self.namespaces.iter().find_map(|d| {
            d.heat
                .iter()
                .find_map(|g| {
                    if !(g.half_life_seconds.is_finite() && g.half_life_seconds > 0.0) {
                        Some(format!(
                            "a {} group of namespace {} has half-life {} s (must be positive)",
                            g.pheromone_type, d.namespace, g.half_life_seconds
                        ))
                    } else {
                        g.members
                            .iter()
                            .find(|(i, ttl)| !unit(*i) || ttl.is_some_and(|t| !t.is_finite()))
                            .map(|(i, ttl)| {
                                format!(
                                    "a {} pheromone of namespace {} has intensity {i} and TTL \
                                     {ttl:?} (must be in [0, 1], and finite)",
                                    g.pheromone_type, d.namespace
                                )
                            })
                    }
                })
                .or_else(|| {
                    d.pending.iter().find(|p| !unit(p.risk_score)).map(|p| {
                        format!(
                            "proposal {} has risk score {} (must be a number in [0, 1])",
                            p.name, p.risk_score
                        )
                    })
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::name::AgentName;

    fn t0() -> Timestamp {
        "2027-01-15T12:00:00Z".parse().unwrap()
    }

    fn agent(ns: &str, name: &str, phase: &str, health: &str, ready: u32) -> AgentSummary {
        AgentSummary {
            name: AgentName::new(name).unwrap(),
            namespace: ns.into(),
            genus: "B".into(),
            phase: phase.into(),
            cognitive_health: health.into(),
            ready_replicas: ready,
            replicas: 1,
        }
    }

    fn pheromone(
        ns: &str,
        t: PheromoneType,
        intensity: f64,
        half_life: f64,
        ttl: Option<i64>,
    ) -> PheromoneSummary {
        PheromoneSummary {
            name: format!("p-{intensity}"),
            namespace: ns.into(),
            pheromone_type: t,
            source: "a-gent".into(),
            target: None,
            intensity,
            emitted_at: t0(),
            half_life_seconds: half_life,
            expires_at: ttl.map(|s| t0() + SignedDuration::from_secs(s)),
        }
    }

    #[test]
    fn type_counts_add_up_the_namespaces_largest_first() {
        use PheromoneType::{Dream, State, Warning};
        let pheromones = [
            pheromone("a", Warning, 0.9, 600.0, None),
            pheromone("b", Warning, 0.8, 600.0, None),
            pheromone("b", Warning, 0.7, 60.0, None),
            pheromone("a", Dream, 0.9, 600.0, None),
            pheromone("b", State, 0.9, 600.0, None),
            pheromone("b", State, 0.6, 600.0, None),
        ];
        let digest = StatusDigest::build(&[], &pheromones, &[], t0());
        assert_eq!(
            digest.type_counts(),
            vec![(Warning, 3), (State, 2), (Dream, 1)]
        );
        assert!(
            StatusDigest::build(&[], &[], &[], t0())
                .type_counts()
                .is_empty()
        );
    }

    #[test]
    fn agents_are_counted_and_those_needing_attention_named() {
        let agents = [
            agent("b", "ok", "Running", "HEALTHY", 1),
            agent("a", "slow", "Running", "DEGRADED", 1),
            agent("a", "new", "Pending", "UNKNOWN", 0),
        ];
        let digest = StatusDigest::build(&agents, &[], &[], t0());
        let all = digest.view(None, t0(), t0()).agents;
        assert_eq!((all.total, all.ready), (3, 2));
        assert_eq!(all.by_phase["Running"], 2);
        let named: Vec<_> = all.attention.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(named, ["new", "slow"]);
        assert_eq!(all.attention_total, 2);
        let b = digest.view(Some("b"), t0(), t0()).agents;
        assert_eq!((b.total, b.attention.len()), (1, 0));
    }

    #[test]
    fn at_most_the_limit_of_agents_needing_attention_is_named_and_all_are_counted() {
        let names: Vec<String> = (0..ATTENTION_LIMIT + 5)
            .map(|i| format!("a-{i:03}"))
            .collect();
        let agents: Vec<_> = names
            .iter()
            .map(|n| agent("x", n, "Pending", "UNKNOWN", 0))
            .chain(names.iter().map(|n| agent("y", n, "Pending", "UNKNOWN", 0)))
            .collect();
        let digest = StatusDigest::build(&agents, &[], &[], t0());
        assert_eq!(digest.namespaces[0].agents.attention.len(), ATTENTION_LIMIT);
        let all = digest.view(None, t0(), t0()).agents;
        assert_eq!(all.attention.len(), ATTENTION_LIMIT);
        assert_eq!(all.attention_total, 2 * (ATTENTION_LIMIT + 5));
        assert!(all.attention.iter().all(|a| a.namespace == "x"));
    }

    #[test]
    fn heat_decays_from_the_digest_and_signals_evaporate_by_threshold_and_ttl() {
        let field = [
            pheromone("a", PheromoneType::Warning, 0.8, 60.0, None),
            pheromone("a", PheromoneType::Warning, 0.4, 60.0, Some(30)),
            pheromone("a", PheromoneType::Dream, 0.02, 60.0, None),
            pheromone("a", PheromoneType::Warning, 0.005, 60.0, None),
        ];
        let digest = StatusDigest::build(&[], &field, &[], t0());
        let now = digest.view(None, t0(), t0()).field;
        assert_eq!((now.live, now.evaporated), (3, 1));

        // One half-life later: the 0.4 signal is past its 30 s TTL; DREAM decays with 120 s.
        let later = digest
            .view(None, t0(), t0() + SignedDuration::from_secs(60))
            .field;
        assert_eq!((later.live, later.evaporated), (2, 2));
        let warning = later.heat[0];
        assert_eq!(warning.pheromone_type, PheromoneType::Warning);
        assert!((warning.sum - 0.4).abs() < 1e-9, "{warning:?}");
        let dream = later.heat[1];
        assert!((dream.max - 0.02 / 2f64.sqrt()).abs() < 1e-9, "{dream:?}");
    }

    #[test]
    fn a_digest_round_trips_through_json_and_bad_numbers_are_found() {
        let digest = StatusDigest::build(
            &[agent("a", "x", "Running", "HEALTHY", 1)],
            &[pheromone("a", PheromoneType::Warning, 0.5, 30.0, Some(10))],
            &[],
            t0(),
        );
        let text = serde_json::to_string(&digest).unwrap();
        let back: StatusDigest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, digest);
        assert_eq!(digest.problem(), None);
        let mut bad = digest;
        bad.namespaces[0].heat[0].members[0].0 = 1.5;
        assert!(bad.problem().unwrap().contains("intensity 1.5"));
    }
}
