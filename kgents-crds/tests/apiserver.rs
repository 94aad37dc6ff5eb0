//! The real check: `deploy/crds/` applied to a real kube-apiserver (the testbed), every valid
//! sample created, every invalid sample refused **by the API server** with its expected message,
//! immutability and the scale subresource exercised, and `kubectl` reading the files.

mod common;

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kgents_crds::{Agent, Memory, Pheromone, Proposal, Umwelt, Workflow, crds, manifest};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Reads `deploy/crds/*.yaml` (the committed files, not the types), installs them and waits for
/// Established; returns an admin client and a fresh namespace.
async fn setup(prefix: &str) -> Result<(Client, String), Box<dyn std::error::Error>> {
    let testbed = kgents_testbed::shared().await?;
    let dir = common::workspace_root().join("deploy/crds");
    let mut committed = Vec::new();
    for crd in crds() {
        let path = dir.join(manifest::file_name(&crd));
        let text = std::fs::read_to_string(&path)?;
        committed.push(serde_saphyr::from_str::<CustomResourceDefinition>(&text)?);
    }
    testbed.install_crds(&committed).await?;
    let namespace = testbed.create_namespace(prefix).await?;
    Ok((testbed.client().await?, namespace))
}

fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "Agent" => ApiResource::erase::<Agent>(&()),
        "Pheromone" => ApiResource::erase::<Pheromone>(&()),
        "Memory" => ApiResource::erase::<Memory>(&()),
        "Umwelt" => ApiResource::erase::<Umwelt>(&()),
        "Proposal" => ApiResource::erase::<Proposal>(&()),
        "Workflow" => ApiResource::erase::<Workflow>(&()),
        other => panic!("sample of unknown kind {other}"),
    }
}

fn dynamic_api(client: &Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &api_resource(kind))
}

async fn create_sample(
    client: &Client,
    namespace: &str,
    sample: &common::Sample,
) -> kube::Result<DynamicObject> {
    let object: DynamicObject =
        serde_json::from_value(sample.object.clone()).expect("sample is an object");
    dynamic_api(client, namespace, sample.kind())
        .create(&PostParams::default(), &object)
        .await
}

