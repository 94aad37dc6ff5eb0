//! Workflows end to end on a real API server, with the Workflow controller in process under the
//! RBAC it declares (and the Proposal controller beside it, which merges LOW-risk proposals):
//! a three-step workflow (a Pheromone emitted through the Logos, a Proposal, another
//! Pheromone) survives the controller being killed 20 times — at random instants and exactly
//! between a journal write and its effect — with every step's effect made exactly once; a
//! failing step is retried with backoff recorded in status; a create whose answer is lost (the
//! object made, the connection broken) is issued again under the same key and made once;
//! cancel stops further steps; a stored
//! spec with a cycle is reported, naming the step, and the CEL rules refuse what they can see.
//! The step overhead (journal written → next step started) is printed, not asserted.

mod support;
mod support_controllers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kgents_crds::workflow::{StepPhase, WorkflowPhase};
use kgents_crds::{Agent, Pheromone, Proposal, Umwelt, Workflow};
use kgents_operator::admission;
use kgents_operator::admission::server::{CertificateSource, Endpoint, WebhookConfig};
use kgents_operator::proposal::{self, ProposalSettings};
use kgents_operator::workflow::{self, JournalHook, WorkflowOptions};
use kgents_operator::{Context, rbac};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{eventually, eventually_seen};
use support_controllers::{Running, namespace, operator_context};

fn rules() -> Vec<PolicyRule> {
    let mut rules = workflow::required_rules();
    rules.extend(proposal::required_rules());
    rules.extend(rbac::process_rules());
    rules
}

async fn create<K>(client: &Client, ns: &str, object: Value) -> K
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let typed: K = serde_json::from_value(object).expect("valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &typed)
        .await
        .expect("created")
}

async fn umwelt(client: &Client, ns: &str, name: &str) {
    create::<Umwelt>(
        client,
        ns,
        json!({"apiVersion": "kgents.io/v1", "kind": "Umwelt", "metadata": {"name": name},
               "spec": {"agent": "runner", "affordances": ["void.pheromone.*"]}}),
    )
    .await;
}

/// Starts the Workflow controller on a fresh context (cold caches, as after a restart).
fn start_workflow(ctx: &Context, hook: Option<JournalHook>) -> tokio::task::JoinHandle<()> {
    let fresh = Arc::new(Context::new(ctx.client.clone(), ctx.config.clone()));
    let options = WorkflowOptions { journal_hook: hook };
    tokio::spawn(workflow::run_with(
        fresh,
        std::future::pending::<()>(),
        options,
    ))
}

async fn get(api: &Api<Workflow>, name: &str) -> Workflow {
    api.get(name).await.expect("workflow")
}

async fn until_phase(
    api: &Api<Workflow>,
    name: &str,
    phase: WorkflowPhase,
    within: Duration,
) -> Workflow {
    eventually_seen(
        &format!("workflow {name} to be {phase:?}"),
        within,
        || async {
            let wf = get(api, name).await;
            if wf.status.as_ref().and_then(|s| s.phase) == Some(phase) {
                Ok(wf)
            } else {
                Err(format!("{:#?}", wf.status))
            }
        },
    )
    .await
}

/// Pheromones whose name starts with the workflow's (the step objects are named from it).
async fn pheromones_of(client: &Client, ns: &str, workflow: &str) -> Vec<String> {
    Api::<Pheromone>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("pheromones")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .filter(|n| n.starts_with(&format!("{workflow}-")))
        .collect()
}

async fn proposals_of(client: &Client, ns: &str, workflow: &str) -> Vec<Proposal> {
    Api::<Proposal>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{}={workflow}", workflow::WORKFLOW_LABEL)))
        .await
        .expect("proposals")
        .items
}

