//! Pure conversions: resources → the summaries handlers return, the sensed pheromone field, and
//! the Kubernetes naming rule.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kgents_core::decay::{self, EVAPORATION_THRESHOLD, HalfLife, Intensity};
use kgents_core::field::Signal;
use kgents_core::field::{PheromoneType, TypeSet};
use kgents_crds::proposal::RiskAssessment;
use kgents_crds::{Agent, Memory, Pheromone, PheromoneSignal, Proposal, Umwelt};
use kgents_ghost::AgentName;
use kgents_ghost::snapshot::{
    AgentStatus, AgentSummary, ConditionSummary, PheromoneSummary, ProposalSummary, RiskFactor,
};
use serde::{Deserialize, Serialize};

use crate::outcome::{
    FieldReport, HeatRow, MemorySummary, PheromoneRecord, ProposalRecord, SensedPheromone,
    UmweltSummary,
};
use crate::view::Source;

/// The name serde gives a unit enum variant (`RUNNING`, `AGENT_SCALE`), or `""`.
pub fn enum_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn replicas(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

/// An Agent's summary row; `None` when its name is not a valid agent name (never for objects the
/// API server stored).
pub fn agent_summary(agent: &Agent) -> Option<AgentSummary> {
    let name = AgentName::new(agent.metadata.name.clone()?).ok()?;
    let status = agent.status.as_ref();
    Some(AgentSummary {
        name,
        namespace: agent.metadata.namespace.clone().unwrap_or_default(),
        genus: enum_name(&agent.spec.genus),
        phase: status
            .and_then(|s| s.phase)
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "Pending".to_owned()),
        cognitive_health: status
            .and_then(|s| s.cognitive_health.as_ref())
            .map(enum_name)
            .unwrap_or_else(|| "UNKNOWN".to_owned()),
        ready_replicas: replicas(status.and_then(|s| s.ready_replicas)),
        replicas: u32::try_from(agent.spec.replicas).unwrap_or(0),
    })
}

