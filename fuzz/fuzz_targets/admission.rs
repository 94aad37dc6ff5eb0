//! AdmissionReview decoding and the T-gent admission decision, as the webhook runs them.
//!
//! The input is the HTTP body the API server would post. Properties: decoding never panics;
//! the decision is total (every decodable request gets a verdict) and deterministic; a verdict
//! is allowed exactly when it has no reasons; CRITICAL risk is never admitted, nor HIGH risk
//! filed by a ServiceAccount; a proposal filed under another name than its requester's is
//! denied; the response the webhook would send serialises and carries the request's uid. The
//! policy holds CEL rules, so the rules are evaluated on arbitrary objects too.
#![no_main]

use std::sync::LazyLock;

use kgents_crds::Proposal;
use kgents_fuzz::now;
use kgents_policy::{AdmissionPolicy, LiveLedger, PolicyDocument, PolicyRule, decide};
use kgents_risk::{ProposerKind, RiskLevel};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use libfuzzer_sys::fuzz_target;

/// The default allow-list and risk weights, with rules of the shapes policies hold: numeric
/// limits on the patch, string checks on the request and target, list predicates, risk gates.
static POLICY: LazyLock<AdmissionPolicy> = LazyLock::new(|| {
    let document = PolicyDocument {
        rules: vec![
            PolicyRule::new(
                "max-replicas",
                "!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= 10",
            ),
            PolicyRule::new(
                "no-privileged",
                "!has(patch.spec) || !has(patch.spec.template) || patch.spec.template.spec.containers.all(c, !has(c.securityContext) || !c.securityContext.privileged)",
            )
            .for_kinds(&["Deployment", "Agent"]),
            PolicyRule::new(
                "names",
                "!target.name.startsWith('forbidden') && size(request.userInfo.username) < 300",
            ),
            PolicyRule::new("risk", "risk.score <= 0.9 || request.operation == 'REVIEW'"),
            PolicyRule::new(
                "evidence",
                "!has(object.spec.evidence) || object.spec.evidence.all(e, size(e) < 1000)",
            ),
        ],
        ..PolicyDocument::default()
    };
    AdmissionPolicy::from_document(&document).expect("the fuzz policy compiles")
});

fuzz_target!(|data: &[u8]| {
    let Ok(review) = serde_json::from_slice::<AdmissionReview<Proposal>>(data) else {
        return;
    };
    let Ok(request): Result<AdmissionRequest<Proposal>, _> = review.try_into() else {
        return;
    };
    // The webhook's ledger is kept from watch events of stored proposals; feed it these.
    let ledger = LiveLedger::new();
    for proposal in [&request.old_object, &request.object].into_iter().flatten() {
        ledger.upsert(proposal);
    }
    let verdict = decide(&request, &POLICY, &ledger, now());
    assert_eq!(
        verdict,
        decide(&request, &POLICY, &ledger, now()),
        "the decision is a function of its inputs"
    );
    assert_eq!(
        verdict.allowed,
        verdict.reasons.is_empty(),
        "allowed exactly when there is no reason to deny: {verdict:?}"
    );
    if let Some(assessment) = &verdict.assessment {
        assert!((0.0..=1.0).contains(&assessment.score), "{assessment:?}");
        if assessment.level == RiskLevel::Critical {
            assert!(!verdict.allowed, "CRITICAL admitted: {verdict:?}");
        }
        if assessment.level == RiskLevel::High && assessment.proposer_kind == ProposerKind::Agent {
            assert!(!verdict.allowed, "HIGH from an agent admitted: {verdict:?}");
        }
    }
    let judged = matches!(request.operation, Operation::Create | Operation::Update)
        && request.kind.group == "kgents.io"
        && request.kind.kind == "Proposal"
        && request.sub_resource.as_deref().is_none_or(str::is_empty);
    if judged
        && let Some(object) = &request.object
        && request
            .old_object
            .as_ref()
            .is_none_or(|old| old.spec != object.spec)
    {
        let username = request.user_info.username.clone().unwrap_or_default();
        if username.is_empty() || object.spec.proposer != username {
            assert!(!verdict.allowed, "filed under another name: {verdict:?}");
        }
    }

    // The response the webhook sends.
    let mut response = AdmissionResponse::from(&request);
    if !verdict.allowed {
        response = response.deny(verdict.message());
    }
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings.clone());
    }
    let uid = response.uid.clone();
    assert_eq!(uid, request.uid);
    let body = serde_json::to_vec(&response.into_review()).expect("a response serialises");
    let back: serde_json::Value = serde_json::from_slice(&body).expect("it is JSON");
    assert_eq!(back["response"]["uid"].as_str(), Some(uid.as_str()));
    assert_eq!(back["response"]["allowed"].as_bool(), Some(verdict.allowed));
});
