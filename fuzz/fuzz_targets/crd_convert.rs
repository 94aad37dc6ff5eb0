//! Custom resources ↔ the pure types: a Pheromone as a decaying signal, a Proposal as a risk
//! input, a risk assessment as the Proposal's status.
//!
//! The input is a resource as JSON (what the API server or `kubectl apply` hands over).
//! Properties: decoding never panics; a decoded resource serialises and decodes back equal;
//! a conversion either succeeds with values inside the pure types' bounds (intensity in
//! (0, 1], half-life ≥ 0.1 min, counts equal to the resource's) or fails with a message naming
//! the field; the decayed intensity of a converted pheromone is in [0, 1] at any time and
//! never grows; an assessment written to status reads back unchanged.
#![no_main]

use jiff::SignedDuration;
use kgents_core::field::Signal;
use kgents_crds::convert::PheromoneSignal;
use kgents_crds::proposal::RiskAssessment;
use kgents_crds::{Pheromone, Proposal};
use kgents_fuzz::now;
use kgents_risk::{LedgerSnapshot, ProposerKind, RiskPolicy, assess};
use libfuzzer_sys::fuzz_target;

fn pheromone(resource: &Pheromone) {
    let text = serde_json::to_string(resource).expect("a resource serialises");
    let back: Pheromone = serde_json::from_str(&text).expect("and decodes again");
    assert_eq!(&back, resource, "JSON round trip");

    match PheromoneSignal::try_from(resource) {
        Ok(signal) => {
            let initial = signal.initial_intensity().get();
            assert!(initial > 0.0 && initial <= 1.0, "initial {initial}");
            assert!(signal.half_life().as_seconds_f64() >= 6.0 - 1e-9);
            assert!(signal.ttl().is_none_or(|ttl| ttl.as_secs() >= 1));
            let mut previous = f64::INFINITY;
            for hours in [-1, 0, 1, 24, 24 * 365, 24 * 365 * 100] {
                // Times past the end of jiff's range are skipped (not clamped: going back
                // in time would make the intensity grow).
                let Ok(at) = signal
                    .emitted_at()
                    .checked_add(SignedDuration::from_hours(hours))
                else {
                    continue;
                };
                let intensity = signal.intensity_at(at).get();
                assert!((0.0..=1.0).contains(&intensity), "intensity {intensity}");
                assert!(
                    intensity <= previous,
                    "intensity grew: {previous} → {intensity}"
                );
                previous = intensity;
                let _ = signal.is_evaporated(at);
            }
            let pure = kgents_core::field::Pheromone::try_from(resource)
                .expect("the same checks as the signal view");
            assert_eq!(pure.initial_intensity, signal.initial_intensity());
            assert_eq!(pure.emitted_at, signal.emitted_at());
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            assert!(kgents_core::field::Pheromone::try_from(resource).is_err());
        }
    }
}

fn proposal(resource: &Proposal) {
    let text = serde_json::to_string(resource).expect("a resource serialises");
    let back: Proposal = serde_json::from_str(&text).expect("and decodes again");
    assert_eq!(&back, resource, "JSON round trip");

    for kind in [ProposerKind::Agent, ProposerKind::Person] {
        let input = match resource.risk_input(kind) {
            Ok(input) => input,
            Err(error) => {
                assert!(!error.to_string().is_empty());
                continue;
            }
        };
        let m = &resource.spec.magnitude;
        assert_eq!(
            i128::from(input.magnitude.lines_added),
            i128::from(m.lines_added)
        );
        assert_eq!(
            i128::from(input.magnitude.lines_removed),
            i128::from(m.lines_removed)
        );
        assert_eq!(
            i128::from(input.magnitude.files_changed),
            i128::from(m.files_changed)
        );
        assert_eq!(
            i128::from(input.magnitude.tests_added),
            i128::from(m.tests_added)
        );
        assert_eq!(
            i128::from(input.magnitude.tests_removed),
            i128::from(m.tests_removed)
        );
        assert!(input.review.required_approvers <= 10);
        assert_eq!(input.proposer_kind, kind);

        let assessment = assess(
            &input,
            &LedgerSnapshot::new(),
            &RiskPolicy::default(),
            now(),
        );
        let status = RiskAssessment::from(&assessment);
        assert_eq!(status.score, assessment.score);
        let text = serde_json::to_string(&status).expect("status serialises");
        let back: RiskAssessment = serde_json::from_str(&text).expect("status decodes");
        assert_eq!(back, status, "status JSON round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(resource) = serde_json::from_slice::<Pheromone>(data) {
        pheromone(&resource);
    }
    if let Ok(resource) = serde_json::from_slice::<Proposal>(data) {
        proposal(&resource);
    }
});
