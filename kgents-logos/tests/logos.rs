//! The Logos' contracts: properties over the registry and arbitrary paths, and each handler on
//! an in-memory cluster and on ghost snapshots.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kgents_core::agentese::{Affordances, Aspect, K8sOperation, Path, Registry};
use kgents_core::clock::ManualClock;
use kgents_core::field::PheromoneType;
use kgents_crds::{Agent, Pheromone, Proposal, Umwelt};
use kgents_ghost::digest::StatusDigest;
use kgents_ghost::snapshot::{
    AgentSummary, AgentsIndex, PheromoneSummary, ProposalList, ProposalSummary,
};
use kgents_ghost::{AgentName, GhostStore, InMemoryGhostStore, Payload, Snapshot};
use kgents_logos::ghost::cache_only;
use kgents_logos::logos::{DefineInput, EmitInput, SenseInput, handler_for};
use kgents_logos::outcome::ServerVerdict;
use kgents_logos::{
    Args, Caller, ClusterView, Error, ErrorKind, GhostView, Logos, MemoryCluster, Outcome, Scope,
};
use proptest::prelude::*;
use serde_json::json;

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn cluster(clock: Arc<ManualClock>) -> Arc<MemoryCluster> {
    Arc::new(MemoryCluster::new("alice", clock))
}

fn agent(ns: &str, name: &str, phase: &str, ready: i32) -> Agent {
    serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"genus": "B", "replicas": 1},
        "status": {"phase": phase, "readyReplicas": ready, "cognitiveHealth": "HEALTHY"},
    }))
    .unwrap()
}

fn pheromone(ns: &str, name: &str, kind: &str, intensity: f64, at: Timestamp) -> Pheromone {
    serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Pheromone",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": at.to_string()},
        "spec": {"type": kind, "source": "a-gent", "initialIntensity": intensity, "halfLifeMinutes": 10.0},
    }))
    .unwrap()
}

fn logos(cluster: &Arc<MemoryCluster>, clock: Arc<ManualClock>) -> Logos {
    Logos::new(cluster.clone(), Some(cluster.clone())).with_clock(clock)
}

fn ns(name: &str) -> Scope {
    Scope::Namespace(name.to_owned())
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Operations whose handlers arrive with later crates (none left: every seed path is served).
fn served_later(op: K8sOperation) -> bool {
    let _ = op;
    false
}

#[test]
fn every_registered_path_has_a_handler_and_resolves_to_it() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    let logos = logos(&cluster, clock);
    let caller = Caller::unrestricted("alice");
    for entry in Registry::seed().entries() {
        let bindings: Vec<(&str, &str)> = entry
            .template()
            .placeholders()
            .map(|n| (n, "x-gent"))
            .collect();
        let path = entry.template().instantiate(&bindings).unwrap().to_string();
        let served = handler_for(entry.operation()).is_some();
        assert_eq!(served, !served_later(entry.operation()), "{path}");
        let result = run(logos.invoke(&caller, &path, Args::new(ns("team"))));
        match result {
            Err(Error::UnknownPath { .. } | Error::BadPath { .. } | Error::Denied { .. }) => {
                panic!("{path} did not reach a handler: {result:?}")
            }
            // replay is served from a witness store, and this Logos was given none
            Err(Error::NotServed { operation, .. })
                if entry.operation() == K8sOperation::ReconstructHistory =>
            {
                assert!(
                    operation.contains("no witness store configured"),
                    "{operation}"
                )
            }
            Err(Error::NotServed { .. }) => assert!(!served, "{path}"),
            _ => assert!(served, "{path}: {result:?}"),
        }
    }
}

fn path_text() -> impl Strategy<Value = String> {
    let context = prop::sample::select(vec!["world", "self", "void", "time", "concept"]);
    let segment = prop::sample::select(vec![
        "cluster",
        "agents",
        "b-gent",
        "pheromone",
        "deployment",
        "proposals",
        "memories",
        "umwelts",
        "witness",
        "workflow",
        "x",
    ]);
    let aspect = prop::option::of(prop::sample::select(Aspect::ALL.to_vec()));
    (context, prop::collection::vec(segment, 1..5), aspect).prop_map(|(c, segs, aspect)| {
        let mut text = format!("{c}.{}", segs.join("."));
        if let Some(a) = aspect {
            text.push('.');
            text.push_str(a.as_str());
        }
        text
    })
}

