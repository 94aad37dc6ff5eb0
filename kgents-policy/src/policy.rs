//! [`AdmissionPolicy`]: what the webhook (and the controller's re-check) enforces, built once
//! from a [`PolicyDocument`] (the `policy.yaml` key of the policy ConfigMap) and shared behind
//! an `Arc`. CEL rules are compiled when the policy is built, never per request.

use std::collections::{BTreeMap, BTreeSet};

use kgents_risk::RiskPolicy;
use serde::{Deserialize, Serialize};

use super::cel::CompiledRules;
use crate::{Error, Result};

/// The key of the policy ConfigMap that holds the [`PolicyDocument`] (YAML or JSON).
pub const POLICY_KEY: &str = "policy.yaml";

/// Target kinds a proposal may change unless the policy says otherwise, as `Kind` (core group)
/// or `Kind.group`.
pub const DEFAULT_ALLOWED_KINDS: [&str; 6] = [
    "Agent.kgents.io",
    "Memory.kgents.io",
    "Umwelt.kgents.io",
    "Pheromone.kgents.io",
    "ConfigMap",
    "Deployment.apps",
];

/// API groups no proposal may ever touch, whatever the policy says: RBAC (an agent could grant
/// itself anything), admission (it could switch this webhook off), CRDs (it could change the
/// schema that makes proposals immutable) and certificates.
pub const FORBIDDEN_GROUPS: [&str; 4] = [
    "rbac.authorization.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "certificates.k8s.io",
];

/// Kinds no proposal may ever touch, in any group: credentials, the RBAC and admission kinds
/// (also when the apiVersion is omitted), and proposals themselves (a proposal must not be able
/// to approve a proposal).
pub const FORBIDDEN_KINDS: [&str; 13] = [
    "Secret",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "CustomResourceDefinition",
    "Proposal",
];

/// One CEL rule of the policy. It must evaluate to `true` for the proposal to be admitted.
///
/// Variables: `object` (the Proposal), `oldObject` (on UPDATE, else null), `request`
/// (`operation`, `namespace`, `name`, `dryRun`, `userInfo.username`, `userInfo.groups`),
/// `target` (`apiVersion`, `group`, `kind`, `name`, `namespace`), `patch` (the parsed patch
/// document: an object for merge/apply, the list of operations for json; null without a
/// patch) and `risk` (`score`, `level`, `decision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// A short name shown in denials, e.g. `max-replicas`.
    pub name: String,
    /// The CEL expression, e.g. `!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= 10`.
    pub expression: String,
    /// What a denial says (default: the rule's name and expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Only proposals whose target kind is one of these are checked (empty: every proposal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

impl PolicyRule {
    /// A rule for every target kind.
    pub fn new(name: impl Into<String>, expression: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            expression: expression.into(),
            message: None,
            kinds: Vec::new(),
        }
    }

    /// This rule with a denial message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// This rule, checked only for targets of `kinds`.
    pub fn for_kinds(mut self, kinds: &[&str]) -> Self {
        self.kinds = kinds.iter().map(|k| (*k).to_owned()).collect();
        self
    }
}

/// The policy as written in the ConfigMap. Every field is optional.
///
/// ```yaml
/// allowedKinds: [Agent.kgents.io, ConfigMap, Deployment.apps]
/// allowCrossNamespace: false
/// rules:
///   - name: max-replicas
///     kinds: [Deployment, Agent]
///     expression: "!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= 10"
///     message: at most 10 replicas
/// risk: { thresholds: { lowMax: 0.2 } }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PolicyDocument {
    /// Target kinds proposals may change (`Kind` or `Kind.group`); default
    /// [`DEFAULT_ALLOWED_KINDS`]. Forbidden kinds and groups cannot be allowed.
    pub allowed_kinds: Option<Vec<String>>,
    /// Whether a proposal may target another namespace than its own (default false).
    pub allow_cross_namespace: bool,
    /// CEL rules; all must hold.
    pub rules: Vec<PolicyRule>,
    /// Risk weights (default: DESIGN §2).
    pub risk: Option<RiskPolicy>,
}

/// A kind on the allow-list: its name and, when given, its API group (`""` is the core group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KindRef {
    /// e.g. `Deployment`.
    pub kind: String,
    /// e.g. `apps`; `""` for the core group.
    pub group: String,
}

impl KindRef {
    /// Parses `Kind` or `Kind.group`.
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((kind, group)) => Self {
                kind: kind.to_owned(),
                group: group.to_owned(),
            },
            None => Self {
                kind: text.to_owned(),
                group: String::new(),
            },
        }
    }
}

