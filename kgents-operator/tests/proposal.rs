//! Proposals end to end on a real API server, with the T-gent webhook registered and called by
//! it: LOW auto-executed, CRITICAL denied with its explanation, HIGH denied for an agent and
//! admitted-then-approved-then-executed for a person, MEDIUM reviewed through a fake
//! OpenAI-compatible model (ALLOW, DENY, garbage), a Secret target denied, a proposal that
//! slipped in without the webhook re-assessed and rejected, and expiry at the TTL; an Event for
//! every transition, the verified proposer kind in status, a patch-less CODE_PATCH for a File
//! admitted and never executed (it ends Approved), the ESCALATED review result, supersession of
//! a pending proposal by a newer filing, and the policy ConfigMap hot-reloaded (a bad edit keeps
//! the previous policy).
//!
//! Every test has its own namespace, its own webhook configuration (selecting only that
//! namespace) and its own controller, running as a ServiceAccount that holds exactly
//! the controller's and the webhook's required rules.

mod support;
mod support_controllers;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kgents_crds::proposal::{ProposalPhase, ProposerKind, ReviewResult, RiskDecision};
use kgents_crds::{Agent, Pheromone, Proposal};
use kgents_operator::admission::server::{CertificateSource, Endpoint, WebhookConfig};
use kgents_operator::admission::{self, WebhookServer};
use kgents_operator::proposal::{self, LlmReviewer, ProposalSettings};
use kgents_operator::run::{self, RunOptions};
use kgents_operator::{Context, OperatorConfig};
use kgents_testbed::Testbed;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::{eventually, reconcile_counts, reconciled_since};
use support_controllers::{Running, namespace, operator_context};

const AGENT_SA: &str = "b-gent";

/// The controller's and the webhook's rules, plus Events (the operator process holds those).
/// The test binds them cluster-wide; a deployment binds the webhook's Secret rule in its own
/// namespace only.
fn all_rules() -> Vec<PolicyRule> {
    let mut rules = proposal::required_rules();
    rules.extend(admission::server::required_rules());
    rules.extend(admission::server::namespaced_rules());
    rules.extend(kgents_operator::rbac::process_rules());
    rules
}

fn agent_user(ns: &str) -> String {
    format!("system:serviceaccount:{ns}:{AGENT_SA}")
}

/// Lets user `alice` and `bob` and the agent's ServiceAccount file proposals and write
/// approvals in `ns`.
async fn grant_proposers(testbed: &Testbed, ns: &str) {
    let admin = testbed.client().await.expect("admin");
    let roles: Api<Role> = Api::namespaced(admin.clone(), ns);
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("proposers".into()),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![
                    PolicyRule {
                        api_groups: Some(vec!["kgents.io".into()]),
                        resources: Some(vec!["proposals".into()]),
                        verbs: vec!["create".into(), "get".into(), "list".into()],
                        ..PolicyRule::default()
                    },
                    PolicyRule {
                        api_groups: Some(vec!["kgents.io".into()]),
                        resources: Some(vec!["proposals/status".into()]),
                        verbs: vec!["patch".into()],
                        ..PolicyRule::default()
                    },
                ]),
            },
        )
        .await
        .expect("role");
    let bindings: Api<RoleBinding> = Api::namespaced(admin, ns);
    let user = |name: &str| Subject {
        kind: "User".into(),
        name: name.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        ..Subject::default()
    };
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("proposers".into()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "proposers".into(),
                },
                subjects: Some(vec![
                    user("alice"),
                    user("bob"),
                    Subject {
                        kind: "ServiceAccount".into(),
                        name: AGENT_SA.into(),
                        namespace: Some(ns.into()),
                        ..Subject::default()
                    },
                ]),
            },
        )
        .await
        .expect("role binding");
}

fn proposal(
    name: &str,
    proposer: &str,
    change: &str,
    target: Value,
    patch: Option<Value>,
) -> Proposal {
    let mut spec = json!({"proposer": proposer, "changeType": change, "target": target});
    if let Some(patch) = patch {
        spec["patch"] = patch;
    }
    serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("valid proposal")
}

fn agent_target(name: &str) -> Value {
    json!({"apiVersion": "kgents.io/v1", "kind": "Agent", "name": name})
}

fn replicas(n: i64) -> Option<Value> {
    Some(json!({"type": "merge", "content": format!("{{\"spec\":{{\"replicas\":{n}}}}}")}))
}

async fn create_agent(client: &Client, ns: &str, name: &str) {
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": name}, "spec": {"genus": "B", "replicas": 1},
    }))
    .expect("valid agent");
    Api::<Agent>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &agent)
        .await
        .expect("agent created");
}

/// The webhook for `ns` only, reached by the API server on 127.0.0.1.
async fn start_webhook(testbed: &Testbed, ctx: &Context, ns: &str) -> WebhookServer {
    start_webhook_with_policy(testbed, ctx, ns, None).await
}

