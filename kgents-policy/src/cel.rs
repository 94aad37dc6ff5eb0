//! CEL rules compiled once ([`CompiledRules::compile`]) and evaluated per proposal with kube's
//! client-side CEL (`kube::core::cel`, the `cel` crate kube-cel re-exports, so the versions
//! agree) and the Kubernetes extension functions (strings, lists, quantities, …).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use kube::core::cel::{KubeCelExt, cel};

use super::policy::PolicyRule;
use crate::{Error, Result};

/// One compiled rule.
struct CompiledRule {
    rule: PolicyRule,
    program: cel::Program,
}

impl std::fmt::Debug for CompiledRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRule")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// The policy's CEL rules, compiled. `Send + Sync`: programs are immutable ASTs.
#[derive(Debug, Default)]
pub struct CompiledRules {
    rules: Vec<CompiledRule>,
}

/// What a rule is evaluated against; see [`PolicyRule`] for the variables.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    /// The Proposal as JSON.
    pub object: &'a serde_json::Value,
    /// The previous Proposal on UPDATE.
    pub old_object: Option<&'a serde_json::Value>,
    /// The request (operation, namespace, name, dryRun, userInfo).
    pub request: &'a serde_json::Value,
    /// The target reference (apiVersion, group, kind, name, namespace).
    pub target: &'a serde_json::Value,
    /// The parsed patch document, or null.
    pub patch: &'a serde_json::Value,
    /// The risk assessment (score, level, decision).
    pub risk: &'a serde_json::Value,
}

/// A rule that did not hold, or could not be evaluated (which counts as not holding: a rule
/// that cannot say yes denies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name.
    pub rule: String,
    /// Why it denied.
    pub message: String,
}

thread_local! {
    /// The root context with the standard and Kubernetes functions, built once per thread:
    /// registering the functions costs more than evaluating a rule, and a `cel::Context` is
    /// not `Sync`, so it cannot be shared between threads.
    static ROOT: RefCell<Option<cel::Context<'static>>> = const { RefCell::new(None) };
}

impl CompiledRules {
    /// Compiles every rule; the first that does not parse is an error naming it.
    pub fn compile(rules: &[PolicyRule]) -> Result<Self> {
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            if rule.name.trim().is_empty() {
                return Err(Error::Policy {
                    location: "rules".to_owned(),
                    message: format!(
                        "a rule has no name (expression '{}'); name every rule",
                        rule.expression
                    ),
                });
            }
            let program = cel::Program::compile(&rule.expression).map_err(|e| Error::Policy {
                location: format!("rules[{}]", rule.name),
                message: format!(
                    "the CEL expression '{}' does not compile: {e}; fix or remove the rule",
                    rule.expression
                ),
            })?;
            compiled.push(CompiledRule {
                rule: rule.clone(),
                program,
            });
        }
        Ok(Self { rules: compiled })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluates the rules that apply to `target_kind` and returns those that do not hold.
    pub fn violations(&self, target_kind: &str, bindings: &Bindings<'_>) -> Vec<Violation> {
        let applicable: Vec<&CompiledRule> = self
            .rules
            .iter()
            .filter(|c| c.rule.kinds.is_empty() || c.rule.kinds.iter().any(|k| k == target_kind))
            .collect();
        if applicable.is_empty() {
            return Vec::new();
        }
        ROOT.with(|root| {
            let mut root = root.borrow_mut();
            let root = root.get_or_insert_with(|| cel::Context::default().with_all());
            let mut scope = root.new_inner_scope();
            scope.add_variable_from_value("object", json_to_cel(bindings.object));
            scope.add_variable_from_value(
                "oldObject",
                bindings.old_object.map(json_to_cel).unwrap_or(cel::Value::Null),
            );
            scope.add_variable_from_value("request", json_to_cel(bindings.request));
            scope.add_variable_from_value("target", json_to_cel(bindings.target));
            scope.add_variable_from_value("patch", json_to_cel(bindings.patch));
            scope.add_variable_from_value("risk", json_to_cel(bindings.risk));
            applicable
                .into_iter()
                .filter_map(|c| {
                    let denial = |why: String| Violation {
                        rule: c.rule.name.clone(),
                        message: why,
                    };
                    match c.program.execute(&scope) {
                        Ok(cel::Value::Bool(true)) => None,
                        Ok(cel::Value::Bool(false)) => Some(denial(c.rule.message.clone().unwrap_or_else(|| {
                            format!("'{}' is false", c.rule.expression)
                        }))),
                        Ok(other) => Some(denial(format!(
                            "'{}' returned {other:?}, not a boolean; the rule must evaluate to true or false",
                            c.rule.expression
                        ))),
                        Err(e) => Some(denial(format!(
                            "'{}' could not be evaluated ({e}); guard optional fields with has()",
                            c.rule.expression
                        ))),
                    }
                })
                .collect()
        })
    }
}

