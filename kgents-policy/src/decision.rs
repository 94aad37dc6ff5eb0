//! The admission decision as a pure function: an `AdmissionRequest<Proposal>`, the policy, the
//! risk ledger and "now" in; a [`Verdict`] (allowed, reasons, warnings) out. No I/O, no clock.
//!
//! Checks, all of them evaluated so that a denial explains every factor at once:
//! 1. the requester files in their own name (`spec.proposer` = the authenticated username), so
//!    the controller can later classify the proposer from the spec without trusting its author;
//! 2. the target kind is on the allow-list and never a forbidden kind or group — or the target
//!    is a file outside the cluster (`File`, no apiVersion), admitted only for a CODE_* change
//!    without a patch (it is assessed and reviewed, never executed by the operator);
//! 3. the target stays in the proposal's namespace (unless the policy allows otherwise);
//! 4. the patch parses for its type;
//! 5. the risk from `kgents-risk`: CRITICAL is denied, HIGH is denied for a ServiceAccount and
//!    admitted with a warning for a person;
//! 6. every applicable CEL rule of the policy holds.

use jiff::Timestamp;
use kgents_crds::Proposal;
use kgents_risk::{Decision, ProposalLedger, ProposerKind, RiskAssessment};
use kube::core::admission::{AdmissionRequest, Operation};
use serde_json::json;

use super::cel::Bindings;
use super::patch::{self, ParsedPatch};
use super::policy::{AdmissionPolicy, external_file_reason, forbidden_reason};

/// Longest warning sent back (the API server truncates longer ones).
const MAX_WARNING: usize = 240;

/// Who sent the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requester {
    /// `userInfo.username`.
    pub username: String,
    /// `userInfo.groups`.
    pub groups: Vec<String>,
}

/// What admission says about one proposal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Whether the proposal is admitted.
    pub allowed: bool,
    /// Why it is denied (empty when allowed).
    pub reasons: Vec<String>,
    /// What the requester should know although it is admitted (e.g. HIGH risk needs a human).
    pub warnings: Vec<String>,
    /// The risk assessment, when the proposal could be assessed.
    pub assessment: Option<RiskAssessment>,
}

impl Verdict {
    fn allow() -> Self {
        Self {
            allowed: true,
            ..Self::default()
        }
    }

    fn allow_with_warning(warning: impl Into<String>) -> Self {
        Self {
            allowed: true,
            warnings: vec![warning.into()],
            ..Self::default()
        }
    }

    fn deny(reason: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reasons: vec![reason.into()],
            ..Self::default()
        }
    }

    /// The denial in one message: every reason, separated by "; ".
    pub fn message(&self) -> String {
        if self.allowed {
            return String::new();
        }
        format!(
            "proposal denied by the T-gent admission policy: {}",
            self.reasons.join("; ")
        )
    }
}

/// How a proposal reached [`evaluate`].
#[derive(Debug, Clone, Copy)]
pub struct Occasion<'a> {
    /// `CREATE` or `UPDATE` (for the `request` variable of CEL rules); `REVIEW` when the
    /// controller re-checks a stored proposal.
    pub operation: &'a str,
    /// The authenticated requester; `None` when the controller re-checks a stored proposal
    /// (then the proposer is classified from `spec.proposer`, which admission bound to the
    /// requester's identity).
    pub requester: Option<&'a Requester>,
    /// The previous object on UPDATE.
    pub old_object: Option<&'a Proposal>,
    /// Whether the request is a dry run.
    pub dry_run: bool,
}

impl Occasion<'static> {
    /// The controller's re-check of a stored proposal: operation `REVIEW`, no requester (the
    /// proposer is classified from `spec.proposer`), no previous object, not a dry run.
    pub const fn review() -> Self {
        Self {
            operation: "REVIEW",
            requester: None,
            old_object: None,
            dry_run: false,
        }
    }
}