/// An Agent's status with its conditions.
pub fn agent_status(agent: &Agent) -> Option<AgentStatus> {
    let summary = agent_summary(agent)?;
    let status = agent.status.as_ref();
    Some(AgentStatus {
        summary,
        conditions: status
            .map(|s| {
                s.conditions
                    .iter()
                    .map(|c| ConditionSummary {
                        condition_type: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        last_transition_time: Some(c.last_transition_time.0),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        last_probe_time: status.and_then(|s| s.last_probe.as_ref()).map(|p| p.time.0),
    })
}

/// A Pheromone as observed at `now` (intensity at `now`); `None` when its spec cannot be read as
/// a signal (the operator marks such objects; they do not decay meaningfully).
pub fn pheromone_record(pheromone: &Pheromone, now: Timestamp) -> Option<PheromoneRecord> {
    let signal = PheromoneSignal::try_from(pheromone).ok()?;
    let expires_at = signal
        .ttl()
        .and_then(|ttl| signal.emitted_at().checked_add(ttl).ok());
    Some(PheromoneRecord {
        summary: PheromoneSummary {
            name: pheromone.metadata.name.clone().unwrap_or_default(),
            namespace: pheromone.metadata.namespace.clone().unwrap_or_default(),
            pheromone_type: signal.pheromone_type(),
            source: signal.source().to_owned(),
            target: signal.target().map(str::to_owned),
            intensity: signal.intensity_at(now).get(),
            emitted_at: signal.emitted_at(),
            half_life_seconds: signal.half_life().as_seconds_f64(),
            expires_at,
        },
    })
}

/// A Proposal's record.
pub fn proposal_record(proposal: &Proposal) -> ProposalRecord {
    let status = proposal.status.as_ref();
    let risk = status.and_then(|s| s.risk_assessment.clone());
    let target = &proposal.spec.target;
    ProposalRecord {
        summary: ProposalSummary {
            name: proposal.metadata.name.clone().unwrap_or_default(),
            namespace: proposal.metadata.namespace.clone().unwrap_or_default(),
            proposer: proposal.spec.proposer.clone(),
            change_type: enum_name(&proposal.spec.change_type),
            target: match &target.namespace {
                Some(ns) => format!("{}/{ns}/{}", target.kind, target.name),
                None => format!("{}/{}", target.kind, target.name),
            },
            risk_score: risk.as_ref().map(|r| r.score).unwrap_or(0.0),
            risk_level: risk
                .as_ref()
                .map(|r| r.level.to_string())
                .unwrap_or_default(),
            phase: status
                .and_then(|s| s.phase)
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "Pending".to_owned()),
            created_at: proposal
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH),
            reason: status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Decided"))
                .map(|c| c.message.clone())
                .filter(|m| !m.is_empty()),
            risk_factors: risk.as_ref().map(risk_factors).unwrap_or_default(),
            patch: proposal
                .spec
                .patch
                .as_ref()
                .map(|p| format!("{}: {}", enum_name(&p.kind), p.content)),
        },
        risk,
        approvals: status
            .map(|s| s.approvals.iter().map(|a| a.approver.clone()).collect())
            .unwrap_or_default(),
        rejections: status
            .map(|s| s.rejections.iter().map(|r| r.rejector.clone()).collect())
            .unwrap_or_default(),
    }
}

/// The factors of an assessment, in the order of the formula
/// `clamp(base × size × tests × (1 + velocity) + cumulative, 0, 1)`.
pub fn risk_factors(risk: &RiskAssessment) -> Vec<RiskFactor> {
    let factor = |name: &str, value: f64, detail: String| RiskFactor {
        name: name.to_owned(),
        value,
        detail,
    };
    vec![
        factor("base", risk.base_risk, "the change type's base risk".into()),
        factor(
            "size",
            risk.size_factor,
            "× 1 + 0.1·log2(1 + lines + 10·files)".into(),
        ),
        factor(
            "tests",
            risk.test_factor,
            "× tests added lower it, removed raise it".into(),
        ),
        factor(
            "velocity",
            risk.velocity_penalty,
            format!(
                "× (1 + it): {} other proposals in the last hour",
                risk.recent_proposals
            ),
        ),
        factor(
            "cumulative",
            risk.cumulative_penalty,
            format!(
                "+ it: {} changes applied in the last 24 h",
                risk.applied_changes
            ),
        ),
    ]
}

/// A Memory's summary.
pub fn memory_summary(memory: &Memory) -> MemorySummary {
    let status = memory.status.as_ref();
    MemorySummary {
        name: memory.metadata.name.clone().unwrap_or_default(),
        namespace: memory.metadata.namespace.clone().unwrap_or_default(),
        owner: memory.spec.owner.clone(),
        memory_type: enum_name(&memory.spec.kind),
        size: memory.spec.size.0.clone(),
        retention: enum_name(&memory.spec.retention_policy),
        phase: status
            .and_then(|s| s.phase.as_ref())
            .map(enum_name)
            .unwrap_or_else(|| "Pending".to_owned()),
        pvc: status.and_then(|s| s.pvc_name.clone()),
    }
}

/// An Umwelt's summary.
pub fn umwelt_summary(umwelt: &Umwelt) -> UmweltSummary {
    UmweltSummary {
        name: umwelt.metadata.name.clone().unwrap_or_default(),
        namespace: umwelt.metadata.namespace.clone().unwrap_or_default(),
        agent: umwelt.spec.agent.clone(),
        affordances: umwelt.spec.affordances.clone(),
        service_account: umwelt
            .status
            .as_ref()
            .and_then(|s| s.service_account.clone()),
    }
}

/// Which signals a sense admits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenseFilter {
    /// Only these types (empty: every type).
    pub types: TypeSet,
    /// Only from this source.
    pub source: Option<String>,
    /// Only what this target senses: signals addressed to it and broadcasts.
    pub target: Option<String>,
}

impl SenseFilter {
    fn admits(&self, p: &PheromoneSummary) -> bool {
        (self.types.is_empty() || self.types.contains(p.pheromone_type))
            && self.source.as_deref().is_none_or(|s| s == p.source)
            && match (&self.target, &p.target) {
                (None, _) | (Some(_), None) => true,
                (Some(wanted), Some(actual)) => wanted == actual,
            }
    }
}

/// One stored pheromone summary and when its `intensity` was observed: the input of
/// [`sense_observed`]. Borrowed, so a cache can be sensed without copying what it holds.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The summary (its `intensity` as of `observed_at`).
    pub summary: &'a PheromoneSummary,
    /// When `summary.intensity` was observed.
    pub observed_at: Timestamp,
}