fn emit(payload: &str) -> Value {
    json!({"pheromone_type": "STATE", "source": "runner", "payload": payload})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_step_workflow_survives_twenty_kills_and_runs_each_step_once() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "wf-kill").await;
    let ctx = Arc::new(operator_context(testbed, &ns, "workflow", rules()).await);
    let admin = testbed.client().await.expect("admin");
    create::<Agent>(
        &admin,
        &ns,
        json!({"apiVersion": "kgents.io/v1", "kind": "Agent", "metadata": {"name": "b"},
               "spec": {"genus": "B", "replicas": 1}}),
    )
    .await;
    umwelt(&admin, &ns, "runner").await;
    let api: Api<Workflow> = Api::namespaced(admin.clone(), &ns);
    create::<Workflow>(
        &admin,
        &ns,
        json!({"apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": "scale"},
        "spec": {"umwelt": "runner", "steps": [
            {"name": "announce", "path": "void.pheromone.emit", "args": emit("scaling b")},
            {"name": "scale", "dependsOn": ["announce"], "proposal": {
                "proposer": "runner", "changeType": "AGENT_SCALE",
                "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b"},
                "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":2}}"}}},
            {"name": "report", "dependsOn": ["scale"], "path": "void.pheromone.emit",
             "args": emit("b scaled")},
        ]}}),
    )
    .await;

    // 20 kills, each at whichever comes first: a random instant 0–150 ms into the
    // controller's life, or right after it journals a step's start (the hook never returns;
    // the task is aborted while it waits, between the journal write and the effect). The
    // Proposal controller starts after the 12th kill, so the kills before it find the proposal
    // step waiting (each restart re-issues it with the same key) and the later ones the steps
    // around it.
    let mut proposals = None;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let hook: JournalHook = Arc::new(move |step: &str, key: &str| {
        let _ = seen_tx.send(format!("{step} {key}"));
        std::future::pending::<()>().boxed()
    });
    let mut at_journal = Vec::new();
    let mut mid_run = 0;
    for kill in 0..20 {
        if kill == 12 {
            proposals = Some(Running::start(ctx.clone(), |ctx, stop| {
                proposal::run_with(ctx, ProposalSettings::default(), stop)
            }));
        }
        let task = start_workflow(&ctx, Some(hook.clone()));
        let life = Duration::from_millis(rand_millis(kill, 150));
        tokio::select! {
            Some(step) = seen_rx.recv() => {
                println!("kill {kill}: between the journal write and the effect of {step}");
                at_journal.push(step);
            }
            () = tokio::time::sleep(life) => println!("kill {kill}: after {life:?}"),
        }
        task.abort();
        let _ = task.await;
        let phase = get(&api, "scale").await.status.and_then(|s| s.phase);
        if !phase.is_some_and(WorkflowPhase::is_finished) {
            mid_run += 1;
        }
    }
    println!(
        "{} kills between a journal write and its effect, {mid_run} of 20 before the workflow finished",
        at_journal.len()
    );
    assert!(
        at_journal.len() >= 2,
        "at least two kills landed between a journal write and its effect: {at_journal:?}"
    );
    assert!(mid_run >= 12, "the kills land while the workflow runs");

    let last = start_workflow(&ctx, None);
    let done = until_phase(
        &api,
        "scale",
        WorkflowPhase::Succeeded,
        Duration::from_secs(60),
    )
    .await;
    let status = done.status.expect("status");
    for step in &status.steps {
        assert_eq!(step.phase, StepPhase::Succeeded, "{step:?}");
        assert_eq!(step.attempt, 1, "no step needed a second attempt: {step:?}");
    }
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");
    // Exactly once: one Proposal and two Pheromones, named from the keys.
    let filed = proposals_of(&admin, &ns, "scale").await;
    assert_eq!(filed.len(), 1, "{filed:#?}");
    assert_eq!(
        filed[0]
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(workflow::KEY_ANNOTATION)),
        status.steps[1].idempotency_key.as_ref()
    );
    let emitted = pheromones_of(&admin, &ns, "scale").await;
    assert_eq!(emitted.len(), 2, "{emitted:?}");
    let agent = Api::<Agent>::namespaced(admin.clone(), &ns)
        .get("b")
        .await
        .expect("agent");
    assert_eq!(agent.spec.replicas, 2, "the proposal was executed");
    last.abort();
    if let Some(proposals) = proposals {
        proposals.stop().await;
    }
}

