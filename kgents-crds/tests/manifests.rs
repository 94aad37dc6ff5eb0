//! The generated CRDs: committed YAML matches the types, snapshots, names, subresources and
//! printer columns whose types match the fields they show.

mod common;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kgents_crds::{crds, manifest, manifests};
use kube::CustomResourceExt;
use serde_json::Value;

#[test]
fn committed_crds_match_the_types() {
    let dir = common::workspace_root().join("deploy/crds");
    for (name, generated) in manifests().expect("CRDs render") {
        let path = dir.join(&name);
        // Same bytes as `cargo run --example crdgen`, without building the workspace's binaries.
        if std::env::var_os("KGENTS_WRITE_CRDS").is_some() {
            std::fs::write(&path, &generated).expect("write deploy/crds");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; run `cargo run --example crdgen`",
                path.display()
            )
        });
        assert!(
            committed == generated,
            "{} differs from what the Rust types generate; run `cargo run --example crdgen` \
             and commit the result",
            path.display()
        );
    }
    let mut committed_files: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/crds exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    committed_files.sort();
    let mut generated_files: Vec<String> =
        manifests().unwrap().into_iter().map(|(n, _)| n).collect();
    generated_files.sort();
    assert_eq!(
        committed_files, generated_files,
        "deploy/crds holds files the types do not generate"
    );
}

#[test]
fn committed_yaml_parses_back_into_the_same_crds() {
    // What `kubectl apply -f deploy/crds/` reads: each file must be one well-formed CRD.
    let dir = common::workspace_root().join("deploy/crds");
    for crd in crds() {
        let path = dir.join(manifest::file_name(&crd));
        let text = std::fs::read_to_string(&path).expect("committed file");
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse as a CRD: {e}", path.display()));
        assert_eq!(
            parsed,
            crd,
            "{} parses into a different CRD",
            path.display()
        );
    }
}

#[test]
fn snapshots_of_each_crd() {
    insta::assert_yaml_snapshot!("agent", kgents_crds::Agent::crd());
    insta::assert_yaml_snapshot!("pheromone", kgents_crds::Pheromone::crd());
    insta::assert_yaml_snapshot!("memory", kgents_crds::Memory::crd());
    insta::assert_yaml_snapshot!("umwelt", kgents_crds::Umwelt::crd());
    insta::assert_yaml_snapshot!("proposal", kgents_crds::Proposal::crd());
    insta::assert_yaml_snapshot!("workflow", kgents_crds::Workflow::crd());
}

#[test]
fn names_scope_category_and_subresources() {
    let expected = [
        ("agents.kgents.io", "Agent", "ag"),
        ("pheromones.kgents.io", "Pheromone", "ph"),
        ("memories.kgents.io", "Memory", "mem"),
        ("umwelts.kgents.io", "Umwelt", "uw"),
        ("proposals.kgents.io", "Proposal", "prop"),
        ("workflows.kgents.io", "Workflow", "wf"),
    ];
    let all = crds();
    assert_eq!(all.len(), expected.len());
    for (crd, (name, kind, short)) in all.iter().zip(expected) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, "kgents.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_owned()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["kgents".to_owned()][..])
        );
        assert_eq!(crd.spec.versions.len(), 1, "{name}: one version");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1");
        assert!(
            version.served && version.storage,
            "{name}: v1 served and stored"
        );
        let subresources = version.subresources.as_ref().expect("subresources");
        assert!(subresources.status.is_some(), "{name}: status subresource");
        let scale = subresources.scale.as_ref();
        if kind == "Agent" {
            let scale = scale.expect("Agent has a scale subresource");
            assert_eq!(scale.spec_replicas_path, ".spec.replicas");
            assert_eq!(scale.status_replicas_path, ".status.replicas");
            assert_eq!(
                scale.label_selector_path.as_deref(),
                Some(".status.selector")
            );
        } else {
            assert!(scale.is_none(), "{name}: only Agent scales");
        }
    }
}

/// Follows a printer column's `.a.b.c` JSON path through the schema.
fn schema_at<'a>(schema: &'a Value, json_path: &str) -> Option<&'a Value> {
    json_path
        .trim_start_matches('.')
        .split('.')
        .try_fold(schema, |node, segment| node.get("properties")?.get(segment))
}