/// Decides an admission request for a Proposal.
///
/// Only CREATE and UPDATE of the `proposals` resource itself are judged; anything else the
/// webhook might be sent by a misconfiguration is allowed with a warning (it is narrow by
/// design and must never block what it does not own). An UPDATE that leaves the spec as it was
/// (labels, finalizers, annotations) is allowed without re-assessment: a policy that tightened
/// later, or a velocity that grew, must not make old proposals impossible to tidy up or delete.
pub fn decide(
    request: &AdmissionRequest<Proposal>,
    policy: &AdmissionPolicy,
    ledger: &dyn ProposalLedger,
    now: Timestamp,
) -> Verdict {
    let operation = match request.operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        _ => return Verdict::allow(),
    };
    if request.kind.group != "kgents.io" || request.kind.kind != "Proposal" {
        return Verdict::allow_with_warning(format!(
            "the kgents proposal webhook was sent a {}.{}; it only judges kgents.io Proposals (check its rules)",
            request.kind.kind, request.kind.group
        ));
    }
    match request.sub_resource.as_deref() {
        Some("status") => return judge_status_update(request),
        Some(other) if !other.is_empty() => return Verdict::allow(),
        _ => {}
    }
    let Some(proposal) = request.object.as_ref() else {
        return Verdict::deny("the request carries no Proposal object");
    };
    if let (Operation::Update, Some(old)) = (&request.operation, request.old_object.as_ref())
        && old.spec == proposal.spec
    {
        return Verdict::allow();
    }
    let requester = Requester {
        username: request.user_info.username.clone().unwrap_or_default(),
        groups: request.user_info.groups.clone().unwrap_or_default(),
    };
    let mut verdict = evaluate(
        proposal,
        &Occasion {
            operation,
            requester: Some(&requester),
            old_object: request.old_object.as_ref(),
            dry_run: request.dry_run,
        },
        policy,
        ledger,
        now,
    );
    if requester.username.is_empty() || proposal.spec.proposer != requester.username {
        verdict.allowed = false;
        verdict.reasons.insert(
            0,
            format!(
                "spec.proposer is '{}' but the request comes from '{}'; a proposal is filed in its requester's own name, so set spec.proposer to '{}'",
                proposal.spec.proposer, requester.username, requester.username
            ),
        );
    }
    verdict
}

/// Judges a write to a proposal's status by someone other than the operator (the webhook
/// configuration leaves the operator's own writes out with a match condition): a person may
/// add, change or withdraw only their own approval or rejection; the phase, the review, the
/// risk assessment and the execution record are the controller's alone. Without this anyone
/// allowed to approve could write `phase: Approved` and have a change executed.
fn judge_status_update(request: &AdmissionRequest<Proposal>) -> Verdict {
    let (Some(new), Some(old)) = (request.object.as_ref(), request.old_object.as_ref()) else {
        return Verdict::deny("a status update without the object and its previous version");
    };
    let who = request.user_info.username.clone().unwrap_or_default();
    let new_status = new.status.clone().unwrap_or_default();
    let old_status = old.status.clone().unwrap_or_default();
    let mut reasons = Vec::new();
    let without_votes = |status: &kgents_crds::ProposalStatus| {
        let mut status = status.clone();
        status.approvals.clear();
        status.rejections.clear();
        status
    };
    if without_votes(&new_status) != without_votes(&old_status) {
        reasons.push(format!(
            "{who} may not change a proposal's phase, review, risk assessment or execution record (only the operator writes them); record an approval or rejection instead (examples/proposal approve|reject)"
        ));
    }
    let votes = |entries: Vec<(String, Option<serde_json::Value>)>| entries;
    let changed_approvers = changed_keys(
        &votes(
            old_status
                .approvals
                .iter()
                .map(|a| (a.approver.clone(), serde_json::to_value(a).ok()))
                .collect(),
        ),
        &votes(
            new_status
                .approvals
                .iter()
                .map(|a| (a.approver.clone(), serde_json::to_value(a).ok()))
                .collect(),
        ),
    );
    let changed_rejectors = changed_keys(
        &votes(
            old_status
                .rejections
                .iter()
                .map(|r| (r.rejector.clone(), serde_json::to_value(r).ok()))
                .collect(),
        ),
        &votes(
            new_status
                .rejections
                .iter()
                .map(|r| (r.rejector.clone(), serde_json::to_value(r).ok()))
                .collect(),
        ),
    );
    for (what, names) in [
        ("approval", changed_approvers),
        ("rejection", changed_rejectors),
    ] {
        for name in names.into_iter().filter(|n| *n != who) {
            reasons.push(format!(
                "{who} may not add, change or remove the {what} of '{name}'; each person records only their own"
            ));
        }
    }
    Verdict {
        allowed: reasons.is_empty(),
        reasons,
        ..Verdict::default()
    }
}