/// A pseudo-random number of milliseconds below `max` (no RNG needed for variety here).
fn rand_millis(seed: u64, max: u64) -> u64 {
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    );
    (nanos ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_retried_with_backoff_recorded_in_status() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "wf-retry").await;
    let ctx = Arc::new(operator_context(testbed, &ns, "workflow", rules()).await);
    let admin = testbed.client().await.expect("admin");
    let api: Api<Workflow> = Api::namespaced(admin.clone(), &ns);
    // The Umwelt does not exist yet: every attempt fails (retryably) until it does.
    create::<Workflow>(
        &admin,
        &ns,
        json!({"apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": "late"},
               "spec": {"umwelt": "later", "steps": [
                   {"name": "signal", "path": "void.pheromone.emit", "args": emit("hello"),
                    "retry": {"limit": 4, "backoff": {"durationSeconds": 1, "factor": 2, "capSeconds": 30}}},
               ]}}),
    )
    .await;
    let controller = start_workflow(&ctx, None);
    let (first_retry, second_retry) =
        eventually_seen("two retries scheduled", Duration::from_secs(30), || async {
            let wf = get(&api, "late").await;
            let step = wf.status.as_ref().and_then(|s| s.steps.first().cloned());
            match step {
                Some(step) if step.retries >= 2 && step.phase == StepPhase::Pending => {
                    Ok((step.clone(), step))
                }
                other => Err(format!("{other:#?}")),
            }
        })
        .await;
    let _ = first_retry;
    assert_eq!(second_retry.attempt, 2);
    let message = second_retry.message.clone().unwrap_or_default();
    assert!(
        message.contains("attempt 2 failed") && message.contains("later"),
        "{message}"
    );
    assert!(
        message.contains("retry 2 of 4 in 2s"),
        "the second delay doubled: {message}"
    );
    let next = second_retry.next_retry_at.expect("nextRetryAt").0;
    let started = second_retry.started_at.expect("startedAt").0;
    assert!(
        next > started,
        "the retry is scheduled after the failed attempt"
    );

    umwelt(&admin, &ns, "later").await;
    let done = until_phase(
        &api,
        "late",
        WorkflowPhase::Succeeded,
        Duration::from_secs(30),
    )
    .await;
    let step = &done.status.expect("status").steps[0];
    assert!(
        step.attempt >= 3 && step.retries == step.attempt - 1,
        "{step:?}"
    );
    assert_eq!(pheromones_of(&admin, &ns, "late").await.len(), 1);
    controller.abort();
}

/// A client stack that loses the answer to the first create of a Pheromone: the API server
/// has made the object, the caller sees a broken connection (as when a connection drops or a
/// deadline passes after the request was sent).
#[derive(Clone, Default)]
struct LoseFirstPheromoneCreate {
    lost: Arc<AtomicBool>,
}

impl<S> tower_layer::Layer<S> for LoseFirstPheromoneCreate {
    type Service = LosingAnswers<S>;

    fn layer(&self, inner: S) -> LosingAnswers<S> {
        LosingAnswers {
            inner,
            lost: self.lost.clone(),
        }
    }
}