/// The field at `now` from records observed at `source.taken_at` (see [`sense_observed`]).
pub fn sense(
    records: Vec<PheromoneRecord>,
    filter: &SenseFilter,
    now: Timestamp,
    source: Source,
) -> FieldReport {
    let observed_at = source.taken_at;
    sense_observed(
        records.iter().map(|record| Observation {
            summary: &record.summary,
            observed_at,
        }),
        filter,
        now,
        source,
        None,
    )
}

/// A live signal of a sense in progress: borrowed until it is known to be listed.
struct Candidate<'a> {
    summary: &'a PheromoneSummary,
    intensity: f64,
    half_life: HalfLife,
    evaporates_in: Duration,
}

/// Strongest first; (namespace, name) is unique, so the order is total and unstable sorts and
/// selections are deterministic.
fn by_rank(a: &Candidate<'_>, b: &Candidate<'_>) -> std::cmp::Ordering {
    b.intensity
        .total_cmp(&a.intensity)
        .then_with(|| a.summary.namespace.cmp(&b.summary.namespace))
        .then_with(|| a.summary.name.cmp(&b.summary.name))
}

/// The field at `now`: each intensity decays from its observed value with the type's effective
/// half-life (DREAM doubled, kgents-core decay); an evaporated signal (below 0.01 or past its
/// TTL) is counted, not listed. Strongest first, ties by namespace and name; heat per type and
/// [`FieldReport::admitted`] over every live signal the filter admits, even when `limit` keeps
/// only the strongest few.
///
/// With a `limit` the strongest are selected before they are sorted (O(n + k log k)), and only
/// the listed signals' strings are copied: sensing a large cache for one page stays cheap.
pub fn sense_observed<'a>(
    observations: impl IntoIterator<Item = Observation<'a>>,
    filter: &SenseFilter,
    now: Timestamp,
    source: Source,
    limit: Option<usize>,
) -> FieldReport {
    let mut live = Vec::new();
    let mut evaporated = 0;
    for Observation {
        summary: p,
        observed_at,
    } in observations
    {
        if !filter.admits(p) {
            continue;
        }
        let Ok(base) = HalfLife::from_seconds(p.half_life_seconds) else {
            continue;
        };
        let half_life = decay::effective_half_life(p.pheromone_type, base);
        let observed = Intensity::clamped(p.intensity);
        let current = decay::intensity_at(observed, half_life, observed_at, now);
        let past_ttl = p.expires_at.is_some_and(|at| at <= now);
        if current.get() < EVAPORATION_THRESHOLD || past_ttl {
            evaporated += 1;
            continue;
        }
        let until_threshold =
            decay::time_until(current, half_life, Intensity::EVAPORATION_THRESHOLD)
                .unwrap_or(Duration::ZERO);
        let until_ttl = p
            .expires_at
            .map(|at| at.duration_since(now).unsigned_abs())
            .unwrap_or(Duration::MAX);
        live.push(Candidate {
            summary: p,
            intensity: current.get(),
            half_life,
            evaporates_in: until_threshold.min(until_ttl),
        });
    }
    let mut heat: BTreeMap<PheromoneType, HeatRow> = BTreeMap::new();
    for c in &live {
        let row = heat.entry(c.summary.pheromone_type).or_insert(HeatRow {
            pheromone_type: c.summary.pheromone_type,
            sum: 0.0,
            max: 0.0,
            count: 0,
        });
        row.sum += c.intensity;
        row.max = row.max.max(c.intensity);
        row.count += 1;
    }
    let admitted = live.len();
    match limit {
        Some(0) => live.clear(),
        Some(k) if k < live.len() => {
            live.select_nth_unstable_by(k - 1, by_rank);
            live.truncate(k);
        }
        _ => {}
    }
    live.sort_unstable_by(by_rank);
    let pheromones = live
        .into_iter()
        .map(|c| SensedPheromone {
            name: c.summary.name.clone(),
            namespace: c.summary.namespace.clone(),
            pheromone_type: c.summary.pheromone_type,
            source: c.summary.source.clone(),
            target: c.summary.target.clone(),
            intensity: c.intensity,
            emitted_at: c.summary.emitted_at,
            half_life_seconds: c.half_life.as_seconds_f64(),
            evaporates_in_seconds: c.evaporates_in.as_secs_f64(),
            expires_at: c.summary.expires_at,
        })
        .collect();
    FieldReport {
        at: now,
        pheromones,
        admitted,
        heat: heat.into_values().collect(),
        evaporated,
        source,
    }
}