#[test]
fn printer_columns_have_the_type_of_their_field() {
    // The original declared an integer column over an array; every column here must point at an
    // existing field whose schema type matches the column type.
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap();
        let schema = common::open_api_schema(&crd);
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert!(
            columns.iter().any(|c| c.name == "Age"),
            "{name}: has an Age column"
        );
        for column in columns {
            // Object metadata is not in the CRD schema: its two fields used by columns are a
            // timestamp (Age as a date; an exact wide column as a string) and a string.
            if column.json_path == ".metadata.creationTimestamp" {
                let expected = if column.name == "Age" {
                    "date"
                } else {
                    "string"
                };
                assert_eq!(column.type_, expected, "{name}: column {}", column.name);
                continue;
            }
            if column.json_path == ".metadata.namespace" {
                assert_eq!(column.type_, "string", "{name}: column {}", column.name);
                continue;
            }
            let field = schema_at(&schema, &column.json_path).unwrap_or_else(|| {
                panic!(
                    "{name}: column {} points at nothing ({})",
                    column.name, column.json_path
                )
            });
            let field_type = field["type"].as_str().unwrap_or("int-or-string");
            let compatible = match column.type_.as_str() {
                "string" => field_type == "string" || field_type == "int-or-string",
                "integer" => field_type == "integer",
                "number" => field_type == "number" || field_type == "integer",
                "boolean" => field_type == "boolean",
                "date" => field_type == "string" && field["format"] == "date-time",
                other => panic!("{name}: unknown column type {other}"),
            };
            assert!(
                compatible,
                "{name}: column {} has type {} but {} is {field_type}",
                column.name, column.type_, column.json_path
            );
        }
    }
}