#[derive(Clone)]
struct LosingAnswers<S> {
    inner: S,
    lost: Arc<AtomicBool>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B, R> tower_service::Service<http::Request<B>> for LosingAnswers<S>
where
    S: tower_service::Service<http::Request<B>, Response = R>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = R;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<R, BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let lose = request.method() == http::Method::POST
            && request.uri().path().ends_with("/pheromones")
            && !self.lost.swap(true, Ordering::SeqCst);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await.map_err(Into::into)?;
            if lose {
                drop(response);
                return Err(
                    "connection reset after the request was sent (lost by the test)".into(),
                );
            }
            Ok(response)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_issued_again_under_the_same_key_and_made_once() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "wf-lost").await;
    let ctx = operator_context(testbed, &ns, "workflow", rules()).await;
    let admin = testbed.client().await.expect("admin");
    umwelt(&admin, &ns, "runner").await;
    // The operator's own identity, through a stack that loses the first Pheromone create's
    // answer.
    let config = testbed
        .service_account_config(&ns, "kgents-operator")
        .await
        .expect("operator config");
    let losing = LoseFirstPheromoneCreate::default();
    let client = kube::client::ClientBuilder::try_from(config)
        .expect("client stack")
        .with_layer(&losing)
        .build();
    let lossy = Context::new(client, ctx.config.clone());
    let api: Api<Workflow> = Api::namespaced(admin.clone(), &ns);
    create::<Workflow>(
        &admin,
        &ns,
        json!({"apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": "lost"},
        "spec": {"umwelt": "runner", "steps": [
            {"name": "signal", "path": "void.pheromone.emit", "args": emit("once")},
        ]}}),
    )
    .await;
    let controller = start_workflow(&lossy, None);
    let done = until_phase(
        &api,
        "lost",
        WorkflowPhase::Succeeded,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        losing.lost.load(Ordering::SeqCst),
        "the first create's answer was lost"
    );
    let step = &done.status.expect("status").steps[0];
    assert_eq!(
        step.attempt, 1,
        "the lost answer kept the attempt and its key: {step:?}"
    );
    assert_eq!(
        pheromones_of(&admin, &ns, "lost").await.len(),
        1,
        "the create issued again under the same key found the first object"
    );
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_further_steps() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "wf-cancel").await;
    let ctx = Arc::new(operator_context(testbed, &ns, "workflow", rules()).await);
    let admin = testbed.client().await.expect("admin");
    umwelt(&admin, &ns, "runner").await;
    let api: Api<Workflow> = Api::namespaced(admin.clone(), &ns);
    // No Proposal controller runs here: the proposal step waits until it is cancelled.
    create::<Workflow>(
        &admin,
        &ns,
        json!({"apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": "stop"},
        "spec": {"umwelt": "runner", "steps": [
            {"name": "wait", "proposal": {"proposer": "runner", "changeType": "CODE_PATCH",
                                          "target": {"kind": "File", "name": "x.rs"}}},
            {"name": "after", "dependsOn": ["wait"], "path": "void.pheromone.emit",
             "args": emit("never")},
        ]}}),
    )
    .await;
    let controller = start_workflow(&ctx, None);
    eventually(
        "the proposal step to wait for its proposal",
        Duration::from_secs(20),
        || async {
            let wf = get(&api, "stop").await;
            let step = wf.status.as_ref()?.steps.first()?.clone();
            (step.phase == StepPhase::Running && step.object_name.is_some()).then_some(())
        },
    )
    .await;
    api.patch(
        "stop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"cancelled": true}})),
    )
    .await
    .expect("cancel");
    let cancelled = until_phase(
        &api,
        "stop",
        WorkflowPhase::Cancelled,
        Duration::from_secs(20),
    )
    .await;
    let steps = cancelled.status.expect("status").steps;
    assert_eq!(steps[0].phase, StepPhase::Cancelled);
    assert_eq!(steps[1].phase, StepPhase::Cancelled);
    assert_eq!(steps[1].attempt, 0, "the dependent step never started");
    // Nothing more happens after cancel.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(pheromones_of(&admin, &ns, "stop").await.is_empty());
    assert_eq!(proposals_of(&admin, &ns, "stop").await.len(), 1);
    controller.abort();
}

/// The operator's webhook for `ns` only, reached by the API server on 127.0.0.1; returns once
/// the API server calls it for Workflows.
async fn start_webhook(ctx: &Context, ns: &str, api: &Api<Workflow>) -> admission::WebhookServer {
    let config = WebhookConfig {
        configuration_name: format!("kgents-webhooks-{ns}"),
        namespace: ns.to_owned(),
        secret_name: "kgents-webhook-tls".to_owned(),
        policy_config_map: None,
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
    };
    let health = Arc::new(kgents_operator::http::Health::new(
        kgents_operator::leader::LeaderState::always(),
    ));
    let server = admission::serve(ctx, config, health)
        .await
        .expect("webhook serving");
    let probe = cycle("probe");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    eventually(
        "the webhook to take effect",
        Duration::from_secs(30),
        || async {
            match api.create(&dry_run, &probe).await {
                Err(kube::Error::Api(status)) if status.message.contains("cycle") => Some(()),
                _ => None,
            }
        },
    )
    .await;
    server
}