/// [`start_webhook`] with the policy read from ConfigMap `ns/policy` (watched).
async fn start_webhook_with_policy(
    testbed: &Testbed,
    ctx: &Context,
    ns: &str,
    policy: Option<&str>,
) -> WebhookServer {
    let config = webhook_config(ns, policy);
    let health = Arc::new(kgents_operator::http::Health::new(
        kgents_operator::leader::LeaderState::always(),
    ));
    let server = admission::serve(ctx, config, health)
        .await
        .expect("webhook serving");
    webhook_in_effect(testbed, ns).await;
    server
}

/// The webhook configuration of `ns` (selecting only that namespace), reached by the API server
/// on 127.0.0.1, with the policy read from ConfigMap `ns/<policy>` when given.
fn webhook_config(ns: &str, policy: Option<&str>) -> WebhookConfig {
    WebhookConfig {
        configuration_name: format!("kgents-proposals-{ns}"),
        namespace: ns.to_owned(),
        secret_name: "kgents-webhook-tls".to_owned(),
        policy_config_map: policy.map(str::to_owned),
        bind: "127.0.0.1:0".parse().expect("addr"),
        endpoint: Endpoint::Url {
            host: "127.0.0.1".into(),
        },
        namespace_selector: Some(LabelSelector {
            match_labels: Some([("kubernetes.io/metadata.name".to_owned(), ns.to_owned())].into()),
            ..LabelSelector::default()
        }),
        watch_namespace: Some(ns.to_owned()),
        certificates: CertificateSource::Generated {
            validity: Duration::from_secs(30 * 86_400),
            renew_before: Duration::from_secs(7 * 86_400),
        },
        timeout_seconds: 3,
        remove_on_shutdown: true,
    }
}

/// A dry-run CRITICAL proposal in one namespace, filed by the admin: the webhook denies it.
struct CriticalProbe {
    api: Api<Proposal>,
    proposal: Proposal,
}

impl CriticalProbe {
    /// The probe for `ns`, with a client of the calling runtime.
    async fn new(testbed: &Testbed, ns: &str) -> Self {
        let admin = testbed.client().await.expect("admin");
        let admin_user = proposal::whoami(&admin).await.expect("whoami");
        Self {
            api: Api::namespaced(admin, ns),
            proposal: proposal(
                "probe",
                &admin_user,
                "RISK_OVERRIDE",
                agent_target("x"),
                None,
            ),
        }
    }

    /// Whether the API server answers the dry run with the T-gent webhook's denial; the answer,
    /// written out, otherwise.
    async fn denied_by_t_gent(&self) -> Result<(), String> {
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        match self.api.create(&dry_run, &self.proposal).await {
            Err(kube::Error::Api(status)) if status.message.contains("T-gent") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }
}

/// Waits until the API server calls the webhook of `ns` (it learns about webhook
/// configurations through an informer): a dry-run CRITICAL proposal is denied by it.
async fn webhook_in_effect(testbed: &Testbed, ns: &str) {
    let probe = CriticalProbe::new(testbed, ns).await;
    eventually(
        "the webhook to take effect",
        Duration::from_secs(30),
        || async { probe.denied_by_t_gent().await.ok() },
    )
    .await;
}

/// `RunOptions::webhook_runtime`: the operator's webhook, on a runtime of its own, answers the
/// API server while the controllers' runtime cannot run at all. The controllers' runtime is
/// this test's single thread, blocked while another thread asks; had the webhook been served
/// from it, the API server's call would time out (after 3 s) and the create fail with "failed
/// calling webhook" instead of the T-gent's denial.
#[tokio::test]
async fn the_operators_webhook_on_its_own_runtime_answers_while_the_controllers_cannot_run() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "own-runtime").await;
    let ctx = operator_context(testbed, &ns, "own-runtime", all_rules()).await;
    let webhook_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the webhook's runtime");
    let mut options = RunOptions::new(
        OperatorConfig {
            namespace: Some(ns.clone()),
            ..OperatorConfig::default()
        },
        &ns,
    );
    options.http_addr = None;
    options.leader_election = None;
    options.controllers = run::controllers()
        .into_iter()
        .filter(|c| c.name == proposal::CONTROLLER)
        .collect();
    options.webhook_runtime = Some(webhook_runtime.handle().clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run::run_with_webhook(
        ctx.client.clone(),
        options,
        webhook_config(&ns, None),
        async {
            let _ = stopped.await;
        },
    ));
    webhook_in_effect(testbed, &ns).await;

    let asking_ns = ns.clone();
    let asking = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the asking thread's runtime");
        runtime.block_on(async {
            CriticalProbe::new(testbed, &asking_ns)
                .await
                .denied_by_t_gent()
                .await
        })
    });
    // Blocks this thread, and with it everything on the controllers' runtime, until the answer
    // is in.
    let answer = asking.join().expect("the asking thread");
    assert!(
        answer.is_ok(),
        "the webhook on its own runtime did not deny while the controllers' runtime was blocked: {answer:?}"
    );

    let _ = stop.send(());
    operator
        .await
        .expect("the operator task")
        .expect("the operator stops cleanly");
    // Dropping a runtime inside another one's task would block it.
    webhook_runtime.shutdown_background();
}