/// The keys whose entries differ between `old` and `new` (added, changed or removed).
fn changed_keys(
    old: &[(String, Option<serde_json::Value>)],
    new: &[(String, Option<serde_json::Value>)],
) -> Vec<String> {
    let mut keys: Vec<&String> = old.iter().chain(new).map(|(k, _)| k).collect();
    keys.sort_unstable();
    keys.dedup();
    let find = |list: &[(String, Option<serde_json::Value>)], key: &str| {
        list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    keys.into_iter()
        .filter(|key| find(old, key) != find(new, key))
        .cloned()
        .collect()
}

/// Judges a proposal with every check but the identity binding (see the module docs); shared by
/// the webhook and by the controller, which re-checks proposals that were stored while the
/// webhook was not in the way.
pub fn evaluate(
    proposal: &Proposal,
    occasion: &Occasion<'_>,
    policy: &AdmissionPolicy,
    ledger: &dyn ProposalLedger,
    now: Timestamp,
) -> Verdict {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    let spec = &proposal.spec;
    let namespace = proposal.metadata.namespace.clone().unwrap_or_default();

    // 2. the target kind
    let target = &spec.target;
    let group = target
        .api_version
        .as_deref()
        .map(|v| match v.split_once('/') {
            Some((group, _)) => group,
            None => "",
        });
    if target.is_external_file() {
        // A file outside the cluster: no Kubernetes kind to allow-list; see external_file_reason.
        reasons.extend(external_file_reason(spec));
    } else if let Some(reason) = forbidden_reason(&target.kind, group) {
        reasons.push(reason);
    } else if !policy.allows_kind(&target.kind, group) {
        let allowed: Vec<String> = policy.allowed_kinds().map(ToString::to_string).collect();
        reasons.push(format!(
            "target kind {}{} is not on the allow-list ({})",
            target.kind,
            group
                .filter(|g| !g.is_empty())
                .map(|g| format!(".{g}"))
                .unwrap_or_default(),
            allowed.join(", ")
        ));
    }

    // 3. the namespace
    let target_namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.clone());
    if target_namespace != namespace && !policy.allow_cross_namespace {
        reasons.push(format!(
            "the target is in namespace {target_namespace} but the proposal in {namespace}; file the proposal in the target's namespace"
        ));
    }

    // 4. the patch
    let parsed: Option<ParsedPatch> = match &spec.patch {
        None => None,
        Some(patch) => match patch::parse(patch, target) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                reasons.push(reason.to_string());
                None
            }
        },
    };

    // 5. the risk
    let proposer_kind = match occasion.requester {
        Some(requester) => ProposerKind::from_username(&requester.username),
        None => ProposerKind::from_username(&spec.proposer),
    };
    let assessment = match proposal.risk_input(proposer_kind) {
        Ok(mut input) => {
            if input.namespace.is_empty() {
                input.namespace = namespace.clone();
            }
            let assessment = kgents_risk::assess(&input, ledger, &policy.risk, now);
            match assessment.decision {
                Decision::Block => reasons.push(assessment.explain()),
                Decision::RequireHuman => warnings.push(format!(
                    "HIGH risk ({:.2}): admitted, but it is applied only after a human approves it (kgents-operator approve)",
                    assessment.score
                )),
                Decision::AutoApprove | Decision::Review => {}
            }
            Some(assessment)
        }
        Err(e) => {
            reasons.push(format!("the proposal cannot be assessed: {e}"));
            None
        }
    };

    // 6. the CEL rules
    if !policy.rules.is_empty() {
        let object = serde_json::to_value(proposal).unwrap_or(serde_json::Value::Null);
        let old_object = occasion
            .old_object
            .and_then(|old| serde_json::to_value(old).ok());
        let request = match occasion.requester {
            Some(requester) => json!({
                "operation": occasion.operation,
                "namespace": namespace,
                "name": proposal.metadata.name.clone().unwrap_or_default(),
                "dryRun": occasion.dry_run,
                "userInfo": {"username": requester.username, "groups": requester.groups},
            }),
            None => json!({
                "operation": occasion.operation,
                "namespace": namespace,
                "name": proposal.metadata.name.clone().unwrap_or_default(),
                "dryRun": occasion.dry_run,
                "userInfo": {"username": spec.proposer, "groups": []},
            }),
        };
        let target_json = json!({
            "apiVersion": target.api_version.clone().unwrap_or_default(),
            "group": group.unwrap_or_default(),
            "kind": target.kind,
            "name": target.name,
            "namespace": target_namespace,
        });
        let patch_json = parsed
            .as_ref()
            .map(ParsedPatch::document)
            .unwrap_or(serde_json::Value::Null);
        let risk_json = match &assessment {
            Some(a) => {
                json!({"score": a.score, "level": a.level.as_str(), "decision": a.decision.as_str()})
            }
            None => json!({"score": 1.0, "level": "CRITICAL", "decision": "Block"}),
        };
        for violation in policy.rules.violations(
            &target.kind,
            &Bindings {
                object: &object,
                old_object: old_object.as_ref(),
                request: &request,
                target: &target_json,
                patch: &patch_json,
                risk: &risk_json,
            },
        ) {
            reasons.push(format!("rule {}: {}", violation.rule, violation.message));
        }
    }

    for warning in &mut warnings {
        if warning.len() > MAX_WARNING {
            let mut cut = MAX_WARNING;
            while !warning.is_char_boundary(cut) {
                cut -= 1;
            }
            warning.truncate(cut);
        }
    }
    Verdict {
        allowed: reasons.is_empty(),
        reasons,
        warnings,
        assessment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyDocument, PolicyRule};
    use kgents_risk::{LedgerProposal, LedgerSnapshot};
    use kube::core::admission::AdmissionReview;
    use serde_json::Value;

    const AGENT: &str = "system:serviceaccount:team:b-gent";
    const PERSON: &str = "alice";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid")
    }

    fn proposal(
        proposer: &str,
        change: &str,
        kind: &str,
        api_version: &str,
        patch: Option<(&str, &str)>,
    ) -> Value {
        let mut spec = json!({
            "proposer": proposer,
            "changeType": change,
            "target": {"apiVersion": api_version, "kind": kind, "name": "b"},
        });
        if let Some((kind, content)) = patch {
            spec["patch"] = json!({"type": kind, "content": content});
        }
        json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": "p", "namespace": "team", "uid": "u-1", "creationTimestamp": "2027-01-15T08:00:00Z"},
            "spec": spec,
        })
    }

    fn request(
        operation: &str,
        user: &str,
        object: Value,
        old: Option<Value>,
    ) -> AdmissionRequest<Proposal> {
        let review: AdmissionReview<Proposal> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "r-1",
                "kind": {"group": "kgents.io", "version": "v1", "kind": "Proposal"},
                "resource": {"group": "kgents.io", "version": "v1", "resource": "proposals"},
                "name": "p", "namespace": "team", "operation": operation,
                "userInfo": {"username": user, "groups": ["system:authenticated"]},
                "object": object, "oldObject": old, "dryRun": false,
            }
        }))
        .expect("valid review");
        review.try_into().expect("has a request")
    }

    fn policy_with(rules: Vec<PolicyRule>) -> AdmissionPolicy {
        AdmissionPolicy::from_document(&PolicyDocument {
            rules,
            ..PolicyDocument::default()
        })
        .expect("valid policy")
    }

    const SCALE: Option<(&str, &str)> = Some(("merge", r#"{"spec":{"replicas":3}}"#));

    #[test]
    fn decision_table() {
        let rules = vec![
            PolicyRule::new("max-replicas", "!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= 10")
                .with_message("at most 10 replicas"),
            PolicyRule::new(
                "no-privileged",
                "!has(patch.spec) || !has(patch.spec.template) || patch.spec.template.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)",
            )
            .for_kinds(&["Deployment"])
            .with_message("no privileged containers"),
        ];
        let policy = policy_with(rules);
        let privileged = r#"{"spec":{"template":{"spec":{"containers":[{"name":"x","securityContext":{"privileged":true}}]}}}}"#;
        // (name, user, change type, kind, apiVersion, patch, allowed, a fragment of the reason or warning)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            Option<(&'a str, &'a str)>,
            bool,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "low agent",
                AGENT,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                SCALE,
                true,
                "",
            ),
            (
                "low person",
                PERSON,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                SCALE,
                true,
                "",
            ),
            (
                "medium agent",
                AGENT,
                "AGENT_DEPLOY",
                "Agent",
                "kgents.io/v1",
                SCALE,
                true,
                "",
            ),
            (
                "high agent",
                AGENT,
                "AGENT_DELETE",
                "Agent",
                "kgents.io/v1",
                None,
                false,
                "HIGH risk filed by an agent",
            ),
            (
                "high person",
                PERSON,
                "AGENT_DELETE",
                "Agent",
                "kgents.io/v1",
                None,
                true,
                "after a human approves",
            ),
            (
                "high boundary person",
                PERSON,
                "MEMORY_DELETE",
                "Memory",
                "kgents.io/v1",
                None,
                true,
                "HIGH risk",
            ),
            (
                "critical person",
                PERSON,
                "RISK_OVERRIDE",
                "Agent",
                "kgents.io/v1",
                None,
                false,
                "CRITICAL",
            ),
            (
                "critical agent",
                AGENT,
                "RISK_OVERRIDE",
                "Agent",
                "kgents.io/v1",
                None,
                false,
                "RISK_OVERRIDE base 0.90",
            ),
            (
                "secret",
                PERSON,
                "CONFIG_SECRET",
                "Secret",
                "v1",
                None,
                false,
                "never allowed",
            ),
            (
                "secret without apiVersion",
                PERSON,
                "CONFIG_UPDATE",
                "Secret",
                "",
                None,
                false,
                "never allowed",
            ),
            (
                "cluster role",
                PERSON,
                "POLICY_UPDATE",
                "ClusterRole",
                "rbac.authorization.k8s.io/v1",
                None,
                false,
                "never allowed",
            ),
            (
                "webhook",
                PERSON,
                "POLICY_UPDATE",
                "ValidatingWebhookConfiguration",
                "admissionregistration.k8s.io/v1",
                None,
                false,
                "never allowed",
            ),
            (
                "crd",
                PERSON,
                "POLICY_UPDATE",
                "CustomResourceDefinition",
                "apiextensions.k8s.io/v1",
                None,
                false,
                "never allowed",
            ),
            (
                "proposal",
                PERSON,
                "CONFIG_UPDATE",
                "Proposal",
                "kgents.io/v1",
                None,
                false,
                "never allowed",
            ),
            (
                "unlisted kind",
                PERSON,
                "CONFIG_UPDATE",
                "StatefulSet",
                "apps/v1",
                None,
                false,
                "not on the allow-list",
            ),
            (
                "foreign group",
                PERSON,
                "CONFIG_UPDATE",
                "Deployment",
                "evil.example.com/v1",
                None,
                false,
                "not on the allow-list",
            ),
            (
                "config map",
                AGENT,
                "CONFIG_UPDATE",
                "ConfigMap",
                "v1",
                Some(("merge", r#"{"data":{"k":"v"}}"#)),
                true,
                "",
            ),
            (
                "malformed merge",
                AGENT,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                Some(("merge", "{spec")),
                false,
                "not valid JSON",
            ),
            (
                "malformed json",
                AGENT,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                Some(("json", r#"[{"op":"nope"}]"#)),
                false,
                "RFC 6902",
            ),
            (
                "malformed apply",
                AGENT,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                Some(("apply", "- 1")),
                false,
                "apply patch",
            ),
            (
                "renaming patch",
                AGENT,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                Some(("merge", r#"{"metadata":{"name":"z"}}"#)),
                false,
                "rename",
            ),
            (
                "too many replicas",
                AGENT,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                Some(("merge", r#"{"spec":{"replicas":11}}"#)),
                false,
                "at most 10 replicas",
            ),
            (
                "privileged deployment",
                AGENT,
                "AGENT_UPGRADE",
                "Deployment",
                "apps/v1",
                Some(("merge", privileged)),
                false,
                "no privileged containers",
            ),
            (
                "external code change recorded by a person",
                PERSON,
                "CODE_PATCH",
                "File",
                "",
                None,
                true,
                "",
            ),
            (
                "external code change recorded by an agent",
                AGENT,
                "CODE_REFACTOR",
                "File",
                "",
                None,
                true,
                "",
            ),
            (
                "external file with a non-code change type",
                PERSON,
                "CONFIG_UPDATE",
                "File",
                "",
                None,
                false,
                "only CODE_PATCH, CODE_FEATURE, CODE_REFACTOR and CODE_DELETE",
            ),
            (
                "external file with a patch",
                PERSON,
                "CODE_PATCH",
                "File",
                "",
                Some(("merge", r#"{"spec":{"replicas":2}}"#)),
                false,
                "it carries a patch",
            ),
            (
                "a Kubernetes kind named File",
                PERSON,
                "CODE_PATCH",
                "File",
                "example.com/v1",
                None,
                false,
                "not on the allow-list",
            ),
            (
                "privileged rule ignores agents",
                AGENT,
                "AGENT_SCALE",
                "Agent",
                "kgents.io/v1",
                Some(("merge", r#"{"spec":{"replicas":2}}"#)),
                true,
                "",
            ),
        ];
        let ledger = LedgerSnapshot::new();
        for (name, user, change, kind, api_version, patch, allowed, fragment) in cases {
            let object = proposal(user, change, kind, api_version, patch);
            let mut object = object;
            if api_version.is_empty() {
                object["spec"]["target"]
                    .as_object_mut()
                    .expect("map")
                    .remove("apiVersion");
            }
            let verdict = decide(
                &request("CREATE", user, object, None),
                &policy,
                &ledger,
                now(),
            );
            assert_eq!(verdict.allowed, allowed, "{name}: {verdict:?}");
            let text = format!(
                "{} {}",
                verdict.reasons.join("; "),
                verdict.warnings.join("; ")
            );
            assert!(
                text.contains(fragment),
                "{name}: '{fragment}' not in {text}"
            );
        }
    }

    #[test]
    fn a_denial_lists_every_failed_check() {
        let policy = policy_with(vec![
            PolicyRule::new("never", "false").with_message("rule says no"),
        ]);
        let object = proposal(AGENT, "RISK_OVERRIDE", "Secret", "v1", Some(("merge", "[")));
        let verdict = decide(
            &request("CREATE", AGENT, object, None),
            &policy,
            &LedgerSnapshot::new(),
            now(),
        );
        assert!(!verdict.allowed);
        assert_eq!(verdict.reasons.len(), 4, "{:?}", verdict.reasons);
        assert!(
            verdict
                .message()
                .starts_with("proposal denied by the T-gent admission policy: ")
        );
    }

    #[test]
    fn a_proposal_must_be_filed_in_the_requesters_own_name() {
        let object = proposal(PERSON, "AGENT_DELETE", "Agent", "kgents.io/v1", None);
        // An agent posing as alice to turn "blocked" into "needs a human".
        let verdict = decide(
            &request("CREATE", AGENT, object, None),
            &AdmissionPolicy::default(),
            &LedgerSnapshot::new(),
            now(),
        );
        assert!(!verdict.allowed);
        assert!(verdict.reasons[0].contains("own name"), "{verdict:?}");
    }

    #[test]
    fn velocity_from_the_ledger_can_tip_a_proposal_into_denial() {
        // MEMORY_MIGRATE 0.6 is HIGH; five fresh filings add velocity 0.5 → 0.9 CRITICAL.
        let mut ledger = LedgerSnapshot::new();
        for i in 0..5 {
            ledger.record_proposal(
                "team",
                LedgerProposal::new(format!("o{i}"), format!("uo{i}"), PERSON, now()),
            );
        }
        let object = proposal(PERSON, "MEMORY_MIGRATE", "Memory", "kgents.io/v1", None);
        let calm = decide(
            &request("CREATE", PERSON, object.clone(), None),
            &AdmissionPolicy::default(),
            &LedgerSnapshot::new(),
            now(),
        );
        assert!(calm.allowed, "{calm:?}");
        let busy = decide(
            &request("CREATE", PERSON, object, None),
            &AdmissionPolicy::default(),
            &ledger,
            now(),
        );
        assert!(!busy.allowed);
        assert!(busy.reasons[0].contains("velocity 0.50"), "{busy:?}");
    }

    #[test]
    fn updates_that_keep_the_spec_pass_and_other_operations_are_not_judged() {
        let object = proposal(AGENT, "RISK_OVERRIDE", "Agent", "kgents.io/v1", None);
        let mut labelled = object.clone();
        labelled["metadata"]["labels"] = json!({"x": "y"});
        let verdict = decide(
            &request("UPDATE", "bob", labelled, Some(object.clone())),
            &AdmissionPolicy::default(),
            &LedgerSnapshot::new(),
            now(),
        );
        assert!(verdict.allowed, "{verdict:?}");
        let verdict = decide(
            &request("DELETE", "bob", object, None),
            &AdmissionPolicy::default(),
            &LedgerSnapshot::new(),
            now(),
        );
        assert!(verdict.allowed);
    }

    fn status_request(
        user: &str,
        old_status: Value,
        new_status: Value,
    ) -> AdmissionRequest<Proposal> {
        let mut old = proposal(PERSON, "AGENT_DEPLOY", "Agent", "kgents.io/v1", None);
        old["status"] = old_status;
        let mut new = old.clone();
        new["status"] = new_status;
        let mut request = request("UPDATE", user, new, Some(old));
        request.sub_resource = Some("status".to_owned());
        request
    }

    #[test]
    fn people_write_only_their_own_votes_into_status() {
        let at = "2027-01-15T09:00:00Z";
        let base = json!({"phase": "Reviewing"});
        let policy = AdmissionPolicy::default();
        let ledger = LedgerSnapshot::new();
        let own = status_request(
            "bob",
            base.clone(),
            json!({"phase": "Reviewing", "approvals": [{"approver": "bob", "at": at}]}),
        );
        assert!(decide(&own, &policy, &ledger, now()).allowed);
        let forged = status_request(
            "bob",
            base.clone(),
            json!({"phase": "Reviewing", "approvals": [{"approver": "carol", "at": at}]}),
        );
        let verdict = decide(&forged, &policy, &ledger, now());
        assert!(
            !verdict.allowed && verdict.reasons[0].contains("'carol'"),
            "{verdict:?}"
        );
        let phase = status_request("bob", base.clone(), json!({"phase": "Approved"}));
        let verdict = decide(&phase, &policy, &ledger, now());
        assert!(
            !verdict.allowed && verdict.reasons[0].contains("only the operator"),
            "{verdict:?}"
        );
        let withdraw = status_request(
            "bob",
            json!({"phase": "Reviewing", "rejections": [{"rejector": "carol", "at": at}]}),
            base,
        );
        assert!(
            !decide(&withdraw, &policy, &ledger, now()).allowed,
            "removing carol's rejection"
        );
    }

    #[test]
    fn the_controller_recheck_classifies_the_proposer_from_the_spec() {
        let stored: Proposal = serde_json::from_value(proposal(
            AGENT,
            "AGENT_DELETE",
            "Agent",
            "kgents.io/v1",
            None,
        ))
        .expect("valid");
        let occasion = Occasion {
            operation: "REVIEW",
            requester: None,
            old_object: None,
            dry_run: false,
        };
        let verdict = evaluate(
            &stored,
            &occasion,
            &AdmissionPolicy::default(),
            &LedgerSnapshot::new(),
            now(),
        );
        assert!(!verdict.allowed, "HIGH from an agent: {verdict:?}");
        let stored: Proposal = serde_json::from_value(proposal(
            PERSON,
            "AGENT_DELETE",
            "Agent",
            "kgents.io/v1",
            None,
        ))
        .expect("valid");
        let verdict = evaluate(
            &stored,
            &occasion,
            &AdmissionPolicy::default(),
            &LedgerSnapshot::new(),
            now(),
        );
        assert!(verdict.allowed, "HIGH from a person: {verdict:?}");
        assert_eq!(
            verdict.assessment.expect("assessed").decision,
            Decision::RequireHuman
        );
    }
}

/// Properties of the decision over generated proposals, requesters and ledgers.
#[cfg(test)]
mod properties {
    use super::*;
    use kgents_risk::{LedgerProposal, LedgerSnapshot, RiskLevel};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const CHANGE_TYPES: [&str; 15] = [
        "CODE_PATCH",
        "CODE_FEATURE",
        "CODE_REFACTOR",
        "CODE_DELETE",
        "CONFIG_UPDATE",
        "CONFIG_SECRET",
        "AGENT_DEPLOY",
        "AGENT_SCALE",
        "AGENT_DELETE",
        "AGENT_UPGRADE",
        "MEMORY_MIGRATE",
        "MEMORY_COMPACT",
        "MEMORY_DELETE",
        "POLICY_UPDATE",
        "RISK_OVERRIDE",
    ];
    const AGENT: &str = "system:serviceaccount:team:b-gent";
    const PERSON: &str = "alice";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid")
    }

    /// A proposal of `change` to Agent `b` (an allow-listed kind in its own namespace, so the
    /// risk is the only thing that can deny it under the default policy).
    fn proposal(proposer: &str, change: &str, lines: u64, files: u64) -> Value {
        json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": "p", "namespace": "team", "uid": "u-1"},
            "spec": {
                "proposer": proposer, "changeType": change,
                "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b"},
                "magnitude": {"linesAdded": lines, "filesChanged": files},
            },
        })
    }

    fn request(user: &str, object: Value) -> AdmissionRequest<Proposal> {
        let review: kube::core::admission::AdmissionReview<Proposal> =
            serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "r-1",
                    "kind": {"group": "kgents.io", "version": "v1", "kind": "Proposal"},
                    "resource": {"group": "kgents.io", "version": "v1", "resource": "proposals"},
                    "name": "p", "namespace": "team", "operation": "CREATE",
                    "userInfo": {"username": user, "groups": ["system:authenticated"]},
                    "object": object, "dryRun": false,
                }
            }))
            .expect("valid review");
        review.try_into().expect("has a request")
    }

    /// `filings` proposals in the proposer's namespace, `age` seconds apart back from now.
    fn ledger(filings: u32, spacing: i64) -> LedgerSnapshot {
        let mut ledger = LedgerSnapshot::new();
        for i in 0..filings {
            let at = now() - jiff::SignedDuration::from_secs(spacing * i64::from(i));
            ledger.record_proposal(
                "team",
                LedgerProposal::new(format!("o{i}"), format!("uo{i}"), PERSON, at),
            );
        }
        ledger
    }

    fn judged(
        user: &str,
        change: &str,
        lines: u64,
        files: u64,
        ledger: &LedgerSnapshot,
    ) -> (Verdict, RiskLevel) {
        let verdict = decide(
            &request(user, proposal(user, change, lines, files)),
            &AdmissionPolicy::default(),
            ledger,
            now(),
        );
        let level = verdict.assessment.as_ref().expect("assessed").level;
        (verdict, level)
    }

    fn shape() -> impl Strategy<Value = (&'static str, u64, u64)> {
        (
            proptest::sample::select(&CHANGE_TYPES[..]),
            0u64..5_000,
            0u64..50,
        )
    }

    fn user() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(&[AGENT, PERSON][..])
    }

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z/~0-9]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("metadata".to_owned()),
                        Just("name".to_owned()),
                        Just("namespace".to_owned()),
                        Just("kind".to_owned()),
                        Just("apiVersion".to_owned()),
                        Just("op".to_owned()),
                        Just("path".to_owned()),
                        Just("value".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A CRITICAL proposal is denied, whoever files it, whatever the ledger.
        #[test]
        fn a_critical_proposal_is_always_denied(
            user in user(),
            (change, lines, files) in shape(),
            filings in 0u32..8,
        ) {
            let (verdict, level) = judged(user, change, lines, files, &ledger(filings, 300));
            if level == RiskLevel::Critical {
                prop_assert!(!verdict.allowed, "{verdict:?}");
            }
        }

        /// A HIGH proposal filed by a ServiceAccount is denied; one filed by a person is
        /// admitted with a warning that a human must approve it.
        #[test]
        fn a_high_proposal_is_denied_for_an_agent_and_flagged_for_a_person(
            (change, lines, files) in shape(),
            filings in 0u32..8,
        ) {
            let ledger = ledger(filings, 300);
            let (verdict, level) = judged(AGENT, change, lines, files, &ledger);
            if level == RiskLevel::High {
                prop_assert!(!verdict.allowed, "{verdict:?}");
            }
            let (verdict, level) = judged(PERSON, change, lines, files, &ledger);
            if level == RiskLevel::High {
                prop_assert!(verdict.allowed, "{verdict:?}");
                prop_assert!(verdict.warnings.iter().any(|w| w.contains("HIGH risk")), "{verdict:?}");
            }
        }

        /// The decision is monotone in the risk level: of two proposals of the same shape
        /// filed by the same requester, the less risky one is admitted whenever the riskier
        /// one is.
        #[test]
        fn a_less_risky_proposal_is_admitted_whenever_a_riskier_one_is(
            user in user(),
            a in shape(),
            b in shape(),
            filings in 0u32..8,
        ) {
            let ledger = ledger(filings, 300);
            let (verdict_a, level_a) = judged(user, a.0, a.1, a.2, &ledger);
            let (verdict_b, level_b) = judged(user, b.0, b.1, b.2, &ledger);
            let ((safer, _), (riskier, _)) = if level_a <= level_b {
                ((verdict_a, level_a), (verdict_b, level_b))
            } else {
                ((verdict_b, level_b), (verdict_a, level_a))
            };
            prop_assert!(!riskier.allowed || safer.allowed, "{safer:?} / {riskier:?}");
        }

        /// A busier ledger never turns a denial into an admission (velocity only adds risk).
        #[test]
        fn more_recent_filings_never_admit_what_was_denied(
            user in user(),
            (change, lines, files) in shape(),
            filings in 0u32..6,
            more in 1u32..6,
        ) {
            let (calm, calm_level) = judged(user, change, lines, files, &ledger(filings, 300));
            let (busy, busy_level) =
                judged(user, change, lines, files, &ledger(filings + more, 300));
            prop_assert!(busy_level >= calm_level);
            prop_assert!(calm.allowed || !busy.allowed, "{calm:?} / {busy:?}");
        }

        /// Parsing a patch never panics, whatever JSON (or text) it carries and whatever its
        /// declared type; and what parses as a merge or apply patch is an object that does not
        /// rename its target.
        #[test]
        fn patch_checks_never_panic_on_arbitrary_json(
            document in json_value(),
            text in ".{0,64}",
            target_name in "[a-z]{1,4}",
            target_namespace in proptest::option::of("[a-z]{1,4}"),
        ) {
            let target = kgents_crds::proposal::TargetRef {
                api_version: Some("kgents.io/v1".into()),
                kind: "Agent".into(),
                name: target_name.clone(),
                namespace: target_namespace,
            };
            for content in [document.to_string(), text.clone()] {
                for kind in [
                    kgents_crds::proposal::PatchType::Merge,
                    kgents_crds::proposal::PatchType::Json,
                    kgents_crds::proposal::PatchType::Apply,
                ] {
                    let spec = kgents_crds::proposal::PatchSpec { kind, content: content.clone() };
                    match patch::parse(&spec, &target) {
                        Ok(ParsedPatch::Merge(v) | ParsedPatch::Apply(v)) => {
                            prop_assert!(v.is_object());
                            if let Some(name) = v.pointer("/metadata/name") {
                                prop_assert_eq!(name.as_str(), Some(target_name.as_str()));
                            }
                        }
                        Ok(ParsedPatch::Json(ops)) => prop_assert!(!ops.0.is_empty()),
                        Err(e) => prop_assert!(!e.to_string().is_empty()),
                    }
                }
            }
        }

        /// The whole decision never panics on an arbitrary patch, and a patch that does not
        /// parse is always a denial that says so.
        #[test]
        fn a_decision_on_an_arbitrary_patch_never_panics(
            document in json_value(),
            kind in proptest::sample::select(&["merge", "json", "apply"][..]),
        ) {
            let mut object = proposal(PERSON, "AGENT_SCALE", 1, 1);
            object["spec"]["patch"] = json!({"type": kind, "content": document.to_string()});
            let verdict = decide(
                &request(PERSON, object),
                &AdmissionPolicy::default(),
                &LedgerSnapshot::new(),
                now(),
            );
            let target = kgents_crds::proposal::TargetRef {
                api_version: Some("kgents.io/v1".into()),
                kind: "Agent".into(),
                name: "b".into(),
                namespace: None,
            };
            let spec: kgents_crds::proposal::PatchSpec =
                serde_json::from_value(json!({"type": kind, "content": document.to_string()}))
                    .expect("valid patch spec");
            if let Err(e) = patch::parse(&spec, &target) {
                prop_assert!(!verdict.allowed);
                prop_assert!(verdict.reasons.contains(&e.to_string()), "{verdict:?}");
            }
        }
    }
}