/// A line of the thought stream: an `events.k8s.io` Event about a kgents object (or a log line
/// of an agent). The Cortex sends it in `Observe`; the Terrarium shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thought {
    /// When it happened.
    pub at: Timestamp,
    /// The namespace.
    pub namespace: String,
    /// What it is about, as `Kind/name`.
    pub object: String,
    /// The agent it counts as activity for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A short machine reason (`Applied`, `ProbeFailed`, `log`).
    pub reason: String,
    /// The text (one line).
    pub text: String,
    /// A warning (shown highlighted).
    pub warning: bool,
}

/// A thought from an `events.k8s.io` Event about a kgents object; `None` for Events of other
/// objects, or with no time at all.
pub fn thought_of(event: &KubeEvent) -> Option<Thought> {
    let regarding = event.regarding.as_ref()?;
    if !regarding
        .api_version
        .as_deref()
        .is_some_and(|v| v.starts_with("kgents.io/"))
    {
        return None;
    }
    let kind = regarding.kind.clone().unwrap_or_default();
    let name = regarding.name.clone().unwrap_or_default();
    let at = event
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.series.as_ref().map(|s| s.last_observed_time.0))
        .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    Some(Thought {
        at,
        namespace: regarding
            .namespace
            .clone()
            .or_else(|| event.metadata.namespace.clone())
            .unwrap_or_default(),
        agent: (kind == "Agent").then(|| name.clone()),
        object: format!("{kind}/{name}"),
        reason: event.reason.clone().unwrap_or_default(),
        text: event.note.clone().unwrap_or_default().replace('\n', " "),
        warning: event.type_.as_deref() == Some("Warning"),
    })
}

/// The Kubernetes object-name rule (RFC 1123 subdomain) quoted in errors.
pub const NAME_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
    (at most 253 characters)";