async fn phase_of(
    api: &Api<Proposal>,
    name: &str,
    phase: ProposalPhase,
    within: Duration,
) -> Proposal {
    eventually(&format!("{name} to be {phase:?}"), within, || async {
        api.get(name)
            .await
            .ok()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase) == Some(phase))
    })
    .await
}

/// The reasons of the Events published about proposal `name` in `ns`.
async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Proposal") && r.name.as_deref() == Some(name)
            })
        })
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits until every reason in `expected` has an Event about proposal `name`.
async fn events_for(client: &Client, ns: &str, name: &str, expected: &[&str]) {
    eventually(
        &format!("Events {expected:?} about {name}"),
        Duration::from_secs(20),
        || async {
            let reasons = event_reasons(client, ns, name).await;
            expected
                .iter()
                .all(|r| reasons.iter().any(|seen| seen == r))
                .then_some(())
        },
    )
    .await;
}

/// Warnings and errors logged in this test binary (every test's), as `field=value` lines.
static WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Keeps every warning and error in [`WARNINGS`].
struct KeepWarnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for KeepWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        WARNINGS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fields.0);
    }
}

/// Starts keeping warnings and errors in [`WARNINGS`] (and prints the log under `RUST_LOG`, as
/// the other test binaries do).
fn keep_warnings() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing_subscriber::EnvFilter::from_default_env()),
        )
        .with(KeepWarnings.with_filter(tracing_subscriber::filter::LevelFilter::WARN))
        .try_init();
}