/// The API server's message for a refused request, or a description of what happened instead.
fn rejection_message(result: kube::Result<DynamicObject>) -> Result<String, String> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 422 => Ok(status.message.clone()),
        Err(kube::Error::Api(status)) => Err(format!(
            "refused with code {}: {}",
            status.code, status.message
        )),
        Err(other) => Err(format!("failed without an API answer: {other}")),
        Ok(_) => Err("was accepted".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_samples_are_accepted_and_read_back_as_typed_objects() -> TestResult {
    let (client, namespace) = setup("crds-valid").await?;
    let samples = common::valid_samples();
    assert!(samples.len() >= 5, "at least one valid sample per kind");
    for kind in [
        "Agent",
        "Pheromone",
        "Memory",
        "Umwelt",
        "Proposal",
        "Workflow",
    ] {
        assert!(
            samples.iter().any(|s| s.kind() == kind),
            "no valid {kind} sample"
        );
    }
    for sample in &samples {
        if let Err(e) = create_sample(&client, &namespace, sample).await {
            panic!("{} was refused by the API server: {e}", sample.file);
        }
    }
    // Read back through the typed APIs: server defaults land in the Rust defaults.
    let agents: Api<Agent> = Api::namespaced(client.clone(), &namespace);
    let b = agents.get("b-gent").await?;
    assert_eq!(b.spec.genus, kgents_crds::Genus::B);
    assert_eq!(b.spec.replicas, 1);
    assert_eq!(
        b.spec.deploy_mode,
        kgents_crds::agent::DeployMode::Placeholder
    );
    assert!(b.spec.reconciliation.sequential && b.spec.reconciliation.idempotent);
    let l = agents.get("l-gent").await?;
    let health = l.spec.health.expect("l-gent has health");
    assert_eq!(health.unhealthy_threshold, 3);
    assert!(
        health.degrade_to_safemode,
        "server applied the nested default"
    );
    let memory = l
        .spec
        .symbiont
        .and_then(|s| s.memory)
        .expect("symbiont memory");
    assert!(memory.enabled);

    let pheromones: Api<Pheromone> = Api::namespaced(client.clone(), &namespace);
    let review = pheromones.get("review-scale-b-gent").await?;
    assert_eq!(review.spec.kind, kgents_crds::PheromoneType::ReviewRequest);
    assert_eq!(review.spec.initial_intensity, 1.0);
    assert_eq!(review.spec.half_life_minutes, 10.0);
    let warning = pheromones.get("warning-disk-pressure").await?;
    let emitted = warning.spec.emitted_at.expect("emittedAt kept").0;
    assert_eq!(
        emitted,
        "2026-11-26T08:30:00Z".parse::<jiff::Timestamp>()?,
        "offset converted, not replaced"
    );

    let memories: Api<Memory> = Api::namespaced(client.clone(), &namespace);
    let scratch = memories.get("b-gent-scratch").await?;
    assert_eq!(scratch.spec.size.0, "256Mi");
    assert_eq!(
        scratch.spec.retention_policy,
        kgents_crds::memory::RetentionPolicy::Retain
    );

    let umwelts: Api<Umwelt> = Api::namespaced(client.clone(), &namespace);
    let uw = umwelts.get("l-gent").await?;
    assert_eq!(
        uw.spec.context.expect("context kept")["limits"]["maxDocuments"],
        json!(1000)
    );

    let proposals: Api<Proposal> = Api::namespaced(client.clone(), &namespace);
    let scale = proposals.get("scale-b-gent").await?;
    assert_eq!(scale.spec.ttl_seconds, 86_400);
    assert_eq!(
        scale.spec.magnitude,
        kgents_crds::proposal::Magnitude::default()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_samples_are_rejected_by_the_apiserver_with_their_message() -> TestResult {
    let (client, namespace) = setup("crds-invalid").await?;
    let mut failures = Vec::new();
    for sample in common::invalid_samples() {
        match rejection_message(create_sample(&client, &namespace, &sample).await) {
            Ok(message) => {
                for expected in &sample.expected {
                    if !message.contains(expected.as_str()) {
                        failures.push(format!(
                            "{}: message {message:?} does not contain {expected:?}",
                            sample.file
                        ));
                    }
                }
            }
            Err(what) => failures.push(format!("{}: {what}", sample.file)),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pheromone_and_proposal_specs_are_immutable_but_status_is_not() -> TestResult {
    let (client, namespace) = setup("crds-immutable").await?;
    let samples = common::valid_samples();
    let pheromone = samples
        .iter()
        .find(|s| s.file == "pheromone-warning.yaml")
        .expect("sample");
    let proposal = samples
        .iter()
        .find(|s| s.file == "proposal-scale-b-gent.yaml")
        .expect("sample");
    create_sample(&client, &namespace, pheromone).await?;
    create_sample(&client, &namespace, proposal).await?;

    let merge = PatchParams::default();
    let pheromones = dynamic_api(&client, &namespace, "Pheromone");
    let refused = pheromones
        .patch(
            pheromone.name(),
            &merge,
            &Patch::Merge(json!({"spec": {"initialIntensity": 0.2}})),
        )
        .await;
    let message =
        rejection_message(refused).map_err(|what| format!("changing a pheromone's spec {what}"))?;
    assert!(
        message.contains("a Pheromone's spec is immutable"),
        "{message}"
    );
    // Metadata and status still change.
    pheromones
        .patch(
            pheromone.name(),
            &merge,
            &Patch::Merge(json!({"metadata": {"labels": {"sensed": "true"}}})),
        )
        .await?;
    pheromones
        .patch_status(
            pheromone.name(),
            &merge,
            &Patch::Merge(
                json!({"status": {"phase": "EVAPORATING", "evaporatesAt": "2026-11-26T12:00:00Z"}}),
            ),
        )
        .await?;

    let proposals = dynamic_api(&client, &namespace, "Proposal");
    let refused = proposals
        .patch(
            proposal.name(),
            &merge,
            &Patch::Merge(json!({"spec": {"ttlSeconds": 120}})),
        )
        .await;
    let message =
        rejection_message(refused).map_err(|what| format!("changing a proposal's spec {what}"))?;
    assert!(
        message.contains("a Proposal's spec is immutable"),
        "{message}"
    );
    let status = json!({"status": {
        "phase": "Approved",
        "riskAssessment": {
            "baseRisk": 0.1, "sizeFactor": 1.0, "testFactor": 1.0, "velocityPenalty": 0.0,
            "cumulativePenalty": 0.0, "score": 0.1, "level": "LOW", "decision": "AUTO_APPROVE", "recentProposals": 0, "appliedChanges": 0,
            "calculatedAt": "2026-11-26T12:00:00Z"
        },
        "approvals": [{"approver": "alice", "at": "2026-11-26T12:00:00Z"}]
    }});
    proposals
        .patch_status(proposal.name(), &merge, &Patch::Merge(status))
        .await?;
    // Nothing written to status was pruned.
    let typed: Api<Proposal> = Api::namespaced(client.clone(), &namespace);
    let stored = typed.get(proposal.name()).await?.status.expect("status");
    assert_eq!(
        stored.risk_assessment.expect("risk kept").decision,
        kgents_crds::proposal::RiskDecision::AutoApprove
    );
    assert_eq!(stored.approvals.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_scale_subresource_moves_spec_replicas_within_bounds() -> TestResult {
    let (client, namespace) = setup("crds-scale").await?;
    let samples = common::valid_samples();
    let b = samples
        .iter()
        .find(|s| s.file == "agent-b-gent.yaml")
        .expect("the seed's b-gent sample");
    create_sample(&client, &namespace, b).await?;
    let agents: Api<Agent> = Api::namespaced(client.clone(), &namespace);
    agents
        .patch_status(
            "b-gent",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1, "selector": "kgents.io/agent=b-gent"}})),
        )
        .await?;
    agents
        .patch_scale(
            "b-gent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    assert_eq!(agents.get("b-gent").await?.spec.replicas, 3);
    let scale = agents.get_scale("b-gent").await?;
    assert_eq!(
        scale.status.as_ref().and_then(|s| s.selector.as_deref()),
        Some("kgents.io/agent=b-gent")
    );
    let refused = agents
        .patch_scale(
            "b-gent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 11}})),
        )
        .await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains("replicas must be between 0 and 10"),
                "{}",
                status.message
            )
        }
        other => panic!("scaling to 11 was not refused: {other:?}"),
    }
    assert_eq!(agents.get("b-gent").await?.spec.replicas, 3);
    Ok(())
}

/// The testbed's kubectl (`scripts/testbed-build` builds it next to the API server); a panic
/// naming where it was looked for and how to get it when it is missing.
fn kubectl() -> PathBuf {
    let dir = match std::env::var_os("KGENTS_TESTBED_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .expect("HOME is not set: set KGENTS_TESTBED_BIN to the directory scripts/testbed-build wrote the testbed binaries to");
            PathBuf::from(home)
                .join(".cache/kgents/testbed")
                .join(kgents_testbed::kubernetes_version())
        }
    };
    let path = dir.join("kubectl");
    assert!(
        path.is_file(),
        "kubectl is missing: this test runs the testbed's kubectl, looked for at {}; build it with \
         scripts/testbed-build (it builds kubectl {} with the API server into that directory, or \
         into $KGENTS_TESTBED_BIN when set)",
        path.display(),
        kgents_testbed::kubernetes_version()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_parses_the_crds_and_explains_the_fields() -> TestResult {
    let kubectl = kubectl();
    let (_client, namespace) = setup("crds-kubectl").await?;
    let kubeconfig = kgents_testbed::shared().await?.kubeconfig_path().to_owned();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "kubectl {args:?} failed: {stderr}");
        stdout
    };
    let crd_dir = common::workspace_root().join("deploy/crds");
    let crd_dir = crd_dir.to_str().expect("UTF-8 path");
    // Every file parses as a CRD. (`create`, not `apply --dry-run=client`: the CRDs already
    // exist here, installed by server-side apply, and kubectl's client-side apply cannot diff
    // against an object created that way: it fails with "expected a struct, but received a nil"
    // even for a minimal CRD. On a cluster without them, or where they were created by
    // `kubectl apply`, `kubectl apply --dry-run=client -f deploy/crds/` succeeds.)
    let parsed = run(&["create", "--dry-run=client", "-f", crd_dir, "-o", "name"]);
    // And the API server takes them as they are (schema, CEL cost estimates, defaults).
    let server = run(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=kgents-crds-test",
        "--dry-run=server",
        "-f",
        crd_dir,
        "-o",
        "name",
    ]);
    for crd in crds() {
        let name = crd.metadata.name.unwrap();
        assert!(
            parsed.contains(&name),
            "kubectl did not read {name}: {parsed}"
        );
        assert!(
            server.contains(&name),
            "the API server did not take {name}: {server}"
        );
    }
    let explained = run(&["explain", "agents.spec.deployMode"]);
    assert!(
        explained.contains("FULL requires") || explained.contains("FULL (run spec.image)"),
        "{explained}"
    );
    let explained = run(&["explain", "pheromones.spec.halfLifeMinutes"]);
    assert!(explained.contains("Half-life in minutes"), "{explained}");
    let examples = common::workspace_root().join("deploy/examples");
    let created = run(&[
        "apply",
        "-n",
        &namespace,
        "-f",
        examples.to_str().expect("UTF-8 path"),
        "-o",
        "name",
    ]);
    assert_eq!(
        created.lines().count(),
        common::valid_samples().len(),
        "{created}"
    );
    let listed = run(&["get", "kgents", "-n", &namespace, "-o", "name"]);
    assert_eq!(
        listed.lines().count(),
        common::valid_samples().len(),
        "category kgents lists every kind: {listed}"
    );
    let table = run(&["get", "ag", "-n", &namespace]);
    for column in ["GENUS", "PHASE", "READY", "COGNITIVE", "AGE"] {
        assert!(table.contains(column), "{table}");
    }
    Ok(())
}