/// Checks an object name against [`NAME_RULE`]; the error names the kind and quotes the rule.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(format!("{kind} name {name:?} is invalid: {NAME_RULE}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        name: &str,
        kind: PheromoneType,
        intensity: f64,
        target: Option<&str>,
    ) -> PheromoneRecord {
        PheromoneRecord {
            summary: PheromoneSummary {
                name: name.into(),
                namespace: "team".into(),
                pheromone_type: kind,
                source: "a-gent".into(),
                target: target.map(str::to_owned),
                intensity,
                emitted_at: Timestamp::from_second(1_800_000_000).unwrap(),
                half_life_seconds: 600.0,
                expires_at: None,
            },
        }
    }

    #[test]
    fn sensing_decays_from_the_observation_and_ranks() {
        let observed = Timestamp::from_second(1_800_000_000).unwrap();
        let now = observed + jiff::SignedDuration::from_mins(10);
        let records = vec![
            record("w", PheromoneType::Warning, 0.8, None),
            record("d", PheromoneType::Dream, 0.8, Some("b-gent")),
            record("faint", PheromoneType::Warning, 0.015, None),
            record("other", PheromoneType::Warning, 0.9, Some("c-gent")),
        ];
        let source = Source::live("memory", observed);
        let report = sense(
            records,
            &SenseFilter {
                target: Some("b-gent".into()),
                ..SenseFilter::default()
            },
            now,
            source,
        );
        let names: Vec<_> = report.pheromones.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["d", "w"], "c-gent's signal is not sensed by b-gent");
        assert!((report.pheromones[1].intensity - 0.4).abs() < 1e-9);
        // DREAM decays with twice the half-life.
        assert!((report.pheromones[0].intensity - 0.8 * 0.5f64.powf(0.5)).abs() < 1e-9);
        assert_eq!(report.evaporated, 1);
        // 0.4 → 0.01 takes log2(40) half-lives.
        let expected = 600.0 * 40f64.log2();
        assert!((report.pheromones[1].evaporates_in_seconds - expected).abs() < 1e-3);
        let warning = report
            .heat
            .iter()
            .find(|h| h.pheromone_type == PheromoneType::Warning)
            .unwrap();
        assert_eq!(warning.count, 1);
    }

    proptest::proptest! {
        /// Sensing with a limit lists exactly the strongest `limit` of what sensing everything
        /// lists, in the same order, and counts (and heats) every admitted signal either way.
        #[test]
        fn a_limit_keeps_the_strongest_of_the_full_ranking(
            signals in proptest::collection::vec((0usize..4, 0u8..101, 0i64..3_600, 0u8..3), 0..60),
            limit in 0usize..70,
            elapsed in 0i64..7_200,
        ) {
            let types = [PheromoneType::Warning, PheromoneType::Dream, PheromoneType::Intent, PheromoneType::State];
            let base = Timestamp::from_second(1_800_000_000).unwrap();
            let records: Vec<PheromoneRecord> = signals
                .iter()
                .enumerate()
                .map(|(i, &(kind, intensity, age, target))| {
                    let mut r = record(&format!("p{i:03}"), types[kind], f64::from(intensity) / 100.0, None);
                    r.summary.emitted_at = base - jiff::SignedDuration::from_secs(age);
                    r.summary.target = (target > 0).then(|| format!("t{target}"));
                    r.summary.expires_at = (age % 3 == 0).then(|| base + jiff::SignedDuration::from_secs(age));
                    r
                })
                .collect();
            // Observations at different times (as a watch cache holds them).
            let observed: Vec<Timestamp> = signals
                .iter()
                .map(|&(_, _, age, _)| base - jiff::SignedDuration::from_secs(age / 2))
                .collect();
            let now = base + jiff::SignedDuration::from_secs(elapsed);
            let filter = SenseFilter { target: Some("t1".into()), ..SenseFilter::default() };
            let observations = || {
                records.iter().zip(&observed).map(|(r, &at)| Observation { summary: &r.summary, observed_at: at })
            };
            let source = Source::live("memory", base);
            let all = sense_observed(observations(), &filter, now, source.clone(), None);
            let top = sense_observed(observations(), &filter, now, source, Some(limit));
            proptest::prop_assert_eq!(all.admitted, all.pheromones.len());
            proptest::prop_assert_eq!(top.admitted, all.admitted);
            proptest::prop_assert_eq!(&top.heat, &all.heat);
            proptest::prop_assert_eq!(top.evaporated, all.evaporated);
            // A sensed signal's record, sensed again at the same instant, is the same signal.
            for sensed in &top.pheromones {
                let record = sensed.record();
                let again = sense(vec![record], &SenseFilter::default(), now, Source::live("memory", now));
                proptest::prop_assert_eq!(again.pheromones.len(), 1);
                let again = &again.pheromones[0];
                proptest::prop_assert!((again.intensity - sensed.intensity).abs() < 1e-12);
                proptest::prop_assert!((again.half_life_seconds - sensed.half_life_seconds).abs() < 1e-9);
                proptest::prop_assert_eq!(again.expires_at, sensed.expires_at);
            }
            let expected: Vec<_> = all.pheromones.iter().take(limit).collect();
            let listed: Vec<_> = top.pheromones.iter().collect();
            proptest::prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn only_events_of_kgents_objects_are_thoughts() {
        let event = |api: &str| -> KubeEvent {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "e", "namespace": "team", "creationTimestamp": "2027-01-15T12:00:00Z"},
                "eventTime": "2027-01-15T12:00:01.000000Z",
                "regarding": {"apiVersion": api, "kind": "Agent", "name": "b-gent", "namespace": "team"},
                "reason": "ProbeFailed", "note": "no answer\nwithin 30 s", "type": "Warning",
                "reportingController": "x", "reportingInstance": "y", "action": "Probe"
            }))
            .expect("an Event")
        };
        let thought = thought_of(&event("kgents.io/v1")).expect("a thought");
        assert_eq!(thought.object, "Agent/b-gent");
        assert_eq!(thought.agent.as_deref(), Some("b-gent"));
        assert!(thought.warning);
        assert_eq!(thought.text, "no answer within 30 s");
        assert!(thought_of(&event("v1")).is_none());
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(check_name("Agent", "b-gent").is_ok());
        assert!(check_name("Agent", "a.b-c1").is_ok());
        for bad in ["", "B-gent", "-a", "a-", "a_b", &"a".repeat(254)] {
            let err = check_name("Agent", bad).unwrap_err();
            assert!(err.contains("RFC 1123"), "{err}");
        }
    }
}