/// The warnings and errors logged since [`keep_warnings`].
fn warnings() -> Vec<String> {
    WARNINGS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The proposal controller's reconciles started so far, read once none is running.
async fn idle_reconciles(ctx: &Context) -> u64 {
    eventually(
        "the proposal controller to be idle",
        Duration::from_secs(20),
        || async {
            let (started, finished) = reconcile_counts(&ctx.metrics, proposal::CONTROLLER);
            (started == finished).then_some(started)
        },
    )
    .await
}

fn denial(outcome: Result<Proposal, kube::Error>) -> String {
    match outcome {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            status.message.clone()
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gates_by_risk_and_kind_and_the_controller_executes_what_is_approved() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "proposal").await;
    grant_proposers(testbed, &ns).await;
    let ctx = Arc::new(operator_context(testbed, &ns, "proposal", all_rules()).await);
    let webhook = start_webhook(testbed, &ctx, &ns).await;
    let controller = Running::start(ctx.clone(), |ctx, stop| {
        proposal::run_with(ctx, ProposalSettings::default(), stop)
    });

    let admin = testbed.client().await.expect("admin");
    create_agent(&admin, &ns, "b").await;
    let agent_client = testbed
        .service_account_client(&ns, AGENT_SA)
        .await
        .expect("agent client");
    let alice = testbed
        .impersonating_client("alice", &["system:authenticated"])
        .await
        .expect("alice");
    let bob = testbed
        .impersonating_client("bob", &["system:authenticated"])
        .await
        .expect("bob");
    let as_agent: Api<Proposal> = Api::namespaced(agent_client, &ns);
    let as_alice: Api<Proposal> = Api::namespaced(alice, &ns);
    let as_admin: Api<Proposal> = Api::namespaced(admin.clone(), &ns);
    let agent = agent_user(&ns);

    // LOW from an agent: admitted, auto-approved, executed.
    as_agent
        .create(
            &PostParams::default(),
            &proposal(
                "scale-b",
                &agent,
                "AGENT_SCALE",
                agent_target("b"),
                replicas(3),
            ),
        )
        .await
        .expect("LOW is admitted");
    let merged = phase_of(
        &as_admin,
        "scale-b",
        ProposalPhase::Merged,
        Duration::from_secs(20),
    )
    .await;
    let status = merged.status.expect("status");
    assert_eq!(
        status.risk_assessment.as_ref().map(|a| a.decision),
        Some(RiskDecision::AutoApprove)
    );
    let execution = status.execution.expect("execution recorded");
    assert!(execution.success && !execution.dry_run, "{execution:?}");
    let previous: Value =
        serde_json::from_str(execution.previous.as_deref().expect("previous")).expect("JSON");
    assert_eq!(previous["spec"]["replicas"], 1);
    let b = Api::<Agent>::namespaced(admin.clone(), &ns)
        .get("b")
        .await
        .expect("agent");
    assert_eq!(b.spec.replicas, 3);
    assert_eq!(
        b.metadata
            .annotations
            .unwrap_or_default()
            .get("kgents.io/applied-proposal"),
        merged.metadata.uid.as_ref()
    );
    // Every transition is published as an Event.
    events_for(&admin, &ns, "scale-b", &["AutoApproved", "Applied"]).await;
    assert_eq!(
        as_admin
            .get("scale-b")
            .await
            .expect("get")
            .status
            .and_then(|s| s.proposer_kind),
        Some(ProposerKind::Agent)
    );
    // The controller applies the status at the resourceVersion it planned on: the API server
    // refuses such a write from a copy older than the stored object (a lagging cache), so the
    // same transition is never recorded, nor its Event published, twice.
    let refused = as_admin
        .patch_status(
            "scale-b",
            &kube::api::PatchParams::apply("kgents-proposal-controller").force(),
            &kube::api::Patch::Apply(json!({
                "apiVersion": "kgents.io/v1", "kind": "Proposal",
                "metadata": {"resourceVersion": "1"},
                "status": {"phase": "Merged"},
            })),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 409),
        "a status applied at an old resourceVersion is refused: {refused:?}"
    );

    // CRITICAL: denied at create with the explanation.
    let message = denial(
        as_alice
            .create(
                &PostParams::default(),
                &proposal(
                    "override",
                    "alice",
                    "RISK_OVERRIDE",
                    agent_target("b"),
                    None,
                ),
            )
            .await,
    );
    assert!(
        message.contains("CRITICAL") && message.contains("RISK_OVERRIDE base 0.90"),
        "{message}"
    );

    // HIGH from an agent (0.6 × (1 + velocity 0.1) + cumulative 0.05 = 0.71): denied.
    let message = denial(
        as_agent
            .create(
                &PostParams::default(),
                &proposal(
                    "migrate-by-agent",
                    &agent,
                    "MEMORY_MIGRATE",
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "memory-index"}),
                    None,
                ),
            )
            .await,
    );
    assert!(message.contains("HIGH risk filed by an agent"), "{message}");

    // A Secret target: denied whoever asks.
    let message = denial(
        as_alice
            .create(
                &PostParams::default(),
                &proposal(
                    "secret",
                    "alice",
                    "CONFIG_UPDATE",
                    json!({"apiVersion": "v1", "kind": "Secret", "name": "s"}),
                    None,
                ),
            )
            .await,
    );
    assert!(message.contains("never allowed"), "{message}");

    // Filing in someone else's name: denied.
    let message = denial(
        as_agent
            .create(
                &PostParams::default(),
                &proposal(
                    "pose",
                    "alice",
                    "AGENT_SCALE",
                    agent_target("b"),
                    replicas(2),
                ),
            )
            .await,
    );
    assert!(message.contains("own name"), "{message}");

    // HIGH from a person: admitted, waits for a human, executes once bob approves.
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "memory-index"}, "data": {"layout": "v1"}}),
            )
            .expect("cm"),
        )
        .await
        .expect("config map");
    as_alice
        .create(
            &PostParams::default(),
            &proposal(
                "migrate",
                "alice",
                "MEMORY_MIGRATE",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "memory-index"}),
                Some(json!({"type": "merge", "content": "{\"data\":{\"layout\":\"v2\"}}"})),
            ),
        )
        .await
        .expect("HIGH from a person is admitted");
    let waiting = phase_of(
        &as_admin,
        "migrate",
        ProposalPhase::Reviewing,
        Duration::from_secs(20),
    )
    .await;
    let status = waiting.status.expect("status");
    assert_eq!(
        status.risk_assessment.map(|a| a.decision),
        Some(RiskDecision::RequireHuman)
    );
    assert_eq!(
        status.review.and_then(|r| r.result),
        Some(ReviewResult::Skipped)
    );
    // alice approving her own proposal does not count: once the controller has reconciled
    // since her approval (migrate is the only undecided proposal here, so that reconcile is
    // migrate's), it is still Reviewing and the controller wrote nothing.
    let started = idle_reconciles(&ctx).await;
    proposal::approve(
        &testbed
            .impersonating_client("alice", &["system:authenticated"])
            .await
            .expect("alice"),
        &ns,
        "migrate",
        None,
    )
    .await
    .expect("alice approves");
    let with_alice = as_admin.get("migrate").await.expect("get");
    reconciled_since(&ctx.metrics, proposal::CONTROLLER, started).await;
    let looked_at = as_admin.get("migrate").await.expect("get");
    let status = looked_at.status.clone().expect("status");
    assert_eq!(status.phase, Some(ProposalPhase::Reviewing), "{status:?}");
    assert_eq!(
        looked_at.resource_version(),
        with_alice.resource_version(),
        "the controller wrote nothing after alice's own approval: {status:?}"
    );
    assert!(
        status.approvals.iter().any(|a| a.approver == "alice"),
        "{status:?}"
    );
    assert_eq!(
        config_maps
            .get("memory-index")
            .await
            .expect("cm")
            .data
            .unwrap_or_default()["layout"],
        "v1"
    );
    let approver = proposal::approve(&bob, &ns, "migrate", Some("checked the layout"))
        .await
        .expect("bob approves");
    assert_eq!(approver, "bob");
    let merged = phase_of(
        &as_admin,
        "migrate",
        ProposalPhase::Merged,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        merged
            .status
            .expect("status")
            .approvals
            .iter()
            .any(|a| a.approver == "bob")
    );
    assert_eq!(
        config_maps
            .get("memory-index")
            .await
            .expect("cm")
            .data
            .unwrap_or_default()["layout"],
        "v2"
    );
    events_for(
        &admin,
        &ns,
        "migrate",
        &["AwaitingReview", "Approved", "Applied"],
    )
    .await;

    // A code change made outside the cluster (File target, no patch): admitted, decided like
    // any proposal, and never executed by the operator — it ends Approved.
    let mut external = proposal(
        "fix-parser",
        "alice",
        "CODE_PATCH",
        json!({"kind": "File", "name": "kgents-probes/src/challenge.rs"}),
        None,
    );
    external.spec.magnitude.lines_added = 12;
    as_alice
        .create(&PostParams::default(), &external)
        .await
        .expect("a patch-less CODE_PATCH for a File is admitted");
    let seen = eventually(
        "fix-parser to be assessed",
        Duration::from_secs(20),
        || async {
            as_admin.get("fix-parser").await.ok().filter(|p| {
                matches!(
                    p.status.as_ref().and_then(|s| s.phase),
                    Some(ProposalPhase::Approved | ProposalPhase::Reviewing)
                )
            })
        },
    )
    .await;
    assert_eq!(
        seen.status.as_ref().and_then(|s| s.proposer_kind),
        Some(ProposerKind::Person)
    );
    if seen.status.as_ref().and_then(|s| s.phase) == Some(ProposalPhase::Reviewing) {
        proposal::approve(&bob, &ns, "fix-parser", Some("reviewed the diff"))
            .await
            .expect("bob approves");
    }
    phase_of(
        &as_admin,
        "fix-parser",
        ProposalPhase::Approved,
        Duration::from_secs(20),
    )
    .await;
    // Its transition into Approved was published (AutoApproved when LOW, else Approved).
    eventually(
        "an Event for fix-parser's approval",
        Duration::from_secs(20),
        || async {
            event_reasons(&admin, &ns, "fix-parser")
                .await
                .iter()
                .any(|r| r == "AutoApproved" || r == "Approved")
                .then_some(())
        },
    )
    .await;
    // Nudged (an annotation no plan reads) once the controller is idle, and reconciled since:
    // the controller wrote nothing more — no dry run, no execution.
    let started = idle_reconciles(&ctx).await;
    let nudged = as_admin
        .patch(
            "fix-parser",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"annotations": {"test.kgents.io/nudge": "1"}}}),
            ),
        )
        .await
        .expect("nudge fix-parser");
    reconciled_since(&ctx.metrics, proposal::CONTROLLER, started).await;
    let settled = as_admin.get("fix-parser").await.expect("get");
    assert_eq!(
        settled.resource_version(),
        nudged.resource_version(),
        "the controller wrote nothing after the nudge: {:?}",
        settled.status
    );
    let status = settled.status.expect("status");
    assert_eq!(status.phase, Some(ProposalPhase::Approved), "never Merged");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.reason, "ApprovedForExternalExecution");
    assert!(
        status.execution.is_none(),
        "never executed: {:?}",
        status.execution
    );

    // Only the operator writes the phase, and nobody records someone else's vote.
    as_alice
        .create(
            &PostParams::default(),
            &proposal(
                "deploy-b",
                "alice",
                "AGENT_DEPLOY",
                agent_target("b"),
                replicas(4),
            ),
        )
        .await
        .expect("MEDIUM is admitted");
    phase_of(
        &as_admin,
        "deploy-b",
        ProposalPhase::Reviewing,
        Duration::from_secs(20),
    )
    .await;
    let as_bob: Api<Proposal> = Api::namespaced(bob.clone(), &ns);
    idle_reconciles(&ctx).await;
    let unforged = as_admin.get("deploy-b").await.expect("get");
    let forge =
        |status: Value| json!({"apiVersion": "kgents.io/v1", "kind": "Proposal", "status": status});
    // Forced, so that only admission can stop it (an SSA conflict would otherwise).
    let params = kube::api::PatchParams::apply("bob").force();
    let message = denial(
        as_bob
            .patch_status(
                "deploy-b",
                &params,
                &kube::api::Patch::Apply(&forge(json!({"phase": "Approved"}))),
            )
            .await,
    );
    assert!(message.contains("only the operator"), "{message}");
    let message = denial(
        as_bob
            .patch_status(
                "deploy-b",
                &params,
                &kube::api::Patch::Apply(&forge(
                    json!({"approvals": [{"approver": "carol", "at": "2027-01-01T00:00:00Z"}]}),
                )),
            )
            .await,
    );
    assert!(message.contains("'carol'"), "{message}");
    // Denied writes are not stored: the proposal is the version read before them, so the
    // controller has nothing new to act on.
    let after_forgeries = as_admin.get("deploy-b").await.expect("get");
    assert_eq!(
        after_forgeries.resource_version(),
        unforged.resource_version(),
        "no forged write was stored: {:?}",
        after_forgeries.status
    );
    assert_eq!(
        after_forgeries.status.and_then(|s| s.phase),
        Some(ProposalPhase::Reviewing)
    );
    assert_eq!(
        Api::<Agent>::namespaced(admin.clone(), &ns)
            .get("b")
            .await
            .expect("agent")
            .spec
            .replicas,
        3
    );

    controller.stop().await;
    webhook.shutdown().await;
}