fn glob_text() -> impl Strategy<Value = String> {
    let element = prop::sample::select(vec![
        "*",
        "world",
        "void",
        "self",
        "cluster",
        "agents",
        "pheromone",
        "manifest",
        "sense",
        "emit",
    ]);
    prop::collection::vec(element, 1..5).prop_map(|e| e.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Routing is total: every parseable path either reaches a handler, or is a registered path
    /// served elsewhere, or is unknown with suggestions taken from the registry; exactly as the
    /// registry says.
    #[test]
    fn routing_is_total(text in path_text()) {
        let Ok(path) = Path::parse(&text) else { return Ok(()); };
        let clock = Arc::new(ManualClock::new(t0()));
        let cluster = cluster(clock.clone());
        let logos = logos(&cluster, clock);
        let registry = Registry::seed();
        let templates: Vec<String> = registry.entries().iter().map(|e| e.template().to_string()).collect();
        let result = run(logos.invoke(&Caller::unrestricted("alice"), &text, Args::new(ns("team"))));
        match registry.by_path(&path) {
            None => match result {
                Err(Error::UnknownPath { suggestions, .. }) => {
                    prop_assert!(!suggestions.is_empty());
                    for s in &suggestions {
                        prop_assert!(templates.contains(s), "{} is not registered", s);
                    }
                }
                other => prop_assert!(false, "{}: {:?}", text, other),
            },
            Some(found) => {
                // Replay is served from a witness store, and this Logos was given none.
                let op = found.entry.operation();
                let later = served_later(op) || op == K8sOperation::ReconstructHistory;
                let not_served = matches!(result, Err(Error::NotServed { .. }));
                prop_assert_eq!(later, not_served, "{}: {:?}", text, result);
                let misrouted = matches!(result, Err(Error::UnknownPath { .. } | Error::Denied { .. }));
                prop_assert!(!misrouted, "{}: {:?}", text, result);
            }
        }
    }

    /// Deny by default: a restricted caller reaches nothing its globs do not match, registered or
    /// not, and the denial lists its globs.
    #[test]
    fn deny_by_default(text in path_text(), globs in prop::collection::vec(glob_text(), 0..4)) {
        let Ok(path) = Path::parse(&text) else { return Ok(()); };
        let Ok(affordances) = Affordances::parse_all(globs.iter().map(String::as_str)) else { return Ok(()); };
        let allowed = affordances.allows(&path);
        let caller = Caller::restricted("agent b-gent", "team/b-view", affordances.clone());
        let clock = Arc::new(ManualClock::new(t0()));
        let cluster = cluster(clock.clone());
        let logos = logos(&cluster, clock);
        let result = run(logos.invoke(&caller, &text, Args::new(ns("team"))));
        if allowed {
            prop_assert!(!matches!(result, Err(Error::Denied { .. })), "{}: {:?}", text, result);
        } else {
            match result {
                Err(Error::Denied { globs: listed, .. }) => {
                    let expected: Vec<String> = affordances.globs().iter().map(ToString::to_string).collect();
                    prop_assert_eq!(listed, expected);
                }
                other => prop_assert!(false, "{} should be denied: {:?}", text, other),
            }
        }
    }
}

#[test]
fn bad_and_unknown_paths_are_usage_errors_with_suggestions() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    let logos = logos(&cluster, clock);
    let caller = Caller::unrestricted("alice");
    let err = run(logos.invoke(&caller, "mars.cluster", Args::new(Scope::All))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    let err = run(logos.invoke(&caller, "void.pheromon.sense", Args::new(Scope::All))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(
        err.to_string()
            .contains("did you mean void.pheromone.sense"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Handlers on the in-memory cluster

#[test]
fn agents_manifest_counts_phases_health_and_readiness() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    cluster.add_agent(agent("team", "b-gent", "Running", 1));
    cluster.add_agent(agent("team", "a-gent", "Pending", 0));
    cluster.add_agent(agent("other", "c-gent", "Running", 1));
    let logos = logos(&cluster, clock);
    let caller = Caller::unrestricted("alice");
    let Outcome::Agents(m) = run(logos.invoke(
        &caller,
        "world.cluster.agents.manifest",
        Args::new(ns("team")),
    ))
    .unwrap() else {
        panic!("not agents")
    };
    let names: Vec<_> = m.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a-gent", "b-gent"]);
    assert_eq!(m.ready, 1);
    assert_eq!(m.by_phase.get("Running"), Some(&1));
    assert_eq!(m.by_health.get("HEALTHY"), Some(&2));
    let Outcome::Agents(all) = run(logos.invoke(
        &caller,
        "world.cluster.agents.manifest",
        Args::new(Scope::All),
    ))
    .unwrap() else {
        panic!()
    };
    assert_eq!(all.agents.len(), 3);

    let Outcome::Agent(one) = run(logos.invoke(
        &caller,
        "world.cluster.agents.b-gent.manifest",
        Args::new(ns("team")),
    ))
    .unwrap() else {
        panic!()
    };
    assert_eq!(one.agent.summary.phase, "Running");
    let missing = run(logos.invoke(
        &caller,
        "world.cluster.agents.z-gent.manifest",
        Args::new(ns("team")),
    ))
    .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[test]
fn sense_decays_to_now_and_emit_creates() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    cluster.add_pheromone(pheromone("team", "w1", "WARNING", 1.0, t0()));
    cluster.add_pheromone(pheromone(
        "team",
        "old",
        "WARNING",
        0.5,
        t0() - SignedDuration::from_hours(5),
    ));
    let logos = logos(&cluster, clock.clone());
    clock.set(t0() + SignedDuration::from_mins(10));
    let caller = Caller::unrestricted("alice");
    let Outcome::Sensed(field) =
        run(logos.invoke(&caller, "void.pheromone.sense", Args::new(ns("team")))).unwrap()
    else {
        panic!()
    };
    assert_eq!(field.pheromones.len(), 1);
    assert!(
        (field.pheromones[0].intensity - 0.5).abs() < 1e-9,
        "{:?}",
        field.pheromones[0]
    );
    assert_eq!(field.evaporated, 1);
    assert_eq!(field.heat[0].pheromone_type, PheromoneType::Warning);

    let input = EmitInput {
        pheromone_type: Some(PheromoneType::Intent),
        source: Some("b-gent".into()),
        intensity: 0.8,
        ..EmitInput::default()
    };
    let Outcome::Emitted(emitted) = run(logos.invoke(
        &caller,
        "void.pheromone.emit",
        Args::new(ns("team")).with_input(&input),
    ))
    .unwrap() else {
        panic!()
    };
    assert!(
        emitted.name.starts_with("b-gent-intent-"),
        "{}",
        emitted.name
    );
    assert!(emitted.evaporates_at.is_some());
    assert_eq!(cluster.pheromones().len(), 3);

    let only_intent = SenseInput {
        types: vec![PheromoneType::Intent],
        ..SenseInput::default()
    };
    let Outcome::Sensed(field) = run(logos.invoke(
        &caller,
        "void.pheromone.sense",
        Args::new(ns("team")).with_input(&only_intent),
    ))
    .unwrap() else {
        panic!()
    };
    assert_eq!(field.pheromones.len(), 1);
    assert!((field.pheromones[0].intensity - 0.8).abs() < 1e-9);

    for bad in [
        json!({"pheromoneType": "INTENT", "source": "b-gent", "intensity": 1.5}),
        json!({"pheromone_type": "INTENT", "source": "B_gent"}),
        json!({"pheromone_type": "INTENT", "source": "b-gent", "half_life_minutes": 0.0}),
        json!({"source": "b-gent"}),
    ] {
        let args = Args {
            input: bad.clone(),
            ..Args::new(ns("team"))
        };
        let err = run(logos.invoke(&caller, "void.pheromone.emit", args)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{bad}: {err}");
    }
    let err = run(logos.invoke(
        &caller,
        "void.pheromone.emit",
        Args::new(Scope::All).with_input(&input),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("-n NAMESPACE"), "{err}");
}

fn spec(change_type: &str, kind: &str) -> kgents_crds::ProposalSpec {
    serde_json::from_value(json!({
        "proposer": "",
        "changeType": change_type,
        "target": {"apiVersion": "kgents.io/v1", "kind": kind, "name": "b-gent"},
    }))
    .unwrap()
}

#[test]
fn define_previews_risk_then_files_or_shows_the_denial() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    let logos = logos(&cluster, clock);
    let caller = Caller::unrestricted("alice");

    let low = DefineInput {
        spec: Some(spec("AGENT_SCALE", "Agent")),
        ..DefineInput::default()
    };
    let Outcome::Filed(filed) = run(logos.invoke(
        &caller,
        "self.deployment.define",
        Args::new(ns("team")).with_input(&low),
    ))
    .unwrap() else {
        panic!()
    };
    assert!(filed.preview.allowed, "{:?}", filed.preview);
    assert!(filed.preview.risk.is_some());
    assert_eq!(filed.preview.requester, "alice");
    assert!(
        matches!(filed.server, ServerVerdict::Admitted { .. }),
        "{:?}",
        filed.server
    );
    assert_eq!(cluster.proposals().len(), 1);
    assert_eq!(cluster.proposals()[0].spec.proposer, "alice");

    // A forbidden target: the preview says why, nothing is sent; a dry run shows the server's no.
    let bad = DefineInput {
        spec: Some(spec("CONFIG_UPDATE", "Secret")),
        ..DefineInput::default()
    };
    let Outcome::Filed(filed) = run(logos.invoke(
        &caller,
        "self.deployment.define",
        Args::new(ns("team")).with_input(&bad),
    ))
    .unwrap() else {
        panic!()
    };
    assert!(!filed.preview.allowed);
    assert!(!filed.preview.reasons.is_empty());
    assert_eq!(filed.server, ServerVerdict::NotSent);
    let dry = DefineInput {
        dry_run: true,
        ..bad
    };
    let Outcome::Filed(filed) = run(logos.invoke(
        &caller,
        "self.deployment.define",
        Args::new(ns("team")).with_input(&dry),
    ))
    .unwrap() else {
        panic!()
    };
    assert!(
        matches!(filed.server, ServerVerdict::Denied { code: 403, .. }),
        "{:?}",
        filed.server
    );
    assert_eq!(cluster.proposals().len(), 1, "nothing stored");

    let missing = DefineInput::default();
    let err = run(logos.invoke(
        &caller,
        "self.deployment.define",
        Args::new(ns("team")).with_input(&missing),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
}

#[test]
fn approve_and_reject_record_the_authenticated_caller() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    let proposal: Proposal = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": "scale-b", "namespace": "team"},
        "spec": {"proposer": "bob", "changeType": "AGENT_SCALE",
            "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b-gent"}},
    }))
    .unwrap();
    cluster.add_proposal(proposal);
    let logos = logos(&cluster, clock);
    let caller = Caller::unrestricted("alice");
    let args = Args::new(ns("team")).with_input(&json!({"comment": "fine"}));
    let Outcome::Decided(d) =
        run(logos.invoke(&caller, "world.cluster.proposals.scale-b.approve", args)).unwrap()
    else {
        panic!()
    };
    assert!(d.approved);
    assert_eq!(d.by, "alice");
    let Outcome::Decided(d) = run(logos.invoke(
        &caller,
        "world.cluster.proposals.scale-b.reject",
        Args::new(ns("team")),
    ))
    .unwrap() else {
        panic!()
    };
    assert!(!d.approved);
    let status = cluster.proposals()[0].status.clone().unwrap();
    assert_eq!(status.approvals[0].approver, "alice");
    assert_eq!(status.rejections[0].rejector, "alice");
    let err = run(logos.invoke(
        &caller,
        "world.cluster.proposals.nope.approve",
        Args::new(ns("team")),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn an_agents_umwelt_restricts_what_it_may_invoke() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    let umwelt: Umwelt = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Umwelt",
        "metadata": {"name": "b-view", "namespace": "team"},
        "spec": {"agent": "b-gent", "affordances": ["void.pheromone.sense"]},
    }))
    .unwrap();
    cluster.add_umwelt(umwelt);
    cluster.add_agent(agent("team", "b-gent", "Running", 1));
    let caller = run(kgents_logos::live::agent_caller(
        cluster.as_ref(),
        "team",
        "b-gent",
    ))
    .unwrap();
    let logos = logos(&cluster, clock);
    assert!(run(logos.invoke(&caller, "void.pheromone.sense", Args::new(ns("team")))).is_ok());
    let err =
        run(logos.invoke(&caller, "self.deployment.define", Args::new(ns("team")))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    assert!(err.to_string().contains("void.pheromone.sense"), "{err}");

    let report = run(logos.status(&caller, ns("team")));
    assert!(report.field.is_some());
    assert!(report.agents.is_none() && report.pending.is_none());
    assert_eq!(report.problems.len(), 2);
    assert_eq!(report.worst, Some(ErrorKind::Denied));
}

// ---------------------------------------------------------------------------------------------
// Handlers on ghost snapshots

#[test]
fn handlers_read_ghost_snapshots_with_their_age() {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = Arc::new(InMemoryGhostStore::new());
    let taken = t0() - SignedDuration::from_secs(45);
    store
        .write(&Snapshot::new(
            taken,
            Payload::AgentsIndex(AgentsIndex {
                agents: vec![AgentSummary {
                    name: AgentName::new("b-gent").unwrap(),
                    namespace: "team".into(),
                    genus: "B".into(),
                    phase: "Running".into(),
                    cognitive_health: "HEALTHY".into(),
                    ready_replicas: 1,
                    replicas: 1,
                }],
            }),
        ))
        .unwrap();
    store
        .write(&Snapshot::new(
            taken,
            Payload::ActivePheromones(kgents_ghost::snapshot::ActivePheromones {
                pheromones: vec![PheromoneSummary {
                    name: "w1".into(),
                    namespace: "team".into(),
                    pheromone_type: PheromoneType::Warning,
                    source: "a-gent".into(),
                    target: None,
                    intensity: 0.6,
                    emitted_at: taken - SignedDuration::from_mins(5),
                    half_life_seconds: 45.0,
                    expires_at: None,
                }],
            }),
        ))
        .unwrap();
    store
        .write(&Snapshot::new(
            taken,
            Payload::PendingProposals(ProposalList {
                proposals: vec![ProposalSummary {
                    name: "scale-b".into(),
                    namespace: "team".into(),
                    proposer: "bob".into(),
                    change_type: "AGENT_SCALE".into(),
                    target: "Agent/b-gent".into(),
                    risk_score: 0.3,
                    risk_level: "MEDIUM".into(),
                    phase: "Reviewing".into(),
                    created_at: taken,
                    reason: None,
                    risk_factors: Vec::new(),
                    patch: None,
                }],
            }),
        ))
        .unwrap();
    store
        .write(&Snapshot::new(
            taken,
            Payload::ClusterStatus(kgents_ghost::snapshot::ClusterStatus {
                nodes_ready: 2,
                nodes_total: 3,
                ..Default::default()
            }),
        ))
        .unwrap();
    let view = GhostView::new(cache_only(store.clone(), clock.clone()), None);
    let logos = Logos::new(Arc::new(view), None).with_clock(clock.clone());
    let caller = Caller::unrestricted("alice");
    // No digest cached: the status is read part by part from the snapshots.
    let report = run(logos.status(&caller, Scope::All));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.cluster.unwrap().nodes_ready, 2);
    let agents = report.agents.unwrap();
    assert_eq!((agents.counts.total, agents.counts.ready), (1, 1));
    assert!(!agents.source.live);
    assert_eq!(agents.source.layer, "ghost-cache");
    assert!(
        (agents.source.age_seconds - 45.0).abs() < 1.0,
        "{:?}",
        agents.source
    );
    // Decay continues from the snapshot: one 45 s half-life later the 0.6 signal is at 0.3.
    let field = report.field.unwrap();
    assert_eq!(field.heat.live, 1);
    assert!((field.heat.heat[0].sum - 0.3).abs() < 1e-6, "{field:?}");
    assert_eq!(report.pending.unwrap().proposals[0].name, "scale-b");

    // A digest of the same rows answers the same, from one file.
    let rows = |query: kgents_ghost::Query| match store.read(&query.into()) {
        kgents_ghost::Lookup::Hit(snapshot) => snapshot.payload,
        other => panic!("{other:?}"),
    };
    let (
        Payload::AgentsIndex(index),
        Payload::ActivePheromones(active),
        Payload::PendingProposals(list),
    ) = (
        rows(kgents_ghost::Query::AgentsIndex),
        rows(kgents_ghost::Query::ActivePheromones),
        rows(kgents_ghost::Query::PendingProposals),
    )
    else {
        panic!("the snapshots written above");
    };
    // One agent more in the digest than in the index: the count says which was read.
    let mut agents = index.agents.clone();
    agents.push(AgentSummary {
        name: AgentName::new("c-gent").unwrap(),
        ..agents[0].clone()
    });
    let digest = StatusDigest::build(&agents, &active.pheromones, &list.proposals, taken);
    store
        .write(&Snapshot::new(taken, Payload::StatusDigest(digest)))
        .unwrap();
    let from_digest = run(logos.status(&caller, Scope::All));
    assert!(
        from_digest.problems.is_empty(),
        "{:?}",
        from_digest.problems
    );
    assert_eq!(from_digest.agents.as_ref().unwrap().counts.total, 2);
    let field = from_digest.field.unwrap();
    assert!((field.heat.heat[0].sum - 0.3).abs() < 1e-6, "{field:?}");
    assert!((field.source.age_seconds - 45.0).abs() < 1.0);
    assert_eq!(from_digest.pending.unwrap().proposals[0].name, "scale-b");
    let elsewhere = run(logos.status(&caller, ns("elsewhere")));
    assert_eq!(elsewhere.agents.unwrap().counts.total, 0);

    // What the cache cannot serve is refused as bad input, not invented.
    let err = run(logos.invoke(
        &caller,
        "world.cluster.memories.manifest",
        Args::new(Scope::All),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    // Writes need a writer.
    let err = run(logos.invoke(&caller, "void.pheromone.emit", Args::new(ns("team")))).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
}

#[test]
fn an_empty_cache_is_unavailable() {
    let clock = Arc::new(ManualClock::new(t0()));
    let view = GhostView::new(
        cache_only(Arc::new(InMemoryGhostStore::new()), clock.clone()),
        None,
    );
    let err = run(view.agents(&kgents_logos::Filter::scope(Scope::All))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// An API layer that is reached but refuses (as RBAC refuses a cluster-wide list).
struct Refusing;

#[async_trait::async_trait]
impl kgents_ghost::Layer for Refusing {
    fn name(&self) -> &str {
        "kubernetes"
    }
    fn is_live(&self) -> bool {
        true
    }
    async fn fetch(&self, _: &kgents_ghost::Query) -> Result<Snapshot, kgents_ghost::LayerError> {
        Err(kgents_ghost::LayerError::Failed(
            "forbidden: list agents at the cluster scope".into(),
        ))
    }
}

#[test]
fn a_refused_cluster_wide_read_falls_back_to_the_namespace() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    cluster.add_agent(agent("team", "b-gent", "Running", 1));
    let chain = cache_only(Arc::new(InMemoryGhostStore::new()), clock.clone())
        .with_layer(Refusing, std::time::Duration::from_secs(1));
    let view = GhostView::new(chain, Some(cluster.clone()));
    let filter = |scope| kgents_logos::Filter::scope(scope);
    let namespaced = run(view.agents(&filter(ns("team")))).unwrap();
    assert_eq!(namespaced.data.len(), 1);
    assert!(namespaced.source.live);
    // Cluster-wide, there is nothing narrower to try: the chain's error stands.
    assert!(run(view.agents(&filter(Scope::All))).is_err());
}

#[test]
fn workflow_define_refuses_cycles_and_unknown_paths_naming_the_step() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    let logos = logos(&cluster, clock);
    let caller = Caller::unrestricted("alice");
    let file = serde_json::json!({"proposer": "p", "changeType": "CODE_PATCH",
                                  "target": {"kind": "File", "name": "x.rs"}});
    let define = |input: serde_json::Value| {
        run(logos.invoke(
            &caller,
            "world.cluster.workflow.define",
            Args::new(ns("team")).with_input(&input),
        ))
    };
    let cycle = define(serde_json::json!({"name": "loop", "spec": {"steps": [
        {"name": "a", "proposal": file, "dependsOn": ["b"]},
        {"name": "b", "proposal": file, "dependsOn": ["a"]},
    ]}}));
    match cycle {
        Err(Error::BadInput { reason, .. }) => {
            assert!(
                reason.contains("step \"a\"") && reason.contains("cycle"),
                "{reason}"
            );
        }
        other => panic!("a cycle was not refused: {other:?}"),
    }
    let unknown = define(
        serde_json::json!({"name": "w", "spec": {"umwelt": "u", "steps": [
            {"name": "smell", "path": "void.pheromone.smell"},
        ]}}),
    );
    assert!(
        matches!(&unknown, Err(Error::BadInput { reason, .. }) if reason.contains("step \"smell\"")),
        "{unknown:?}"
    );
    let unnamed = define(serde_json::json!({"spec": {"steps": [{"name": "a", "proposal": file}]}}));
    assert!(
        matches!(&unnamed, Err(Error::BadInput { reason, .. }) if reason.contains("name is required")),
        "{unnamed:?}"
    );
    // A valid one reaches the writer; this in-memory one says it cannot store Workflows.
    let valid = define(
        serde_json::json!({"name": "w", "spec": {"steps": [{"name": "a", "proposal": file}]}}),
    );
    assert!(
        matches!(&valid, Err(Error::BadInput { reason, .. }) if reason.contains("cannot store Workflows")),
        "{valid:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// time.witness.<agent>.replay

#[test]
fn replay_rebuilds_an_agent_from_the_witness_store_and_explains_bad_input() {
    use kgents_seance::{AgentRef, NewRecord, RecordKind, RedbWitnessStore, WitnessStore};
    let dir = tempfile::tempdir().unwrap();
    let store = RedbWitnessStore::open(&dir.path().join("witness.redb")).unwrap();
    let b = AgentRef::new("team", "b-gent");
    let at = |s: i64| t0() + jiff::SignedDuration::from_secs(s);
    let record = |s: i64, kind: RecordKind| NewRecord {
        agent: b.clone(),
        at: at(s),
        kind,
    };
    run(store.append(vec![
        record(
            0,
            RecordKind::SpecChanged {
                generation: Some(1),
                diff: serde_json::json!([{"op": "replace", "path": "", "value": {"replicas": 1}}]),
            },
        ),
        record(
            10,
            RecordKind::SpecChanged {
                generation: Some(2),
                diff: serde_json::json!([{"op": "replace", "path": "/replicas", "value": 3}]),
            },
        ),
        record(20, RecordKind::Deleted),
    ]))
    .unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let cluster = cluster(clock.clone());
    let logos = logos(&cluster, clock).with_witness(Arc::new(store));
    let caller = Caller::unrestricted("alice");
    let replay = |name: &str, input: serde_json::Value| {
        run(logos.invoke(
            &caller,
            &format!("time.witness.{name}.replay"),
            Args::new(ns("team")).with_input(&input),
        ))
    };

    let Outcome::Replay(r) = replay("b-gent", serde_json::json!({"at": at(15)})).unwrap() else {
        panic!("not a replay")
    };
    assert_eq!(r.state.spec, serde_json::json!({"replicas": 3}));
    assert!(r.state.exists);
    assert_eq!((r.records, r.history_starts), (2, t0()));
    assert!(r.steps.is_empty());

    let Outcome::Replay(r) =
        replay("b-gent", serde_json::json!({"step": true, "reverse": true})).unwrap()
    else {
        panic!("not a replay")
    };
    assert!(!r.state.exists);
    let kinds: Vec<&str> = r.steps.iter().map(|s| s.record.kind.name()).collect();
    assert_eq!(kinds, ["deleted", "specChanged", "specChanged"]);
    assert_eq!(
        r.steps[1].diff,
        serde_json::json!([
            {"op": "replace", "path": "/generation", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 3}
        ])
    );

    // an unknown agent: the recorded ones closest to it are named
    let e = replay("b-gnet", serde_json::Value::Null).unwrap_err();
    assert!(matches!(e, Error::NoHistory { .. }), "{e:?}");
    assert!(e.to_string().contains("closest to it: team/b-gent"), "{e}");
    assert_eq!(e.kind(), kgents_logos::ErrorKind::NotFound);
    // a time before the first record: says when history starts
    let e = replay("b-gent", serde_json::json!({"at": at(-60)})).unwrap_err();
    assert!(
        e.to_string().contains(&format!("starts at {}", t0())),
        "{e}"
    );
    assert_eq!(e.kind(), kgents_logos::ErrorKind::Usage);
    // bad input is named
    let e = replay("b-gent", serde_json::json!({"at": "yesterday"})).unwrap_err();
    assert!(e.to_string().contains("bad input"), "{e}");
}
