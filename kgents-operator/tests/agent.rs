//! The Agent controller on a real control plane (etcd, kube-apiserver, controller-manager,
//! scheduler and kwok nodes from the testbed): pods become Ready, children are recreated and
//! collected, RBAC is enforced by the API server, and leader election decides who writes.
//!
//! Each test has its own namespace and runs its own operator scoped to it.

mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kgents_crds::agent::AgentPhase;
use kgents_crds::{Agent, Memory};
use kgents_operator::leader::LeaderElectionConfig;
use kgents_operator::metrics::Metrics;
use kgents_operator::run::{self, RunOptions};
use kgents_operator::{ProbeConfig, rbac};
use kgents_testbed::Testbed;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::{
    Operator, agent, create_agent, eventually, reconcile_counts, reconciled_since, run_options,
    testbed_with_nodes,
};

const WAIT: Duration = Duration::from_secs(120);

/// The number of Agent reconciles `operator` has run.
fn agent_reconciles(operator: &Operator) -> u64 {
    reconciles(&operator.metrics)
}

fn reconciles(metrics: &Metrics) -> u64 {
    let text = metrics.encode();
    text.lines()
        .find(|l| l.starts_with("kgents_reconciles_total{controller=\"agent\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The Agent controller alone, for `namespace`.
fn options(namespace: &str) -> RunOptions {
    run_options(
        namespace,
        &[kgents_operator::agent::CONTROLLER],
        ProbeConfig::default(),
    )
}

async fn wait_phase(api: &Api<Agent>, name: &str, phase: AgentPhase) -> Agent {
    let deadline = Instant::now() + WAIT;
    loop {
        let agent = api.get(name).await.ok();
        if let Some(agent) = &agent
            && let Some(status) = agent.status.as_ref()
            && status.phase == Some(phase)
            && status.observed_generation == agent.metadata.generation
        {
            return agent.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for Agent {name} to be {phase:?}; last seen: {:?}",
            agent.map(|a| (a.metadata.generation, a.status))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn condition<'a>(agent: &'a Agent, type_: &str) -> &'a kgents_crds::Condition {
    agent
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("condition {type_} on {}", agent.name_any()))
}

async fn ready_pods(client: &Client, namespace: &str, agent: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector =
        format!("app.kubernetes.io/instance={agent},app.kubernetes.io/name=kgents-agent");
    pods.list(&ListParams::default().labels(&selector))
        .await
        .expect("list pods")
        .items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reaches_running_with_its_pods_ready() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-running")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let operator = Operator::start(client.clone(), options(&ns));
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(&agents, &agent("scout", json!({"replicas": 2}))).await;

    let running = wait_phase(&agents, "scout", AgentPhase::Running).await;
    let status = running.status.clone().expect("status");
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.replicas, Some(2));
    assert_eq!(status.deployment.as_deref(), Some("scout"));
    assert_eq!(
        status.selector.as_deref(),
        Some("app.kubernetes.io/instance=scout,app.kubernetes.io/name=kgents-agent")
    );
    let ready = condition(&running, "Ready");
    assert_eq!(ready.status, "True");
    assert_eq!(ready.observed_generation, running.metadata.generation);
    assert_eq!(
        ready_pods(&client, &ns, "scout").await,
        2,
        "the pods really are Ready"
    );

    // Hardened pod, owned children.
    let deployment: Deployment = Api::namespaced(client.clone(), &ns)
        .get("scout")
        .await
        .expect("deployment");
    let owner = &deployment.owner_references()[0];
    assert_eq!(owner.uid, running.uid().expect("uid"));
    assert_eq!(owner.controller, Some(true));
    let pod_spec = deployment.spec.template.spec.as_ref().expect("pod spec");
    let sc = pod_spec.containers[0]
        .security_context
        .as_ref()
        .expect("security context");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(pod_spec.service_account_name.as_deref(), Some("scout"));
    let _: ServiceAccount = Api::namespaced(client.clone(), &ns)
        .get("scout")
        .await
        .expect("service account");
    let _: Service = Api::namespaced(client.clone(), &ns)
        .get("scout")
        .await
        .expect("service");

    // A steady state is quiet: a reconcile that finds nothing changed writes nothing. Touching
    // an owned child (a label no plan reads; not an annotation, which bumps a Deployment's
    // generation and so really starts a rollout) wakes the controller for this Agent; once a
    // reconcile begun after this point has ended, the Agent is as it was.
    let before = running.resource_version();
    let (started, _) = reconcile_counts(&operator.metrics, kgents_operator::agent::CONTROLLER);
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .patch(
            "scout",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"test.kgents.io/touched": "1"}}})),
        )
        .await
        .expect("touch the Deployment");
    reconciled_since(
        &operator.metrics,
        kgents_operator::agent::CONTROLLER,
        started,
    )
    .await;
    let after = agents.get("scout").await.expect("agent");
    assert_eq!(
        before,
        after.resource_version(),
        "the status is not rewritten when nothing changed: {:?} became {:?}",
        running.status,
        after.status
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_of_one_genus_coexist() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-genus")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let operator = Operator::start(client.clone(), options(&ns));
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(&agents, &agent("b-one", json!({"genus": "B"}))).await;
    create_agent(&agents, &agent("b-two", json!({"genus": "B"}))).await;
    wait_phase(&agents, "b-one", AgentPhase::Running).await;
    wait_phase(&agents, "b-two", AgentPhase::Running).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let names: Vec<_> = deployments
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|d| d.name_any())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(ready_pods(&client, &ns, "b-one").await, 1);
    assert_eq!(ready_pods(&client, &ns, "b-two").await, 1);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_through_the_scale_subresource() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-scale")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let operator = Operator::start(client.clone(), options(&ns));
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(&agents, &agent("scaler", json!({}))).await;
    wait_phase(&agents, "scaler", AgentPhase::Running).await;

    // What `kubectl scale agent scaler --replicas=3` sends.
    agents
        .patch_scale(
            "scaler",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale");
    let running = eventually("three ready replicas", WAIT, || async {
        let agent = wait_phase(&agents, "scaler", AgentPhase::Running).await;
        (agent.status.as_ref()?.ready_replicas == Some(3)).then_some(agent)
    })
    .await;
    assert_eq!(running.spec.replicas, 3);
    let scale = agents.get_scale("scaler").await.expect("scale");
    assert_eq!(scale.status.as_ref().map(|s| s.replicas), Some(3));
    assert_eq!(
        scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .as_deref(),
        Some("app.kubernetes.io/instance=scaler,app.kubernetes.io/name=kgents-agent")
    );
    assert_eq!(ready_pods(&client, &ns, "scaler").await, 3);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_rolls_the_deployment() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-roll")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let operator = Operator::start(client.clone(), options(&ns));
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(
        &agents,
        &agent("roller", json!({"config": {"mood": "calm"}})),
    )
    .await;
    wait_phase(&agents, "roller", AgentPhase::Running).await;
    agents
        .patch(
            "roller",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {"mood": "curious"}}})),
        )
        .await
        .expect("change the spec");
    let rolled = wait_phase(&agents, "roller", AgentPhase::Running).await;
    assert_eq!(rolled.metadata.generation, Some(2));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = deployments.get("roller").await.expect("deployment");
    let env = deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers[0]
        .env
        .clone()
        .expect("env");
    assert!(
        env.iter()
            .any(|e| e.name == "KGENTS_MOOD" && e.value.as_deref() == Some("curious")),
        "{env:?}"
    );
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let sets = sets
        .list(&ListParams::default())
        .await
        .expect("replica sets")
        .items;
    assert_eq!(sets.len(), 2, "a new ReplicaSet for the new template");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_child_comes_back() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-heal")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let operator = Operator::start(client.clone(), options(&ns));
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(&agents, &agent("phoenix", json!({"networkPolicy": {}}))).await;
    wait_phase(&agents, "phoenix", AgentPhase::Running).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    let old_deployment = deployments.get("phoenix").await.expect("deployment").uid();
    let old_service = services.get("phoenix").await.expect("service").uid();
    let old_policy = policies.get("phoenix").await.expect("policy").uid();
    deployments
        .delete("phoenix", &DeleteParams::foreground())
        .await
        .expect("delete deployment");
    services
        .delete("phoenix", &DeleteParams::default())
        .await
        .expect("delete service");
    policies
        .delete("phoenix", &DeleteParams::default())
        .await
        .expect("delete policy");
    let began = Instant::now();
    eventually(
        "the children to be recreated",
        Duration::from_secs(60),
        || async {
            let d = deployments.get_opt("phoenix").await.ok()??;
            let s = services.get_opt("phoenix").await.ok()??;
            let p = policies.get_opt("phoenix").await.ok()??;
            (d.uid() != old_deployment && s.uid() != old_service && p.uid() != old_policy)
                .then_some(())
        },
    )
    .await;
    eprintln!("children recreated after {:?}", began.elapsed());
    wait_phase(&agents, "phoenix", AgentPhase::Running).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_agent_collects_its_children_but_a_retain_memory_stays() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-gc")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let operator = Operator::start(client.clone(), options(&ns));
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let memories: Api<Memory> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    create_agent(
        &agents,
        &agent(
            "keeper",
            json!({"symbiont": {"memory": {"retentionPolicy": "RETAIN"}}}),
        ),
    )
    .await;
    create_agent(
        &agents,
        &agent(
            "forgetter",
            json!({"symbiont": {"memory": {"retentionPolicy": "DELETE"}}}),
        ),
    )
    .await;
    for name in ["keeper", "forgetter"] {
        let running = wait_phase(&agents, name, AgentPhase::Running).await;
        assert_eq!(
            running
                .status
                .as_ref()
                .and_then(|s| s.memory.clone())
                .as_deref(),
            Some(name)
        );
        memories.get(name).await.expect("memory created");
    }
    assert!(
        memories
            .get("keeper")
            .await
            .expect("memory")
            .owner_references()
            .is_empty()
    );
    assert_eq!(
        memories
            .get("forgetter")
            .await
            .expect("memory")
            .owner_references()
            .len(),
        1
    );
    for name in ["keeper", "forgetter"] {
        agents
            .delete(name, &DeleteParams::background())
            .await
            .expect("delete agent");
    }
    eventually(
        "the garbage collector to remove the children",
        WAIT,
        || async {
            let left = deployments
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len()
                + accounts
                    .list(&ListParams::default().labels("kgents.io/agent"))
                    .await
                    .ok()?
                    .items
                    .len()
                + memories.get_opt("forgetter").await.ok()?.map_or(0, |_| 1);
            (left == 0).then_some(())
        },
    )
    .await;
    let kept = memories
        .get("keeper")
        .await
        .expect("the RETAIN memory survives its agent");
    assert!(kept.metadata.deletion_timestamp.is_none());
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_a_reason_and_the_rest_keeps_running() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-bad")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "one-deployment"},
                "spec": {"hard": {"count/deployments.apps": "2"}}
            }))
            .expect("quota"),
        )
        .await
        .expect("create quota");
    // The quota controller must have counted before the quota is enforced.
    eventually("the quota to be counted", WAIT, || async {
        quotas
            .get("one-deployment")
            .await
            .ok()?
            .status?
            .used
            .map(|_| ())
    })
    .await;
    let operator = Operator::start(client.clone(), options(&ns));
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(&agents, &agent("first", json!({}))).await;
    wait_phase(&agents, "first", AgentPhase::Running).await;
    // An Umwelt account that does not exist: its Deployment is made (the second of two).
    create_agent(&agents, &agent("lost", json!({"umwelt": "nowhere"}))).await;
    let lost = wait_phase(&agents, "lost", AgentPhase::Failed).await;
    assert_eq!(condition(&lost, "Ready").reason, "ServiceAccountNotFound");
    // A third Deployment exceeds the quota.
    create_agent(&agents, &agent("second", json!({}))).await;
    create_agent(&agents, &agent("third", json!({"deployMode": "DRY_RUN"}))).await;
    let second = wait_phase(&agents, "second", AgentPhase::Failed).await;
    let ready = condition(&second, "Ready");
    assert_eq!(ready.reason, "QuotaExceeded");
    assert!(
        ready.message.contains("exceeded quota"),
        "{}",
        ready.message
    );
    let dry = wait_phase(&agents, "third", AgentPhase::Pending).await;
    assert_eq!(condition(&dry, "Ready").reason, "DryRun");
    assert!(condition(&dry, "Ready").message.contains("would create"));

    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually(
        "a Warning Event about the quota",
        Duration::from_secs(30),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("QuotaExceeded")
                        && e.type_.as_deref() == Some("Warning")
                })
                .then_some(())
        },
    )
    .await;
    // The first agent is unaffected.
    let first = agents.get("first").await.expect("first");
    assert_eq!(
        first.status.and_then(|s| s.phase),
        Some(AgentPhase::Running)
    );
    operator.stop().await;
}