fn cycle(name: &str) -> Workflow {
    let proposal = json!({"proposer": "p", "changeType": "CODE_PATCH", "target": {"kind": "File", "name": "x"}});
    serde_json::from_value(json!({
    "apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": name},
    "spec": {"steps": [
        {"name": "a", "proposal": proposal, "dependsOn": ["c"]},
        {"name": "b", "proposal": proposal, "dependsOn": ["a"]},
        {"name": "c", "proposal": proposal, "dependsOn": ["b"]},
    ]}}))
    .expect("object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_refused_at_admission_or_reported_naming_the_step() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "wf-bad").await;
    let mut all = rules();
    all.extend(admission::server::required_rules());
    all.extend(admission::server::namespaced_rules());
    let ctx = Arc::new(operator_context(testbed, &ns, "workflow", all).await);
    let admin = testbed.client().await.expect("admin");
    let api: Api<Workflow> = Api::namespaced(admin.clone(), &ns);
    // What CEL sees, the API server refuses.
    let refused: Workflow = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": "no-umwelt"},
        "spec": {"steps": [{"name": "look", "path": "void.pheromone.sense"}]}}))
    .expect("object");
    match api.create(&PostParams::default(), &refused).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(
                status.message.contains("must name the Umwelt"),
                "{}",
                status.message
            );
        }
        other => panic!("a path step without an Umwelt was not refused: {other:?}"),
    }
    // A cycle is beyond CEL; stored before the webhook ran, it is reported and never run.
    api.create(&PostParams::default(), &cycle("loop"))
        .await
        .expect("stored without the webhook");
    let controller = start_workflow(&ctx, None);
    let failed = until_phase(&api, "loop", WorkflowPhase::Failed, Duration::from_secs(20)).await;
    let status = failed.status.expect("status");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed");
    assert_eq!(condition.reason, "InvalidSpec");
    assert!(
        condition.message.contains("step \"a\"") && condition.message.contains("cycle"),
        "{}",
        condition.message
    );
    assert!(
        proposals_of(&admin, &ns, "loop").await.is_empty(),
        "nothing ran"
    );
    controller.abort();

    // With the webhook, a cycle and an unknown path are refused at admission, naming the step.
    let webhook = start_webhook(&ctx, &ns, &api).await;
    let message = |result: kube::Result<Workflow>| match result {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("admitted: {other:?}"),
    };
    let refused = message(api.create(&PostParams::default(), &cycle("loop-2")).await);
    assert!(
        refused.contains("step \"a\"") && refused.contains("a -> c -> b -> a"),
        "{refused}"
    );
    let unknown: Workflow = serde_json::from_value(json!({
    "apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": "unknown"},
    "spec": {"umwelt": "u", "steps": [
        {"name": "look", "path": "void.pheromone.sense"},
        {"name": "smell", "dependsOn": ["look"], "path": "void.pheromone.smell"},
    ]}}))
    .expect("object");
    let refused = message(api.create(&PostParams::default(), &unknown).await);
    assert!(
        refused.contains("step \"smell\"") && refused.contains("not a registered AGENTESE path"),
        "{refused}"
    );
    webhook.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_overhead_is_measured() {
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let ns = namespace(testbed, "wf-perf").await;
    let ctx = Arc::new(operator_context(testbed, &ns, "workflow", rules()).await);
    let admin = testbed.client().await.expect("admin");
    umwelt(&admin, &ns, "runner").await;
    let api: Api<Workflow> = Api::namespaced(admin.clone(), &ns);
    let steps: Vec<Value> = (0..12)
        .map(|i| {
            let mut step = json!({"name": format!("s{i}"), "path": "void.pheromone.emit", "args": emit("tick")});
            if i > 0 {
                step["dependsOn"] = json!([format!("s{}", i - 1)]);
            }
            step
        })
        .collect();
    // The hook sees each start right after its journal write: the gap between two starts is
    // the previous step's effect, its outcome written, and the next start planned and written.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let hook: JournalHook = Arc::new(move |_: &str, _: &str| {
        let _ = tx.send(Instant::now());
        async {}.boxed()
    });
    let controller = start_workflow(&ctx, Some(hook));
    create::<Workflow>(
        &admin,
        &ns,
        json!({"apiVersion": "kgents.io/v1", "kind": "Workflow", "metadata": {"name": "chain"},
               "spec": {"umwelt": "runner", "steps": steps}}),
    )
    .await;
    until_phase(
        &api,
        "chain",
        WorkflowPhase::Succeeded,
        Duration::from_secs(60),
    )
    .await;
    let mut starts = Vec::new();
    while let Ok(at) = rx.try_recv() {
        starts.push(at);
    }
    assert_eq!(starts.len(), 12, "each step started once");
    let mut gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let p50 = gaps[gaps.len() / 2];
    let max = gaps[gaps.len() - 1];
    println!(
        "workflow step overhead (journal written -> next step started, incl. one Pheromone create): p50 {p50:?}, max {max:?} over {} steps",
        gaps.len()
    );
    controller.abort();
}