#[test]
fn every_field_is_documented_and_camel_case() {
    // `kubectl explain` shows descriptions; Kubernetes fields are camelCase (the original mixed
    // in snake_case).
    fn walk(node: &Value, path: &str, crd: &str, problems: &mut Vec<String>) {
        if let Some(properties) = node["properties"].as_object() {
            for (key, child) in properties {
                let child_path = format!("{path}.{key}");
                if key.contains('_') || key.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                    problems.push(format!("{crd}: {child_path} is not camelCase"));
                }
                let inherited =
                    ["apiVersion", "kind", "metadata"].contains(&key.as_str()) && path.is_empty();
                if !inherited && child["description"].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("{crd}: {child_path} has no description"));
                }
                walk(child, &child_path, crd, problems);
            }
        }
        if node["items"].is_object() {
            walk(&node["items"], &format!("{path}[]"), crd, problems);
        }
    }
    let mut problems = Vec::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap();
        walk(&common::open_api_schema(&crd), "", &name, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn status_schemas_are_closed_and_declare_every_written_field() {
    // A closed status schema prunes what it does not declare (the original lost
    // lastProbeLatencyMs that way). Serialize a fully populated status of each kind and check
    // that nothing would be pruned.
    use kgents_crds::agent::*;
    use kgents_crds::memory::*;
    use kgents_crds::pheromone::*;
    use kgents_crds::proposal::*;
    use kgents_crds::umwelt::*;
    use kgents_crds::{Condition, Time};
    let t = Time(jiff::Timestamp::from_second(1_790_000_000).unwrap());
    let condition = Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: "Reconciled".into(),
        message: "all good".into(),
        last_transition_time: t.clone(),
        observed_generation: Some(3),
    };
    let agent = AgentStatus {
        phase: Some(AgentPhase::Running),
        observed_generation: Some(3),
        replicas: Some(2),
        ready_replicas: Some(2),
        selector: Some("kgents.io/agent=l-gent".into()),
        deployment: Some("l-gent".into()),
        service: Some("l-gent".into()),
        memory: Some("l-gent".into()),
        umwelt: Some("l-gent".into()),
        cognitive_health: Some(CognitiveHealth::Healthy),
        last_probe: Some(ProbeRecord {
            kind: ProbeKind::Echo,
            outcome: ProbeOutcome::Healthy,
            latency_ms: Some(412),
            message: Some("nonce echoed".into()),
            time: t.clone(),
        }),
        conditions: vec![condition.clone()],
    };
    let pheromone = PheromoneStatus {
        phase: Some(PheromonePhase::Evaporating),
        evaporates_at: Some(t.clone()),
    };
    let memory = MemoryStatus {
        phase: Some(MemoryPhase::Ready),
        observed_generation: Some(1),
        pvc_name: Some("memory-l-gent".into()),
        config_map_name: Some("memory-l-gent".into()),
        size_used: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "12Mi".into(),
        )),
        last_access: Some(t.clone()),
        compost_at: Some(t.clone()),
        conditions: vec![condition.clone()],
    };
    let umwelt = UmweltStatus {
        observed_generation: Some(1),
        service_account: Some("agent-l-gent".into()),
        role: Some("agent-l-gent".into()),
        config_map_name: Some("umwelt-l-gent".into()),
        secret_valid: Some(true),
        active_agents: Some(1),
        last_applied: Some(t.clone()),
        conditions: vec![condition.clone()],
    };
    let proposal = ProposalStatus {
        phase: Some(ProposalPhase::Merged),
        observed_generation: Some(1),
        risk_assessment: Some(RiskAssessment {
            base_risk: 0.1,
            size_factor: 1.2,
            test_factor: 0.9,
            velocity_penalty: 0.1,
            cumulative_penalty: 0.05,
            score: 0.17,
            level: RiskLevel::Low,
            decision: RiskDecision::AutoApprove,
            recent_proposals: 1,
            applied_changes: 1,
            explanation: Some("risk 0.17 LOW".into()),
            calculated_at: t.clone(),
        }),
        review: Some(ReviewStatus {
            requested: true,
            pheromone: Some("review-x".into()),
            result: Some(ReviewResult::Passed),
            reviewer: Some("t-gent".into()),
            report: Some("fine".into()),
            reviewed_at: Some(t.clone()),
        }),
        approvals: vec![Approval {
            approver: "alice".into(),
            at: t.clone(),
            comment: Some("ok".into()),
        }],
        rejections: vec![Rejection {
            rejector: "bob".into(),
            at: t.clone(),
            reason: Some("no".into()),
        }],
        execution: Some(Execution {
            success: true,
            dry_run: false,
            executed_at: t.clone(),
            message: Some("applied".into()),
            previous: Some("{}".into()),
        }),
        expires_at: Some(t.clone()),
        superseded_by: Some("newer".into()),
        proposer_kind: Some(ProposerKind::Agent),
        conditions: vec![condition.clone()],
    };
    let workflow = kgents_crds::workflow::WorkflowStatus {
        phase: Some(kgents_crds::workflow::WorkflowPhase::Running),
        observed_generation: Some(2),
        retry_generation: 1,
        succeeded: 1,
        total: 2,
        started_at: Some(t.clone()),
        finished_at: Some(t.clone()),
        steps: vec![kgents_crds::workflow::StepStatus {
            name: "scale".into(),
            phase: kgents_crds::workflow::StepPhase::Running,
            attempt: 2,
            retries: 1,
            idempotency_key: Some("uid/scale/2".into()),
            object_name: Some("wf-scale-2".into()),
            started_at: Some(t.clone()),
            finished_at: Some(t.clone()),
            next_retry_at: Some(t.clone()),
            message: Some("attempt 1 failed".into()),
            output_digest: Some("fnv1a64:0123456789abcdef".into()),
        }],
        conditions: vec![condition],
    };
    let cases = [
        (
            kgents_crds::Agent::crd(),
            serde_json::to_value(agent).unwrap(),
        ),
        (
            kgents_crds::Pheromone::crd(),
            serde_json::to_value(pheromone).unwrap(),
        ),
        (
            kgents_crds::Memory::crd(),
            serde_json::to_value(memory).unwrap(),
        ),
        (
            kgents_crds::Umwelt::crd(),
            serde_json::to_value(umwelt).unwrap(),
        ),
        (
            kgents_crds::Proposal::crd(),
            serde_json::to_value(proposal).unwrap(),
        ),
        (
            kgents_crds::Workflow::crd(),
            serde_json::to_value(workflow).unwrap(),
        ),
    ];
    for (crd, status) in cases {
        let schema = common::open_api_schema(&crd);
        let status_schema = &schema["properties"]["status"];
        assert!(
            status_schema["x-kubernetes-preserve-unknown-fields"].is_null(),
            "status is closed"
        );
        let errors = common::structural_errors(status_schema, &status);
        assert!(
            errors.is_empty(),
            "{}: {errors:#?}",
            crd.metadata.name.unwrap()
        );
    }
}