/// Installs the generated operator RBAC bound to `kgents-operator` in `namespace` and returns a
/// client acting as that ServiceAccount.
async fn operator_account_client(testbed: &Testbed, admin: &Client, namespace: &str) -> Client {
    let (account, role, mut binding) = rbac::manifests(namespace);
    let params = PatchParams::apply("kgents-test").force();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    accounts
        .patch(rbac::OPERATOR_NAME, &params, &Patch::Apply(&account))
        .await
        .expect("service account");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    roles
        .patch(rbac::OPERATOR_NAME, &params, &Patch::Apply(&role))
        .await
        .expect("cluster role");
    // One binding per test namespace, so tests do not rebind each other's account.
    let binding_name = format!("{}-{namespace}", rbac::OPERATOR_NAME);
    binding.metadata.name = Some(binding_name.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bindings
        .patch(&binding_name, &params, &Patch::Apply(&binding))
        .await
        .expect("binding");
    testbed
        .service_account_client(namespace, rbac::OPERATOR_NAME)
        .await
        .expect("service account client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_cluster_role_is_sufficient_and_no_broader() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-rbac")
        .await
        .expect("namespace");
    let admin = testbed.client().await.expect("client");
    let operator_client = operator_account_client(testbed, &admin, &ns).await;
    let mut options = options(&ns);
    options.controllers = run::controllers();
    options.leader_election = Some(LeaderElectionConfig {
        identity: "rbac-test".to_owned(),
        ..LeaderElectionConfig::new(&ns)
    });
    let operator = Operator::start(operator_client.clone(), options);
    let agents: Api<Agent> = Api::namespaced(admin.clone(), &ns);
    create_agent(
        &agents,
        &agent(
            "restricted",
            json!({
                "networkPolicy": {"allowedPeers": ["C"]},
                "symbiont": {"memory": {"retentionPolicy": "DELETE"}}
            }),
        ),
    )
    .await;
    create_agent(&agents, &agent("dry", json!({"deployMode": "DRY_RUN"}))).await;
    let running = wait_phase(&agents, "restricted", AgentPhase::Running).await;
    assert_eq!(
        running
            .status
            .as_ref()
            .and_then(|s| s.memory.clone())
            .as_deref(),
        Some("restricted")
    );
    wait_phase(&agents, "dry", AgentPhase::Pending).await;
    // Unrestrict it: the NetworkPolicy is deleted (the delete verb is needed and granted).
    agents
        .patch(
            "restricted",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"networkPolicy": null}})),
        )
        .await
        .expect("unrestrict");
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &ns);
    eventually("the NetworkPolicy to be removed", WAIT, || async {
        policies
            .get_opt("restricted")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let metrics = operator.metrics.encode();
    assert!(
        !metrics.contains("reason=\"forbidden\""),
        "no controller was refused by RBAC: {metrics}"
    );

    // Nothing broader: the operator's account cannot read secrets, run pods or delete agents.
    let forbidden = |result: Result<(), kube::Error>| matches!(result, Err(kube::Error::Api(status)) if status.code == 403);
    let secrets: Api<Secret> = Api::namespaced(operator_client.clone(), &ns);
    assert!(
        forbidden(secrets.list(&ListParams::default()).await.map(|_| ())),
        "secrets are not listable"
    );
    let pods: Api<Pod> = Api::namespaced(operator_client.clone(), &ns);
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "x"}]}}),
    )
    .expect("pod");
    assert!(
        forbidden(pods.create(&PostParams::default(), &pod).await.map(|_| ())),
        "pods cannot be created"
    );
    let operator_agents: Api<Agent> = Api::namespaced(operator_client.clone(), &ns);
    assert!(
        forbidden(
            operator_agents
                .delete("restricted", &DeleteParams::default())
                .await
                .map(|_| ())
        ),
        "agents cannot be deleted"
    );
    let roles: Api<ClusterRole> = Api::all(operator_client.clone());
    assert!(
        forbidden(roles.list(&ListParams::default()).await.map(|_| ())),
        "RBAC is not readable cluster-wide"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_writes_and_a_standby_takes_over() {
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-lease")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let election = |identity: &str| LeaderElectionConfig {
        identity: identity.to_owned(),
        lease_duration_secs: 6,
        grace_secs: 2,
        ..LeaderElectionConfig::new(&ns)
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get_opt("kgents-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    };
    let mut first_options = options(&ns);
    first_options.leader_election = Some(election("first"));
    let first = Operator::start(client.clone(), first_options);
    eventually("the first operator to lead", WAIT, || async {
        (holder().await? == "first").then_some(())
    })
    .await;
    let mut second_options = options(&ns);
    second_options.leader_election = Some(election("second"));
    let second = Operator::start(client.clone(), second_options);

    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(&agents, &agent("led", json!({}))).await;
    wait_phase(&agents, "led", AgentPhase::Running).await;
    // Both operators watch this Agent from before it existed. The leader has brought it to
    // Running and then to a later generation; a standby that reconciled would have been woken
    // by the same events and counted its reconciles by now.
    agents
        .patch(
            "led",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale led to 2");
    let scaled = wait_phase(&agents, "led", AgentPhase::Running).await;
    assert_eq!(scaled.metadata.generation, Some(2));
    let (leader_started, _) = reconcile_counts(&first.metrics, kgents_operator::agent::CONTROLLER);
    assert!(leader_started > 0);
    assert_eq!(
        reconcile_counts(&second.metrics, kgents_operator::agent::CONTROLLER),
        (0, 0),
        "the standby does not reconcile"
    );
    assert_eq!(holder().await.as_deref(), Some("first"));

    let stopped_at = Instant::now();
    first.stop().await;
    eventually(
        "the standby to take over",
        Duration::from_secs(6 + 4),
        || async { (holder().await? == "second").then_some(()) },
    )
    .await;
    let took = stopped_at.elapsed();
    assert!(
        took <= Duration::from_secs(6 + 2),
        "took over after {took:?}, the lease lasts 6 s"
    );
    create_agent(&agents, &agent("after", json!({}))).await;
    wait_phase(&agents, "after", AgentPhase::Running).await;
    assert!(agent_reconciles(&second) > 0, "the new leader reconciles");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_lease_holder_is_replaced_within_the_lease_duration() {
    const LEASE_SECS: u64 = 6;
    const GRACE_SECS: u64 = 2;
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-crash")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");
    let election = |identity: &str| LeaderElectionConfig {
        identity: identity.to_owned(),
        lease_duration_secs: LEASE_SECS,
        grace_secs: GRACE_SECS,
        ..LeaderElectionConfig::new(&ns)
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get_opt("kgents-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    };

    // The first operator runs on a runtime of its own, with a client made there, so that
    // shutting the runtime down ends every one of its tasks at once — the renewal task, the
    // controllers, the connections — without the graceful path that releases the lease: what
    // a killed process leaves behind.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the first operator");
    let mut first_options = options(&ns);
    first_options.leader_election = Some(election("first"));
    let first_metrics = first_options.metrics.clone();
    doomed.spawn(async move {
        let client = testbed.client().await.expect("client");
        // Never asked to stop: it only ends when its runtime is shut down.
        let _ = run::run(client, first_options, std::future::pending::<()>()).await;
    });
    eventually("the first operator to lead", WAIT, || async {
        (holder().await? == "first").then_some(())
    })
    .await;
    let mut second_options = options(&ns);
    second_options.leader_election = Some(election("second"));
    let second = Operator::start(client.clone(), second_options);

    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    create_agent(&agents, &agent("before-crash", json!({}))).await;
    wait_phase(&agents, "before-crash", AgentPhase::Running).await;
    assert!(reconciles(&first_metrics) > 0, "the leader reconciled");
    assert_eq!(
        agent_reconciles(&second),
        0,
        "the standby does not reconcile"
    );

    let crashed_at = Instant::now();
    doomed.shutdown_background();
    let lease = leases
        .get("kgents-operator")
        .await
        .expect("the lease is still there");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("first"),
        "a crash releases nothing: the lease still names the dead holder"
    );
    eventually(
        "the standby to take over",
        Duration::from_secs(LEASE_SECS + GRACE_SECS + 10),
        || async { (holder().await? == "second").then_some(()) },
    )
    .await;
    let took = crashed_at.elapsed();
    // The dead holder last renewed at most the lease duration before the crash minus the
    // renewal grace; the standby may take it once it expired, and notices within its own
    // renewal slack.
    assert!(
        took <= Duration::from_secs(LEASE_SECS + GRACE_SECS),
        "took over {took:?} after the crash; the lease lasts {LEASE_SECS} s, renewed {GRACE_SECS} s before expiry"
    );
    create_agent(&agents, &agent("after-crash", json!({}))).await;
    wait_phase(&agents, "after-crash", AgentPhase::Running).await;
    assert!(agent_reconciles(&second) > 0, "the new leader reconciles");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_operator_midway_through_200_agents_converges_after_a_restart() {
    const AGENTS: usize = 200;
    let testbed = testbed_with_nodes().await;
    let ns = testbed
        .create_namespace("agent-kill")
        .await
        .expect("namespace");
    let client = testbed.client().await.expect("client");

    // The first operator runs on a runtime of its own, so it can be killed outright: dropping
    // the runtime stops every one of its tasks mid-request, like a crashed process.
    let killable = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let first_ns = ns.clone();
    killable.spawn(async move {
        let client = testbed.client().await.expect("client");
        let _ = run::run(client, options(&first_ns), std::future::pending()).await;
    });

    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let created = std::sync::atomic::AtomicUsize::new(0);
    let create_all = futures::stream::iter(0..AGENTS)
        .map(|i| {
            let agents = agents.clone();
            let created = &created;
            async move {
                // Replicas 0: the test is about children, and 200 pods would not fit on the nodes.
                let a = agent(&format!("a{i:03}"), json!({"replicas": 0, "genus": "K"}));
                agents.create(&PostParams::default(), &a).await?;
                created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>();
    let kill = async {
        // Killed while both creating and reconciling are in full swing.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        eventually(
            "half the agents and 20 Deployments to be created",
            WAIT,
            || async {
                let made = deployments
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .len();
                (created.load(std::sync::atomic::Ordering::Relaxed) >= AGENTS / 2 && made >= 20)
                    .then_some(())
            },
        )
        .await;
        tokio::task::spawn_blocking(move || killable.shutdown_background())
            .await
            .expect("kill the first operator");
    };
    let (result, ()) = tokio::join!(create_all, kill);
    result.expect("create 200 agents");
    let partial = Api::<Deployment>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("deployments")
        .items
        .len();
    eprintln!("the first operator was killed with {partial} Deployments made");

    let operator = Operator::start(client.clone(), options(&ns));
    eventually(
        "every agent to be reconciled",
        Duration::from_secs(300),
        || async {
            let list = agents.list(&ListParams::default()).await.ok()?;
            let done = list
                .items
                .iter()
                .filter(|a| {
                    a.status.as_ref().is_some_and(|s| {
                        s.observed_generation == a.metadata.generation && s.deployment.is_some()
                    })
                })
                .count();
            (done == AGENTS).then_some(())
        },
    )
    .await;
    let list = agents
        .list(&ListParams::default())
        .await
        .expect("agents")
        .items;
    let uids: std::collections::HashMap<String, String> = list
        .iter()
        .map(|a| (a.name_any(), a.uid().expect("uid")))
        .collect();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("deployments")
        .items;
    let services = Api::<Service>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("services")
        .items;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels("kgents.io/agent"))
        .await
        .expect("accounts")
        .items;
    assert_eq!(deployments.len(), AGENTS);
    assert_eq!(services.len(), AGENTS);
    assert_eq!(accounts.len(), AGENTS);
    for d in &deployments {
        let owners = d.owner_references();
        assert_eq!(owners.len(), 1, "{}", d.name_any());
        assert_eq!(
            Some(&owners[0].uid),
            uids.get(&d.name_any()),
            "owned by its own agent"
        );
    }
    // Each Deployment rolled out once: one ReplicaSet each, no duplicates from the restart.
    let sets = eventually("one ReplicaSet per Deployment", WAIT, || async {
        let sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .ok()?
            .items;
        (sets.len() >= AGENTS).then_some(sets)
    })
    .await;
    assert_eq!(sets.len(), AGENTS);
    operator.stop().await;
}