/// JSON to a CEL value: integers that fit become `int`, larger ones `uint`, others `double`.
pub fn json_to_cel(value: &serde_json::Value) -> cel::Value {
    match value {
        serde_json::Value::Null => cel::Value::Null,
        serde_json::Value::Bool(b) => cel::Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                cel::Value::UInt(u)
            } else {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            cel::Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(fields) => {
            let map: HashMap<cel::objects::Key, cel::Value> = fields
                .iter()
                .map(|(k, v)| {
                    (
                        cel::objects::Key::String(Arc::new(k.clone())),
                        json_to_cel(v),
                    )
                })
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(rules: &[PolicyRule], kind: &str, patch: serde_json::Value) -> Vec<Violation> {
        let compiled = CompiledRules::compile(rules).expect("compiles");
        let null = serde_json::Value::Null;
        let request =
            json!({"operation": "CREATE", "userInfo": {"username": "alice", "groups": []}});
        let target = json!({"kind": kind, "name": "x"});
        let risk = json!({"score": 0.1, "level": "LOW"});
        compiled.violations(
            kind,
            &Bindings {
                object: &null,
                old_object: None,
                request: &request,
                target: &target,
                patch: &patch,
                risk: &risk,
            },
        )
    }

    fn max_replicas() -> PolicyRule {
        PolicyRule::new(
            "max-replicas",
            "!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= 10",
        )
        .with_message("at most 10 replicas")
    }

    fn no_privileged() -> PolicyRule {
        PolicyRule::new(
            "no-privileged",
            "!has(patch.spec) || !has(patch.spec.template) || !has(patch.spec.template.spec) || !has(patch.spec.template.spec.containers) || patch.spec.template.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || c.securityContext.privileged == false)",
        )
        .for_kinds(&["Deployment"])
    }

    #[test]
    fn replicas_rule_holds_up_to_ten() {
        assert!(
            run(
                &[max_replicas()],
                "Agent",
                json!({"spec": {"replicas": 10}})
            )
            .is_empty()
        );
        assert!(run(&[max_replicas()], "Agent", json!({"metadata": {}})).is_empty());
        let denied = run(
            &[max_replicas()],
            "Agent",
            json!({"spec": {"replicas": 11}}),
        );
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].message, "at most 10 replicas");
    }

    #[test]
    fn privileged_containers_are_denied_only_for_deployments() {
        let privileged = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a"}, {"name": "b", "securityContext": {"privileged": true}}]}}}});
        assert_eq!(
            run(&[no_privileged()], "Deployment", privileged.clone()).len(),
            1
        );
        assert!(run(&[no_privileged()], "Agent", privileged).is_empty());
        let fine = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "securityContext": {"privileged": false}}]}}}});
        assert!(run(&[no_privileged()], "Deployment", fine).is_empty());
    }

    #[test]
    fn errors_and_non_booleans_deny() {
        let unguarded = PolicyRule::new("unguarded", "patch.spec.replicas <= 10");
        let denied = run(&[unguarded], "Agent", json!({}));
        assert_eq!(denied.len(), 1);
        assert!(
            denied[0].message.contains("could not be evaluated"),
            "{denied:?}"
        );
        let number = PolicyRule::new("number", "1 + 1");
        assert!(
            run(&[number], "Agent", json!({}))[0]
                .message
                .contains("not a boolean")
        );
    }

    #[test]
    fn kubernetes_extension_functions_and_request_are_available() {
        let rule = PolicyRule::new(
            "user",
            "request.userInfo.username.lowerAscii() == 'alice' && risk.score < 0.2",
        );
        assert!(run(&[rule], "Agent", json!({})).is_empty());
    }

    #[test]
    fn a_rule_without_a_name_or_that_does_not_parse_is_refused() {
        assert!(CompiledRules::compile(&[PolicyRule::new("", "true")]).is_err());
        let error = CompiledRules::compile(&[PolicyRule::new("bad", "1 +")]).expect_err("parse");
        assert!(error.to_string().contains("bad"), "{error}");
    }
}