/// A fake OpenAI-compatible endpoint: answers ALLOW, DENY or garbage depending on the proposal
/// named in the prompt.
async fn fake_model() -> String {
    async fn chat(Json(request): Json<Value>) -> Json<Value> {
        let prompt = request["messages"].to_string();
        let text = if prompt.contains("review-allow") {
            "ALLOW\nOne more replica is within budget."
        } else if prompt.contains("review-deny") {
            "DENY\nThe agent is already over its budget."
        } else {
            "Well, it depends; I would probably allow it."
        };
        Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }))
    }
    let app = axum::Router::new().route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medium_proposals_are_reviewed_by_the_model_and_garbage_escalates_to_humans() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "review").await;
    grant_proposers(testbed, &ns).await;
    let ctx = Arc::new(operator_context(testbed, &ns, "review", all_rules()).await);
    let webhook = start_webhook(testbed, &ctx, &ns).await;
    let endpoint = fake_model().await;
    let config = kgents_llm::ModelConfig::from_parts("openai", Some("fake"), Some(&endpoint), None)
        .expect("model config");
    let client = kgents_llm::build_client(&config).expect("client");
    let reviewer = Arc::new(LlmReviewer::new(
        client,
        "t-gent/fake",
        Duration::from_secs(10),
    ));
    let settings = ProposalSettings::new().with_reviewer(reviewer);
    let controller = Running::start(ctx.clone(), move |ctx, stop| {
        proposal::run_with(ctx, settings, stop)
    });

    let admin = testbed.client().await.expect("admin");
    for name in ["allow", "deny", "garbage"] {
        create_agent(&admin, &ns, name).await;
    }
    let as_agent: Api<Proposal> = Api::namespaced(
        testbed
            .service_account_client(&ns, AGENT_SA)
            .await
            .expect("agent"),
        &ns,
    );
    let as_admin: Api<Proposal> = Api::namespaced(admin.clone(), &ns);
    let agent = agent_user(&ns);
    for name in ["allow", "deny", "garbage"] {
        as_agent
            .create(
                &PostParams::default(),
                &proposal(
                    &format!("review-{name}"),
                    &agent,
                    "AGENT_DEPLOY",
                    agent_target(name),
                    replicas(2),
                ),
            )
            .await
            .expect("MEDIUM is admitted");
    }

    let allowed = phase_of(
        &as_admin,
        "review-allow",
        ProposalPhase::Merged,
        Duration::from_secs(30),
    )
    .await;
    let review = allowed
        .status
        .as_ref()
        .and_then(|s| s.review.clone())
        .expect("review");
    assert_eq!(review.result, Some(ReviewResult::Passed));
    assert_eq!(review.reviewer.as_deref(), Some("t-gent/fake"));
    assert!(review.report.unwrap_or_default().contains("within budget"));
    let agents: Api<Agent> = Api::namespaced(admin.clone(), &ns);
    assert_eq!(agents.get("allow").await.expect("agent").spec.replicas, 2);

    let denied = phase_of(
        &as_admin,
        "review-deny",
        ProposalPhase::Rejected,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        denied.status.and_then(|s| s.review).and_then(|r| r.result),
        Some(ReviewResult::Failed)
    );
    assert_eq!(agents.get("deny").await.expect("agent").spec.replicas, 1);

    let escalated = eventually(
        "the garbage answer to escalate",
        Duration::from_secs(30),
        || async {
            as_admin.get("review-garbage").await.ok().filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.review.as_ref())
                    .and_then(|r| r.result)
                    == Some(ReviewResult::Escalated)
            })
        },
    )
    .await;
    let status = escalated.status.clone().expect("status");
    assert_eq!(status.phase, Some(ProposalPhase::Reviewing));
    assert!(
        status
            .review
            .and_then(|r| r.report)
            .unwrap_or_default()
            .contains("did not start with a line reading ALLOW, DENY or ESCALATE")
    );
    assert_eq!(status.proposer_kind, Some(ProposerKind::Agent));

    // Each reviewed proposal emitted its REVIEW_REQUEST pheromone, owned by the proposal.
    let pheromones: Api<Pheromone> = Api::namespaced(admin, &ns);
    let signal = pheromones
        .get("review-review-garbage")
        .await
        .expect("pheromone");
    assert_eq!(signal.spec.kind, kgents_crds::PheromoneType::ReviewRequest);
    let owner = &signal.metadata.owner_references.expect("owner")[0];
    assert_eq!(owner.kind, "Proposal");
    assert_eq!(Some(&owner.uid), escalated.metadata.uid.as_ref());

    controller.stop().await;
    webhook.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_that_slipped_in_without_the_webhook_are_reassessed_and_rejected() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "slipped").await;
    grant_proposers(testbed, &ns).await;
    let ctx = Arc::new(operator_context(testbed, &ns, "slipped", all_rules()).await);
    let admin = testbed.client().await.expect("admin");
    create_agent(&admin, &ns, "b").await;
    let as_agent: Api<Proposal> = Api::namespaced(
        testbed
            .service_account_client(&ns, AGENT_SA)
            .await
            .expect("agent"),
        &ns,
    );
    let as_admin: Api<Proposal> = Api::namespaced(admin.clone(), &ns);
    let agent = agent_user(&ns);
    // No webhook: these are stored.
    as_agent
        .create(
            &PostParams::default(),
            &proposal(
                "delete-b",
                &agent,
                "AGENT_DELETE",
                agent_target("b"),
                replicas(0),
            ),
        )
        .await
        .expect("stored without the webhook");
    as_agent
        .create(
            &PostParams::default(),
            &proposal(
                "secret",
                &agent,
                "CONFIG_UPDATE",
                json!({"apiVersion": "v1", "kind": "Secret", "name": "s"}),
                None,
            ),
        )
        .await
        .expect("stored without the webhook");
    as_agent
        .create(
            &PostParams::default(),
            &proposal(
                "scale-b",
                &agent,
                "AGENT_SCALE",
                agent_target("b"),
                replicas(2),
            ),
        )
        .await
        .expect("stored without the webhook");

    let controller = Running::start(ctx.clone(), |ctx, stop| {
        proposal::run_with(ctx, ProposalSettings::default(), stop)
    });
    for name in ["delete-b", "secret"] {
        let rejected = phase_of(
            &as_admin,
            name,
            ProposalPhase::Rejected,
            Duration::from_secs(20),
        )
        .await;
        let ready = rejected
            .status
            .expect("status")
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.reason, "WouldHaveBeenDenied", "{name}");
        assert!(
            ready.message.contains("T-gent"),
            "{name}: {}",
            ready.message
        );
    }
    // What the webhook would have admitted goes on as usual.
    phase_of(
        &as_admin,
        "scale-b",
        ProposalPhase::Merged,
        Duration::from_secs(20),
    )
    .await;
    let agents: Api<Agent> = Api::namespaced(admin, &ns);
    assert_eq!(
        agents.get("b").await.expect("agent").spec.replicas,
        2,
        "the rejected delete never ran"
    );
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_proposal_expires_within_two_seconds_of_its_ttl() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "expiry").await;
    grant_proposers(testbed, &ns).await;
    let ctx = Arc::new(operator_context(testbed, &ns, "expiry", all_rules()).await);
    let controller = Running::start(ctx.clone(), |ctx, stop| {
        proposal::run_with(ctx, ProposalSettings::default(), stop)
    });
    let admin = testbed.client().await.expect("admin");
    let as_alice: Api<Proposal> = Api::namespaced(
        testbed
            .impersonating_client("alice", &["system:authenticated"])
            .await
            .expect("alice"),
        &ns,
    );
    let as_admin: Api<Proposal> = Api::namespaced(admin, &ns);
    let mut waiting = proposal(
        "waits",
        "alice",
        "AGENT_DEPLOY",
        agent_target("nobody"),
        None,
    );
    waiting.spec.ttl_seconds = 60;
    let created = as_alice
        .create(&PostParams::default(), &waiting)
        .await
        .expect("created");
    let ttl_at = created.metadata.creation_timestamp.expect("created at").0
        + jiff::SignedDuration::from_secs(60);

    // A newer filing by the same proposer for the same target supersedes the pending one at
    // once (not at its next requeue).
    as_alice
        .create(
            &PostParams::default(),
            &proposal("first", "alice", "AGENT_DEPLOY", agent_target("twin"), None),
        )
        .await
        .expect("first");
    phase_of(
        &as_admin,
        "first",
        ProposalPhase::Reviewing,
        Duration::from_secs(10),
    )
    .await;
    // Creation timestamps have whole seconds: the second filing is visibly newer.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    as_alice
        .create(
            &PostParams::default(),
            &proposal(
                "second",
                "alice",
                "AGENT_DEPLOY",
                agent_target("twin"),
                None,
            ),
        )
        .await
        .expect("second");
    let superseded = phase_of(
        &as_admin,
        "first",
        ProposalPhase::Superseded,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        superseded.status.and_then(|s| s.superseded_by).as_deref(),
        Some("second")
    );
    phase_of(
        &as_admin,
        "waits",
        ProposalPhase::Reviewing,
        Duration::from_secs(10),
    )
    .await;
    let expired = phase_of(
        &as_admin,
        "waits",
        ProposalPhase::Expired,
        Duration::from_secs(75),
    )
    .await;
    let seen = jiff::Timestamp::now();
    let late = seen.duration_since(ttl_at);
    assert!(
        late.as_secs_f64() < 2.0 && late.as_secs_f64() > -0.001,
        "expired {late:?} after the TTL"
    );
    assert_eq!(
        expired.status.and_then(|s| s.expires_at).map(|t| t.0),
        Some(ttl_at)
    );
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_trusted_and_served_without_a_restart() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "rotate").await;
    let ctx = Arc::new(operator_context(testbed, &ns, "rotate", all_rules()).await);
    let webhook = start_webhook(testbed, &ctx, &ns).await;
    let before = webhook.ca_pem();
    webhook.rotate_now().await.expect("rotated");
    let after = webhook.ca_pem();
    assert_ne!(before, after);
    assert_eq!(
        after.matches("BEGIN CERTIFICATE").count(),
        2,
        "new and previous CA trusted"
    );
    assert!(
        after.contains(before.trim()),
        "the previous CA stays in the bundle"
    );

    let admin = testbed.client().await.expect("admin");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), &ns);
    let stored = secrets.get("kgents-webhook-tls").await.expect("secret");
    let stored_ca = stored.data.expect("data")["ca.crt"].0.clone();
    assert_eq!(String::from_utf8(stored_ca).expect("utf-8"), after);

    // The API server keeps calling it over TLS with the new certificate.
    let user = proposal::whoami(&admin).await.expect("whoami");
    let api: Api<Proposal> = Api::namespaced(admin, &ns);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for attempt in 0..3 {
        let critical = proposal(
            &format!("critical-{attempt}"),
            &user,
            "RISK_OVERRIDE",
            agent_target("x"),
            None,
        );
        let message = denial(api.create(&dry_run, &critical).await);
        assert!(message.contains("CRITICAL"), "{message}");
    }
    api.create(
        &dry_run,
        &proposal("low", &user, "AGENT_SCALE", agent_target("x"), replicas(2)),
    )
    .await
    .expect("LOW still admitted after rotation");
    webhook.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_config_map_is_reloaded_and_a_bad_edit_keeps_the_previous_policy() {
    keep_warnings();
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "policy").await;
    let ctx = Arc::new(operator_context(testbed, &ns, "policy", all_rules()).await);
    let admin = testbed.client().await.expect("admin");
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let policy = |text: &str| -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": "policy"}, "data": {"policy.yaml": text}}),
        )
        .expect("config map")
    };
    let at_most_two = "rules:\n  - name: max-replicas\n    kinds: [Agent]\n    expression: \"!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= 2\"\n    message: at most 2 replicas\n";
    config_maps
        .create(&PostParams::default(), &policy(at_most_two))
        .await
        .expect("policy");
    let webhook = start_webhook_with_policy(testbed, &ctx, &ns, Some("policy")).await;
    let user = proposal::whoami(&admin).await.expect("whoami");
    let api: Api<Proposal> = Api::namespaced(admin.clone(), &ns);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let three = proposal(
        "three",
        &user,
        "AGENT_SCALE",
        agent_target("b"),
        replicas(3),
    );
    let message = denial(api.create(&dry_run, &three).await);
    assert!(message.contains("at most 2 replicas"), "{message}");

    // The rule is relaxed: admitted once the watch has the new policy.
    let at_most_three = "rules:\n  - name: max-replicas\n    kinds: [Agent]\n    expression: \"!has(patch.spec) || !has(patch.spec.replicas) || patch.spec.replicas <= 3\"\n    message: at most 3 replicas\n";
    let four = proposal("four", &user, "AGENT_SCALE", agent_target("b"), replicas(4));
    let replace = |text: &str| {
        let map = policy(text);
        let config_maps = config_maps.clone();
        async move {
            config_maps
                .replace("policy", &PostParams::default(), &{
                    let mut map = map;
                    map.metadata.resource_version = config_maps
                        .get("policy")
                        .await
                        .expect("policy")
                        .metadata
                        .resource_version;
                    map
                })
                .await
                .expect("policy replaced");
        }
    };
    replace(at_most_three).await;
    eventually(
        "the relaxed rule to take effect",
        Duration::from_secs(20),
        || async { api.create(&dry_run, &three).await.ok() },
    )
    .await;
    let relaxed = webhook.policy();

    // A broken edit is refused by the webhook, which says so and keeps the previous (relaxed)
    // policy: not the default, which would admit four replicas too.
    let broken = format!("broken-{ns}");
    replace(&format!(
        "rules: [{{name: {broken}, expression: \"1 +\"}}]\n"
    ))
    .await;
    eventually(
        "the webhook to log that it rejected the broken policy",
        Duration::from_secs(20),
        || async { warnings().iter().any(|w| w.contains(&broken)).then_some(()) },
    )
    .await;
    assert!(
        Arc::ptr_eq(&relaxed, &webhook.policy()),
        "the policy in force was replaced by a broken edit"
    );
    api.create(&dry_run, &three)
        .await
        .expect("the previous policy stays in force");
    let message = denial(api.create(&dry_run, &four).await);
    assert!(message.contains("at most 3 replicas"), "{message}");

    // And the rule comes back.
    replace(at_most_two).await;
    eventually(
        "the restored rule to take effect",
        Duration::from_secs(20),
        || async {
            match api.create(&dry_run, &three).await {
                Err(kube::Error::Api(status)) if status.message.contains("at most 2 replicas") => {
                    Some(())
                }
                _ => None,
            }
        },
    )
    .await;
    webhook.shutdown().await;
}
