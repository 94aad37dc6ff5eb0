//! Conversions into the pure types of kgents-core and kgents-risk, and the affordance validator.

mod common;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kgents_core::field::Signal;
use kgents_crds::pheromone::PheromoneSpec;
use kgents_crds::proposal::{ProposalSpec, RiskAssessment};
use kgents_crds::{
    Error, Pheromone, PheromoneSignal, PheromoneType, Proposal, Time, validate_affordances,
};
use kube::CustomResourceExt;
use proptest::prelude::*;

fn ts(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn pheromone(spec: serde_json::Value) -> Pheromone {
    let spec: PheromoneSpec = serde_json::from_value(spec).expect("spec");
    Pheromone::new("p", spec)
}

#[test]
fn emitted_at_defaults_to_creation_timestamp() {
    let mut p = pheromone(
        serde_json::json!({"type": "WARNING", "source": "d-gent", "initialIntensity": 0.8}),
    );
    match PheromoneSignal::try_from(&p) {
        Err(Error::MissingEmissionTime { name }) => assert_eq!(name, "p"),
        other => panic!("expected MissingEmissionTime, got {other:?}"),
    }
    p.metadata.creation_timestamp = Some(Time(ts("2026-11-26T10:00:00Z")));
    let signal = PheromoneSignal::try_from(&p).expect("signal");
    assert_eq!(signal.emitted_at(), ts("2026-11-26T10:00:00Z"));
    assert_eq!(signal.source(), "d-gent");
    assert_eq!(signal.target(), None);
    // One default half-life (10 minutes) later, half the initial intensity.
    let later = ts("2026-11-26T10:10:00Z");
    assert!((signal.intensity_at(later).get() - 0.4).abs() < 1e-12);
    // An explicit emittedAt wins and its offset is converted, not replaced.
    p.spec.emitted_at = Some(Time(ts("2026-11-26T11:00:00+01:00")));
    let signal = PheromoneSignal::try_from(&p).expect("signal");
    assert_eq!(signal.emitted_at(), ts("2026-11-26T10:00:00Z"));
}

#[test]
fn dream_decays_with_twice_the_half_life_and_ttl_is_kept() {
    let mut p = pheromone(
        serde_json::json!({"type": "DREAM", "source": "n-gent", "halfLifeMinutes": 5, "ttlSeconds": 3600}),
    );
    p.metadata.creation_timestamp = Some(Time(ts("2026-11-26T10:00:00Z")));
    let signal = PheromoneSignal::try_from(&p).expect("signal");
    assert_eq!(signal.ttl(), Some(Duration::from_secs(3600)));
    assert!((signal.intensity_at(ts("2026-11-26T10:10:00Z")).get() - 0.5).abs() < 1e-12);
    assert!(
        signal.is_evaporated(ts("2026-11-26T11:00:00Z")),
        "past its TTL"
    );
    let owned = kgents_core::field::Pheromone::try_from(&p).expect("owned");
    assert_eq!(owned.emitted_at, signal.emitted_at());
    assert_eq!(
        owned.pheromone_type,
        kgents_core::field::PheromoneType::Dream
    );
}

#[test]
fn out_of_range_pheromones_do_not_convert() {
    let created = Some(Time(ts("2026-11-26T10:00:00Z")));
    for (spec, field) in [
        (
            serde_json::json!({"type": "STATE", "source": "a", "initialIntensity": 0.0}),
            "spec.initialIntensity",
        ),
        (
            serde_json::json!({"type": "STATE", "source": "a", "initialIntensity": 1.5}),
            "spec.initialIntensity",
        ),
        (
            serde_json::json!({"type": "STATE", "source": "a", "halfLifeMinutes": 0.0}),
            "spec.halfLifeMinutes",
        ),
        (
            serde_json::json!({"type": "STATE", "source": "a", "ttlSeconds": 0}),
            "spec.ttlSeconds",
        ),
    ] {
        let mut p = pheromone(spec);
        p.metadata.creation_timestamp = created.clone();
        match PheromoneSignal::try_from(&p) {
            Err(Error::OutOfRange { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected OutOfRange, got {other:?}"),
        }
    }
}

#[test]
fn pheromone_resources_sense_in_a_core_field() {
    let created = Some(Time(ts("2026-11-26T10:00:00Z")));
    let mut strong =
        pheromone(serde_json::json!({"type": "WARNING", "source": "a", "target": "b"}));
    strong.metadata.creation_timestamp = created.clone();
    let mut weak =
        pheromone(serde_json::json!({"type": "WARNING", "source": "c", "initialIntensity": 0.3}));
    weak.metadata.creation_timestamp = created;
    let signals: Vec<PheromoneSignal<'_>> = [&weak, &strong]
        .into_iter()
        .map(|p| PheromoneSignal::try_from(p).unwrap())
        .collect();
    let field = kgents_core::field::PheromoneField::new(&signals);
    let sensed = field.sense(
        &kgents_core::field::SenseQuery::all().for_target("b"),
        ts("2026-11-26T10:01:00Z"),
    );
    assert_eq!(sensed.len(), 2, "targeted and broadcast both reach b");
    assert_eq!(sensed[0].signal.source(), "a", "strongest first");
}

fn proposal() -> Proposal {
    let spec: ProposalSpec = serde_json::from_value(serde_json::json!({
        "proposer": "b-gent",
        "changeType": "AGENT_DELETE",
        "target": {"kind": "Agent", "name": "l-gent"},
        "magnitude": {"linesAdded": 10, "filesChanged": 2, "testsRemoved": 1},
        "reviewRequirements": {"requiredApprovers": 2}
    }))
    .expect("spec");
    Proposal::new("drop-l", spec)
}

#[test]
fn proposal_becomes_a_risk_input_and_its_assessment_a_valid_status() {
    let mut p = proposal();
    match p.risk_input(kgents_risk::ProposerKind::Agent) {
        Err(Error::Conversion { field, .. }) => assert_eq!(field, "metadata.namespace"),
        other => panic!("expected a namespace error, got {other:?}"),
    }
    p.metadata.namespace = Some("kgents".into());
    p.metadata.creation_timestamp = Some(Time(ts("2026-11-26T10:00:00Z")));
    let input = p
        .risk_input(kgents_risk::ProposerKind::Agent)
        .expect("input");
    assert_eq!(input.change_type, kgents_risk::ChangeType::AgentDelete);
    assert_eq!(
        input.magnitude,
        kgents_risk::Magnitude::lines(10, 0, 2).with_tests(0, 1)
    );
    assert_eq!(input.review.required_approvers, 2);
    assert!(input.review.auto_merge);
    assert_eq!(input.namespace, "kgents");
    assert_eq!(input.created_at, Some(ts("2026-11-26T10:00:00Z")));

    let now = ts("2026-11-26T10:00:05Z");
    let assessment = kgents_risk::assess(
        &input,
        &kgents_risk::LedgerSnapshot::new(),
        &kgents_risk::RiskPolicy::default(),
        now,
    );
    let status: RiskAssessment = (&assessment).into();
    assert_eq!(status.score, assessment.score);
    assert_eq!(status.calculated_at.0, now);
    assert!(
        status
            .explanation
            .as_deref()
            .is_some_and(|e| e.contains("AGENT_DELETE"))
    );
    let schema = common::open_api_schema(&Proposal::crd());
    let errors = common::structural_errors(
        &schema["properties"]["status"]["properties"]["riskAssessment"],
        &serde_json::to_value(&status).unwrap(),
    );
    assert!(errors.is_empty(), "{errors:#?}");

    p.spec.magnitude.lines_added = -1;
    assert!(matches!(
        p.risk_input(kgents_risk::ProposerKind::Person),
        Err(Error::OutOfRange {
            field: "spec.magnitude.linesAdded",
            ..
        })
    ));
}

#[test]
fn affordance_validator_names_the_bad_entry() {
    let parsed = validate_affordances(&["world.*.manifest", "self.memory.*"]).expect("valid");
    assert_eq!(parsed.globs().len(), 2);
    let path: kgents_core::agentese::Path = "self.memory.store.manifest".parse().unwrap();
    assert!(parsed.allows(&path));
    match validate_affordances(&["world.*.manifest", "cluster.agents"]) {
        Err(e @ Error::InvalidAffordance { index: 1, .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("spec.affordances[1]") && text.contains("cluster"),
                "{text}"
            );
        }
        other => panic!("expected InvalidAffordance at 1, got {other:?}"),
    }
    let long = format!("world.{}", "a".repeat(300));
    assert!(matches!(
        validate_affordances(&[long]),
        Err(Error::InvalidAffordance { index: 0, .. })
    ));
    let many = vec!["world.x"; 129];
    assert!(matches!(
        validate_affordances(&many),
        Err(Error::OutOfRange { .. })
    ));
}

fn glob_text() -> impl Strategy<Value = String> {
    let element = prop_oneof![
        Just("world".to_owned()),
        Just("self".to_owned()),
        Just("concept".to_owned()),
        Just("void".to_owned()),
        Just("time".to_owned()),
        Just("*".to_owned()),
        Just("**".to_owned()),
        Just(String::new()),
        "[a-z0-9_-]{1,6}",
        "[a-zA-Z0-9_*. -]{1,4}",
    ];
    proptest::collection::vec(element, 1..6).prop_map(|elements| elements.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The CEL rule the API server runs and the kgents-core parser the webhook runs agree on
    /// every glob (the webhook then never refuses what the schema let through, nor the reverse).
    #[test]
    fn cel_affordance_rule_agrees_with_the_core_parser(glob in glob_text()) {
        let spec: kgents_crds::UmweltSpec = serde_json::from_value(serde_json::json!({
            "agent": "a",
            "affordances": [glob.clone()],
        })).unwrap();
        let cel_accepts = kgents_crds::Umwelt::new("u", spec).validate_cel().is_ok();
        let core_accepts = validate_affordances(&[glob.as_str()]).is_ok();
        prop_assert_eq!(cel_accepts, core_accepts, "glob {:?}", glob);
    }

    /// Any valid pheromone's intensity never rises over time and stays in [0, initial].
    #[test]
    fn resource_signals_decay_monotonically(
        initial in 0.001f64..=1.0,
        half_life in 0.1f64..1e4,
        kind in proptest::sample::select(PheromoneType::ALL.to_vec()),
        a in 0i64..10_000_000,
        b in 0i64..10_000_000,
    ) {
        let mut p = pheromone(serde_json::json!({"type": kind, "source": "s", "initialIntensity": initial, "halfLifeMinutes": half_life}));
        let emitted = ts("2026-01-01T00:00:00Z");
        p.metadata.creation_timestamp = Some(Time(emitted));
        let signal = PheromoneSignal::try_from(&p).unwrap();
        let (early, late) = (a.min(b), a.max(b));
        let at = |s: i64| emitted.checked_add(SignedDuration::from_secs(s)).unwrap();
        let i_early = signal.intensity_at(at(early)).get();
        let i_late = signal.intensity_at(at(late)).get();
        prop_assert!(i_late <= i_early);
        prop_assert!((0.0..=initial).contains(&i_late));
    }
}