impl std::fmt::Display for KindRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// Why a kind is never allowed, if it is not.
pub fn forbidden_reason(kind: &str, group: Option<&str>) -> Option<String> {
    if FORBIDDEN_KINDS.contains(&kind) {
        return Some(format!(
            "target kind {kind} is never allowed in a proposal (credentials, RBAC, admission, CRDs and proposals themselves are out of reach)"
        ));
    }
    match group {
        Some(group) if FORBIDDEN_GROUPS.contains(&group) => Some(format!(
            "target API group {group} is never allowed in a proposal (RBAC, admission, CRDs and certificates are out of reach)"
        )),
        _ => None,
    }
}

/// Why a proposal naming a file outside the cluster (target kind `File` without an
/// apiVersion) is refused, if it is. Such a proposal records a code change made and executed
/// elsewhere: it is admitted only as a CODE_* change without a patch (the operator has nothing
/// to execute), is assessed and reviewed like any other, and ends Approved or Rejected. It needs
/// no place on the allow-list (it changes nothing in the cluster); a policy that wants none can
/// say so with a CEL rule such as `target.kind != 'File'`.
pub fn external_file_reason(spec: &kgents_crds::ProposalSpec) -> Option<String> {
    if !spec.target.is_external_file() {
        return None;
    }
    let mut problems = Vec::new();
    if !spec.change_type.is_code() {
        problems.push(format!(
            "its changeType is {} (only CODE_PATCH, CODE_FEATURE, CODE_REFACTOR and CODE_DELETE may record an external change)",
            serde_json::to_value(spec.change_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
    }
    if spec.patch.is_some() {
        problems.push(
            "it carries a patch (the operator never executes an external change; drop the patch, or target the Kubernetes object with its apiVersion)".to_owned(),
        );
    }
    (!problems.is_empty()).then(|| {
        format!(
            "target kind File records a code change made outside the cluster, but {}",
            problems.join(" and ")
        )
    })
}

/// What the webhook enforces; cheap to share (`Arc<AdmissionPolicy>`), immutable once built.
#[derive(Debug)]
pub struct AdmissionPolicy {
    allowed_kinds: BTreeSet<KindRef>,
    /// Whether targets outside the proposal's namespace are allowed.
    pub allow_cross_namespace: bool,
    /// The compiled CEL rules.
    pub rules: CompiledRules,
    /// Risk weights.
    pub risk: RiskPolicy,
}

impl Default for AdmissionPolicy {
    fn default() -> Self {
        Self::from_document(&PolicyDocument::default())
            .unwrap_or_else(|_| unreachable_default_policy())
    }
}

/// The default document always builds; this is only a fail-closed fallback that allows nothing.
fn unreachable_default_policy() -> AdmissionPolicy {
    AdmissionPolicy {
        allowed_kinds: BTreeSet::new(),
        allow_cross_namespace: false,
        rules: CompiledRules::default(),
        risk: RiskPolicy::default(),
    }
}

fn invalid(location: &str, message: String) -> Error {
    Error::Policy {
        location: location.to_owned(),
        message,
    }
}

impl AdmissionPolicy {
    /// Builds (validates and compiles) a policy. Errors name what is wrong: a forbidden kind on
    /// the allow-list, an invalid risk weight, a CEL rule that does not compile.
    pub fn from_document(document: &PolicyDocument) -> Result<Self> {
        let kinds: Vec<String> = match &document.allowed_kinds {
            Some(kinds) => kinds.clone(),
            None => DEFAULT_ALLOWED_KINDS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
        };
        let mut allowed_kinds = BTreeSet::new();
        for text in &kinds {
            let kind = KindRef::parse(text.trim());
            if kind.kind.is_empty() {
                return Err(invalid(
                    "allowedKinds",
                    format!("entry '{text}' names no kind; write Kind or Kind.group"),
                ));
            }
            if let Some(reason) = forbidden_reason(&kind.kind, Some(&kind.group)) {
                return Err(invalid(
                    "allowedKinds",
                    format!("entry '{text}': {reason}; remove it"),
                ));
            }
            allowed_kinds.insert(kind);
        }
        let risk = document.risk.clone().unwrap_or_default();
        risk.validate()
            .map_err(|e| invalid("risk", format!("{e}; fix the weight or remove it")))?;
        let rules = CompiledRules::compile(&document.rules)?;
        Ok(Self {
            allowed_kinds,
            allow_cross_namespace: document.allow_cross_namespace,
            rules,
            risk,
        })
    }

    /// Builds a policy from the data of the policy ConfigMap (`policy.yaml`, YAML or JSON); no
    /// such key means the default policy.
    pub fn from_config_map_data(data: &BTreeMap<String, String>) -> Result<Self> {
        match data.get(POLICY_KEY) {
            None => Ok(Self::default()),
            Some(text) => {
                let document: PolicyDocument = serde_saphyr::from_str(text).map_err(|e| {
                    invalid(
                        POLICY_KEY,
                        format!(
                            "not a valid policy document: {e}; see the PolicyDocument documentation"
                        ),
                    )
                })?;
                Self::from_document(&document)
            }
        }
    }

    /// Whether the allow-list holds `kind` (in `group`, when known).
    pub fn allows_kind(&self, kind: &str, group: Option<&str>) -> bool {
        self.allowed_kinds
            .iter()
            .any(|allowed| allowed.kind == kind && group.is_none_or(|g| allowed.group == g))
    }

    /// The allow-list, for messages.
    pub fn allowed_kinds(&self) -> impl Iterator<Item = &KindRef> {
        self.allowed_kinds.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_allows_the_six_kinds_in_their_groups() {
        let policy = AdmissionPolicy::default();
        assert!(policy.allows_kind("Agent", Some("kgents.io")));
        assert!(policy.allows_kind("ConfigMap", Some("")));
        assert!(policy.allows_kind("Deployment", Some("apps")));
        assert!(policy.allows_kind("Deployment", None));
        assert!(!policy.allows_kind("Deployment", Some("evil.example.com")));
        assert!(!policy.allows_kind("Secret", Some("")));
        assert!(!policy.allows_kind("StatefulSet", Some("apps")));
    }

    #[test]
    fn forbidden_kinds_cannot_be_allowed() {
        for entry in [
            "Secret",
            "ClusterRole.rbac.authorization.k8s.io",
            "Widget.rbac.authorization.k8s.io",
            "Proposal.kgents.io",
        ] {
            let document = PolicyDocument {
                allowed_kinds: Some(vec![entry.to_owned()]),
                ..PolicyDocument::default()
            };
            let error = AdmissionPolicy::from_document(&document).expect_err(entry);
            assert!(error.to_string().contains("never allowed"), "{error}");
        }
    }

    #[test]
    fn config_map_yaml_is_parsed_and_bad_documents_are_explained() {
        let data = BTreeMap::from([(
            POLICY_KEY.to_owned(),
            "allowedKinds: [ConfigMap]\nrules:\n  - name: small\n    expression: \"true\"\n"
                .to_owned(),
        )]);
        let policy = AdmissionPolicy::from_config_map_data(&data).expect("valid");
        assert!(policy.allows_kind("ConfigMap", None));
        assert!(!policy.allows_kind("Agent", None));
        assert_eq!(policy.rules.len(), 1);

        let bad = BTreeMap::from([(POLICY_KEY.to_owned(), "alowedKinds: []".to_owned())]);
        let error = AdmissionPolicy::from_config_map_data(&bad).expect_err("unknown field");
        assert!(
            error.to_string().contains("not a valid policy document"),
            "{error}"
        );

        let bad_rule = BTreeMap::from([(
            POLICY_KEY.to_owned(),
            "rules: [{name: broken, expression: \"patch.spec.replicas <=\"}]".to_owned(),
        )]);
        let error = AdmissionPolicy::from_config_map_data(&bad_rule).expect_err("bad CEL");
        assert!(error.to_string().contains("broken"), "{error}");

        let bad_risk = BTreeMap::from([(
            POLICY_KEY.to_owned(),
            "risk: {thresholds: {lowMax: 0.9, mediumMax: 0.5}}".to_owned(),
        )]);
        assert!(AdmissionPolicy::from_config_map_data(&bad_risk).is_err());
    }

    #[test]
    fn policy_errors_are_their_own_kind_and_say_where_and_what_to_do() {
        // (policy.yaml, location, fragments of the message)
        let table = [
            ("allowedKinds: [Secret]", "allowedKinds", "remove it"),
            (
                "allowedKinds: ['.apps']",
                "allowedKinds",
                "write Kind or Kind.group",
            ),
            ("alowedKinds: []", POLICY_KEY, "not a valid policy document"),
            (
                "rules: [{name: broken, expression: \"1 +\"}]",
                "rules[broken]",
                "fix or remove the rule",
            ),
            (
                "rules: [{name: '', expression: 'true'}]",
                "rules",
                "name every rule",
            ),
            (
                "risk: {thresholds: {lowMax: 0.9, mediumMax: 0.5}}",
                "risk",
                "fix the weight or remove it",
            ),
        ];
        for (text, expected_location, fragment) in table {
            let data = BTreeMap::from([(POLICY_KEY.to_owned(), text.to_owned())]);
            let error = AdmissionPolicy::from_config_map_data(&data).expect_err(text);
            let Error::Policy { location, message } = &error else {
                panic!("{text}: not a policy error: {error:?}");
            };
            assert_eq!(location, expected_location, "{text}");
            assert!(message.contains(fragment), "{text}: {message}");
            assert!(error.to_string().contains("policy ConfigMap"), "{error}");
        }
    }
}
