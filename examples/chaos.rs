//! Chaos runs on the testbed (a measuring example, not a test): faults during churn, and what
//! held afterwards.
//!
//! ```sh
//! cargo run --example chaos -- --scenario all                    # the long runs
//! cargo run --example chaos -- --scenario operator-kill --agents 300 --runs 5
//! cargo run --example chaos -- --scenario all --markdown docs/reliability.md
//! ```
//!
//! On the full testbed (etcd, kube-apiserver, controller-manager with its garbage collector,
//! scheduler, kwok nodes), the operator runs as a separate process (this binary re-executed
//! with `--operator`, every controller, probes off, watching one namespace per scenario), so a
//! kill is a real SIGKILL. Each scenario churns Agents — creates them, scales some through
//! Proposals filed by an agent's ServiceAccount (auto-approved and executed by the operator),
//! deletes some. The churn scenarios first create the `--agents` population and let it converge
//! without a fault (its time is printed as the baseline: a fault in the middle of that backlog
//! would time the backlog, not the recovery); then each run is one churn wave with the fault at a
//! random write of it:
//!
//! - `operator-kill`: SIGKILL the operator, start it again; `--runs` times.
//! - `apiserver-restart`: stop and start kube-apiserver; the operator must recover with the same
//!   process (its pid unchanged).
//! - `etcd-pause`: SIGSTOP etcd for 10 s, then SIGCONT; same pid required.
//! - `webhook-down`: the operator with its T-gent webhook is killed (the configuration stays,
//!   `failurePolicy: Fail`): Agents, Pheromones, Memories and Umwelts are still created, a
//!   Proposal is refused; with the configuration removed, proposals admitted unchecked are
//!   re-assessed by the controller: the one the webhook would deny is rejected, never executed.
//! - `leader-change`: two operator processes with leader election; the leader is killed as soon
//!   as a proposal is Approved (before or while it executes); the patch is applied exactly once.
//! - `model-blackhole`: 100 Agents with cognitive probes on a fake model, then on a listener that
//!   accepts and never answers, while 50 plain Agents and 50 Pheromones are created: the Agent
//!   and Pheromone controllers' reconcile latency (the operator's histogram, from its /metrics)
//!   and the plain Agents' time to status, with and without the black hole.
//! - `workflow-kill`: a three-step Workflow (a Pheromone emitted through the Logos, a Proposal
//!   scaling an Agent, another Pheromone) started before each of `--workflow-runs` SIGKILLs of
//!   the operator, at a random instant of its life; afterwards every Workflow succeeded with
//!   each step's effect made exactly once (one Proposal and two Pheromones per Workflow, each
//!   Agent scaled).
//!
//! After each fault it polls the namespace until everything converged (see
//! `examples/support/chaos.rs`: no orphaned child, every live Agent's status current and
//! Running, every proposal finished, none announced as applied twice, no target reverted) or a deadline
//! passed, and records the time from the end of the fault. It prints a table and, with
//! `--markdown FILE`, rewrites the table between the chaos markers of FILE. Exits 1 when any
//! check broke.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kgents::kgents_crds::proposal::ProposalPhase;
use kgents::kgents_crds::workflow::{StepPhase, WorkflowPhase};
use kgents::kgents_crds::{Agent, Memory, Pheromone, Proposal, Umwelt, Workflow};
use kgents::kgents_operator::OperatorConfig;
use kgents::kgents_operator::admission::server::{CertificateSource, Endpoint, WebhookConfig};
use kgents::kgents_operator::leader::LeaderElectionConfig;
use kgents::kgents_operator::metrics::Metrics;
use kgents::kgents_operator::run::{self, RunOptions};
use kgents_testbed::Testbed;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

#[path = "support/chaos.rs"]
mod chaos;
#[path = "../kgents-operator/tests/support_cognitive/fake_model.rs"]
mod fake_model;
#[path = "support/measure.rs"]
mod measure;
use chaos::{AgentView, ChildView, Findings, Outcome, ProposalView, Random, Snapshot};

/// Every scenario, in the order `all` runs them.
const SCENARIOS: [&str; 7] = [
    "operator-kill",
    "apiserver-restart",
    "etcd-pause",
    "webhook-down",
    "leader-change",
    "model-blackhole",
    "workflow-kill",
];

#[derive(Parser, Debug, Clone)]
#[command(about = "Faults during churn on the testbed, and what held.")]
struct Args {
    /// A scenario (operator-kill, apiserver-restart, etcd-pause, webhook-down, leader-change,
    /// model-blackhole, workflow-kill) or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Agents the churn creates first (each later run creates, deletes and scales a tenth).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Kills of the operator in `operator-kill` (one per churn wave).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Kills of the operator in `workflow-kill` (one Workflow started before each).
    #[arg(long, default_value_t = 20)]
    workflow_runs: usize,
    /// Faults in each other scenario.
    #[arg(long, default_value_t = 3)]
    fault_runs: usize,
    /// kwok nodes of the testbed.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Seconds each run may take to converge after its fault before it counts as broken.
    #[arg(long, default_value_t = 180)]
    deadline: u64,
    /// Seed of the random fault points (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Rewrite the chaos table between the markers of this Markdown file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Internal: run as the operator process.
    #[arg(long, hide = true)]
    operator: bool,
    /// Internal (with --operator): kubeconfig of the testbed.
    #[arg(long, hide = true)]
    kubeconfig: Option<PathBuf>,
    /// Internal (with --operator): the namespace to watch.
    #[arg(long, hide = true)]
    namespace: Option<String>,
    /// Internal (with --operator): address of /readyz and /metrics.
    #[arg(long, hide = true)]
    http_addr: Option<SocketAddr>,
    /// Internal (with --operator): elect a leader under this identity.
    #[arg(long, hide = true)]
    identity: Option<String>,
    /// Internal (with --operator): serve the T-gent webhook on this port of 127.0.0.1.
    #[arg(long, hide = true)]
    webhook_port: Option<u16>,
    /// Internal (with --operator): run the cognitive probes.
    #[arg(long, hide = true)]
    probes: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.operator {
        return operator_process(args).await;
    }
    let scenarios: Vec<&str> = if args.scenario == "all" {
        SCENARIOS.to_vec()
    } else if let Some(known) = SCENARIOS.iter().find(|s| **s == args.scenario) {
        vec![*known]
    } else {
        bail!(
            "unknown scenario {:?}; use one of {} or all",
            args.scenario,
            SCENARIOS.join(", ")
        );
    };
    if args.agents == 0 || args.runs == 0 || args.fault_runs == 0 || args.workflow_runs == 0 {
        bail!("--agents, --runs, --fault-runs and --workflow-runs must be at least 1");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("seed {seed} (repeat with --seed {seed})");
    eprintln!(
        "starting the full testbed with {} kwok node(s) ...",
        args.nodes
    );
    let testbed = Testbed::builder()
        .with_nodes(args.nodes)
        .start()
        .await
        .context("starting the testbed (build it once with scripts/testbed-build)")?;
    testbed.install_crds(&kgents::kgents_crds::crds()).await?;
    let bed = Bed {
        client: testbed.client().await?,
        testbed,
        exe: std::env::current_exe().context("finding this program to re-execute")?,
        log_dir: tempfile::Builder::new()
            .prefix("kgents-chaos-")
            .tempdir()?
            .keep(),
        args: args.clone(),
        spawned: AtomicUsize::new(0),
    };
    eprintln!("operator logs in {}", bed.log_dir.display());
    let waited = garbage_collector_watches_agents(&bed).await?;
    eprintln!(
        "the garbage collector collects Agents' dependents (after {:.1} s)",
        waited.as_secs_f64()
    );
    let mut random = Random::new(seed);
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        eprintln!("== {scenario}");
        let began = Instant::now();
        let outcome = match scenario {
            "operator-kill" => churn_scenario(&bed, Fault::Kill, args.runs, &mut random).await,
            "apiserver-restart" => {
                churn_scenario(&bed, Fault::ApiserverRestart, args.fault_runs, &mut random).await
            }
            "etcd-pause" => {
                churn_scenario(&bed, Fault::EtcdPause, args.fault_runs, &mut random).await
            }
            "webhook-down" => webhook_down(&bed).await,
            "leader-change" => leader_change(&bed, args.fault_runs, &mut random).await,
            "workflow-kill" => workflow_kill(&bed, args.workflow_runs, &mut random).await,
            _ => model_blackhole(&bed).await,
        }
        .with_context(|| format!("scenario {scenario}"))?;
        eprintln!(
            "== {scenario}: {} in {:.0} s",
            outcome.result(),
            began.elapsed().as_secs_f64()
        );
        outcomes.push(outcome);
    }
    let table = chaos::table(&outcomes);
    println!("{table}");
    if let Some(path) = &args.markdown {
        let document =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let note = format!(
            "Last written by `cargo run --example chaos -- --scenario {} --agents {} --runs {} \
             --fault-runs {} --workflow-runs {} --nodes {} --seed {seed}` (testbed {}); a run \
             rewrites the rows of the scenarios it ran. Times are from the end of the fault to \
             the namespace checked converged (it is read every 0.5 s plus the time a read takes).",
            args.scenario,
            args.agents,
            args.runs,
            args.fault_runs,
            args.workflow_runs,
            args.nodes,
            bed.testbed.kubernetes_version()
        );
        let updated = chaos::merge_rows(&document, &note, &table).map_err(anyhow::Error::msg)?;
        std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("rewrote the chaos table in {}", path.display());
    }
    if outcomes.iter().any(|o| !o.held()) {
        std::process::exit(1);
    }
    Ok(())
}

/// The operator child process: every controller for one namespace, probes off, optionally
/// with leader election and the webhook.
async fn operator_process(args: Args) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let kubeconfig = args.kubeconfig.context("--operator needs --kubeconfig")?;
    let namespace = args.namespace.context("--operator needs --namespace")?;
    let client = measure::client_from(&kubeconfig).await?;
    let mut config = OperatorConfig {
        namespace: Some(namespace.clone()),
        ..OperatorConfig::default()
    };
    config.probes.enabled = args.probes;
    let options = RunOptions {
        config,
        http_addr: args.http_addr,
        leader_election: args.identity.map(|identity| LeaderElectionConfig {
            lease_name: LEASE.to_owned(),
            namespace: namespace.clone(),
            identity,
            lease_duration_secs: 15,
            grace_secs: 5,
        }),
        metrics: Arc::new(Metrics::new()),
        controllers: run::controllers(),
        webhook_runtime: None,
    };
    match args.webhook_port {
        Some(port) => {
            run::run_with_webhook(
                client,
                options,
                webhook_config(&namespace, port),
                run::shutdown_signal(),
            )
            .await?
        }
        None => run::run(client, options, run::shutdown_signal()).await?,
    }
    Ok(())
}

/// The Lease the operators of `leader-change` compete for.
const LEASE: &str = "kgents-chaos";

/// The webhook for `namespace` alone, reached by the API server at 127.0.0.1:`port`.
fn webhook_config(namespace: &str, port: u16) -> WebhookConfig {
    WebhookConfig {
        configuration_name: webhook_configuration_name(namespace),
        namespace: namespace.to_owned(),
        secret_name: "kgents-webhook-tls".to_owned(),
        policy_config_map: None,
        bind: SocketAddr::from(([127, 0, 0, 1], port)),
        endpoint: Endpoint::Url {
            host: "127.0.0.1".into(),
        },
        namespace_selector: Some(LabelSelector {
            match_labels: Some(
                [(
                    "kubernetes.io/metadata.name".to_owned(),
                    namespace.to_owned(),
                )]
                .into(),
            ),
            ..LabelSelector::default()
        }),
        watch_namespace: Some(namespace.to_owned()),
        certificates: CertificateSource::Generated {
            validity: Duration::from_secs(30 * 86_400),
            renew_before: Duration::from_secs(7 * 86_400),
        },
        timeout_seconds: 3,
        remove_on_shutdown: true,
    }
}

fn webhook_configuration_name(namespace: &str) -> String {
    format!("kgents-chaos-{namespace}")
}

/// The testbed and what every scenario needs of the run.
struct Bed {
    testbed: Testbed,
    client: Client,
    exe: PathBuf,
    log_dir: PathBuf,
    args: Args,
    spawned: AtomicUsize,
}

/// A free port on 127.0.0.1 (bound, then released for the child to bind).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// An operator process started by this program.
struct OperatorProcess {
    child: Child,
    http: SocketAddr,
}

impl OperatorProcess {
    /// Starts the operator for `namespace` and waits until it is ready (a standby of leader
    /// election only serves /healthz: then only until it answers that).
    async fn start(
        bed: &Bed,
        namespace: &str,
        identity: Option<&str>,
        webhook_port: Option<u16>,
    ) -> Result<Self> {
        Self::start_with(bed, namespace, identity, webhook_port, false).await
    }

    /// [`OperatorProcess::start`], with the cognitive probes on when `probes`.
    async fn start_with(
        bed: &Bed,
        namespace: &str,
        identity: Option<&str>,
        webhook_port: Option<u16>,
        probes: bool,
    ) -> Result<Self> {
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let n = bed.spawned.fetch_add(1, Ordering::SeqCst);
        let log = bed.log_dir.join(format!("operator-{n}-{namespace}.log"));
        let mut command = Command::new(&bed.exe);
        command
            .arg("--operator")
            .arg("--kubeconfig")
            .arg(bed.testbed.kubeconfig_path())
            .arg("--namespace")
            .arg(namespace)
            .arg("--http-addr")
            .arg(http.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        if let Some(identity) = identity {
            command.arg("--identity").arg(identity);
        }
        if let Some(port) = webhook_port {
            command.arg("--webhook-port").arg(port.to_string());
        }
        if probes {
            command.arg("--probes");
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bed.exe.display()))?;
        let mut process = Self { child, http };
        let path = if identity.is_some() {
            "/healthz"
        } else {
            "/readyz"
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while measure::http_get(http, path).await.is_none() {
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "the operator process exited ({status}); see {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                process.kill();
                bail!(
                    "the operator process did not answer {path} within 60 s; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(process)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process runs.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (e.g. `STOP`) to process `pid` with kill(1).
fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed ({status})");
    }
    Ok(())
}

/// The ServiceAccount agents file proposals as.
const PROPOSER_SA: &str = "b-gent";

/// A namespace with a ServiceAccount that may file proposals, and the APIs the churn uses.
struct Scene {
    namespace: String,
    agents: Api<Agent>,
    proposals: Api<Proposal>,
    as_agent: Api<Proposal>,
    proposer: String,
    /// The person who approves what the risk model sends to review.
    approver: Client,
}

/// The person approving proposals sent to review (velocity makes churned scales MEDIUM).
const APPROVER: &str = "bob";

/// Approves, as [`APPROVER`], every proposal of `snapshot` that waits in review for a human.
async fn approve_reviewing(scene: &Scene, snapshot: &Snapshot) {
    let reviewing = snapshot
        .proposals
        .iter()
        .filter(|p| p.phase.as_deref() == Some("Reviewing"))
        .map(|p| p.name.as_str());
    approve(scene, reviewing).await;
}

/// Approves, as [`APPROVER`], the proposals of `proposals` that wait in review for a human.
async fn approve_listed(scene: &Scene, proposals: &[Proposal]) {
    let reviewing = proposals
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase) == Some(ProposalPhase::Reviewing))
        .filter_map(|p| p.metadata.name.as_deref());
    approve(scene, reviewing).await;
}

/// Approves, as [`APPROVER`], the proposals named.
async fn approve<'a>(scene: &Scene, names: impl Iterator<Item = &'a str>) {
    for name in names {
        // A conflict or a fault: asked again at the next look.
        let _ = kgents::kgents_operator::proposal::approve(
            &scene.approver,
            &scene.namespace,
            name,
            Some("churn"),
        )
        .await;
    }
}

async fn scene(bed: &Bed, prefix: &str) -> Result<Scene> {
    let namespace = bed.testbed.create_namespace(prefix).await?;
    let client = &bed.client;
    let mut account = ServiceAccount::default();
    account.metadata.name = Some(PROPOSER_SA.to_owned());
    Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &account)
        .await?;
    let role = Role {
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
    };
    Api::<Role>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &role)
        .await?;
    let binding = RoleBinding {
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
            Subject {
                kind: "ServiceAccount".into(),
                name: PROPOSER_SA.into(),
                namespace: Some(namespace.clone()),
                ..Subject::default()
            },
            Subject {
                kind: "User".into(),
                name: APPROVER.into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                ..Subject::default()
            },
        ]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &binding)
        .await?;
    let agent_client = bed
        .testbed
        .service_account_client(&namespace, PROPOSER_SA)
        .await?;
    let approver = bed
        .testbed
        .impersonating_client(APPROVER, &["system:authenticated"])
        .await?;
    Ok(Scene {
        approver,
        agents: Api::namespaced(client.clone(), &namespace),
        proposals: Api::namespaced(client.clone(), &namespace),
        as_agent: Api::namespaced(agent_client, &namespace),
        proposer: format!("system:serviceaccount:{namespace}:{PROPOSER_SA}"),
        namespace,
    })
}

fn new_agent(name: &str) -> Result<Agent> {
    Ok(Agent::new(
        name,
        serde_json::from_value(json!({"genus": "B", "replicas": 1}))?,
    ))
}

/// An AGENT_SCALE proposal setting `agent`'s replicas (LOW risk from an agent: auto-approved).
fn scale_proposal(name: &str, proposer: &str, agent: &str, replicas: i32) -> Result<Proposal> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": name},
        "spec": {
            "proposer": proposer, "changeType": "AGENT_SCALE",
            "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": agent},
            "patch": {"type": "merge", "content": format!("{{\"spec\":{{\"replicas\":{replicas}}}}}")},
        },
    }))?)
}

/// One write of the churn.
#[derive(Debug, Clone)]
enum Op {
    Create(String),
    Delete(String),
    Propose {
        name: String,
        agent: String,
        replicas: i32,
    },
}

/// True for errors that say the write already happened (a retry after a lost answer).
fn already_done(op: &Op, error: &kube::Error) -> bool {
    match (op, error) {
        (Op::Delete(_), kube::Error::Api(s)) => s.code == 404,
        (_, kube::Error::Api(s)) => s.code == 409 && s.reason == "AlreadyExists",
        _ => false,
    }
}

/// Performs `op`, retrying through faults for up to two minutes.
async fn perform(scene: &Scene, op: &Op) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let result = match op {
            Op::Create(name) => scene
                .agents
                .create(&PostParams::default(), &new_agent(name)?)
                .await
                .map(|_| ()),
            Op::Delete(name) => scene
                .agents
                .delete(name, &DeleteParams::background())
                .await
                .map(|_| ()),
            Op::Propose {
                name,
                agent,
                replicas,
            } => scene
                .as_agent
                .create(
                    &PostParams::default(),
                    &scale_proposal(name, &scene.proposer, agent, *replicas)?,
                )
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if already_done(op, &e) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("{op:?} kept failing for 120 s"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The churn's state: which Agents live, and the next index for a new one.
struct Churn {
    live: Vec<String>,
    next: usize,
}

impl Churn {
    /// Wave 0 creates `agents` Agents and scales every fourth; later waves create and delete a
    /// twentieth each and scale a tenth of the live Agents to `2 + wave`.
    fn wave(&mut self, wave: usize, agents: usize, random: &mut Random) -> Vec<Op> {
        let mut ops = Vec::new();
        let name = |i: usize| format!("agent-{i:05}");
        if wave == 0 {
            for i in 0..agents {
                ops.push(Op::Create(name(i)));
                self.live.push(name(i));
            }
            self.next = agents;
            for agent in self.live.iter().step_by(4) {
                ops.push(Op::Propose {
                    name: format!("scale-{agent}-0"),
                    agent: agent.clone(),
                    replicas: 2,
                });
            }
            return ops;
        }
        let step = (agents / 20).max(1);
        for _ in 0..step.min(self.live.len().saturating_sub(1)) {
            let gone = self.live.swap_remove(random.below(self.live.len()));
            ops.push(Op::Delete(gone));
        }
        for _ in 0..step {
            ops.push(Op::Create(name(self.next)));
            self.live.push(name(self.next));
            self.next += 1;
        }
        let mut chosen: Vec<String> = Vec::new();
        for _ in 0..(agents / 10).max(1) {
            let agent = &self.live[random.below(self.live.len())];
            if !chosen.contains(agent) {
                chosen.push(agent.clone());
            }
        }
        for agent in chosen {
            ops.push(Op::Propose {
                name: format!("scale-{agent}-{wave}"),
                agent,
                replicas: 2 + wave as i32 % 3,
            });
        }
        // Interleave the kinds of writes, as independent clients would.
        let len = ops.len();
        for i in (1..len).rev() {
            ops.swap(i, random.below(i + 1));
        }
        ops
    }
}

/// Runs `ops` 16 at a time; `done` counts the finished ones.
async fn run_ops(scene: &Scene, ops: Vec<Op>, done: &AtomicUsize) -> Result<()> {
    let results: Vec<Result<()>> = futures::stream::iter(ops)
        .map(|op| async move {
            let result = perform(scene, &op).await;
            done.fetch_add(1, Ordering::SeqCst);
            result
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// What breaks during a churn wave.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Kill,
    ApiserverRestart,
    EtcdPause,
}

/// Reads the namespace as the checks see it.
async fn snapshot(client: &Client, namespace: &str) -> Result<Snapshot> {
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=kgents-operator");
    let agents: Api<Agent> = Api::namespaced(client.clone(), namespace);
    let agents = agents.list(&ListParams::default()).await?.items;
    let mut children = Vec::new();
    fn views<K>(kind: &str, items: Vec<K>) -> Vec<ChildView>
    where
        K: Resource,
    {
        items
            .into_iter()
            .map(|item| ChildView {
                kind: kind.to_owned(),
                name: item.meta().name.clone().unwrap_or_default(),
                owners: item
                    .meta()
                    .owner_references
                    .iter()
                    .flatten()
                    .filter(|o: &&OwnerReference| o.api_version.starts_with("kgents.io/"))
                    .map(|o| o.uid.clone())
                    .collect(),
                retained_memory: item
                    .meta()
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
                    .then(|| {
                        item.meta()
                            .labels
                            .as_ref()?
                            .get("kgents.io/memory")
                            .cloned()
                    })
                    .flatten(),
            })
            .collect()
    }
    /// The managed objects of one kind in the namespace, as the checks see them.
    async fn managed_views<K>(
        client: &Client,
        namespace: &str,
        managed: &ListParams,
    ) -> Result<Vec<ChildView>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let items = Api::<K>::namespaced(client.clone(), namespace)
            .list(managed)
            .await?
            .items;
        Ok(views(&K::kind(&()), items))
    }
    children.extend(managed_views::<Deployment>(client, namespace, &managed).await?);
    children.extend(managed_views::<Service>(client, namespace, &managed).await?);
    children.extend(managed_views::<ServiceAccount>(client, namespace, &managed).await?);
    children.extend(managed_views::<Role>(client, namespace, &managed).await?);
    children.extend(managed_views::<RoleBinding>(client, namespace, &managed).await?);
    children.extend(managed_views::<PersistentVolumeClaim>(client, namespace, &managed).await?);
    let applied = applied_events(client, namespace).await?;
    let proposals = Api::<Proposal>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let mut other_owners: Vec<String> = Api::<Memory>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter_map(|m| m.uid())
        .collect();
    other_owners.extend(
        Api::<Umwelt>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter_map(|u| u.uid()),
    );
    Ok(Snapshot {
        other_owners,
        agents: agents
            .into_iter()
            .map(|a| {
                let status = a.status.clone().unwrap_or_default();
                AgentView {
                    uid: a.uid().unwrap_or_default(),
                    generation: a.metadata.generation,
                    observed_generation: status.observed_generation,
                    phase: status.phase.map(|p| p.as_str().to_owned()),
                    replicas: a.spec.replicas,
                    status_replicas: status.replicas,
                    deleting: a.metadata.deletion_timestamp.is_some(),
                    applied_proposal: a.annotations().get("kgents.io/applied-proposal").cloned(),
                    name: a.name_any(),
                }
            })
            .collect(),
        children,
        proposals: proposals
            .into_iter()
            .map(|p| proposal_view(&p, &applied))
            .collect(),
    })
}

fn proposal_view(p: &Proposal, applied: &BTreeMap<String, u32>) -> ProposalView {
    let status = p.status.clone().unwrap_or_default();
    let replicas = p
        .spec
        .patch
        .as_ref()
        .and_then(|patch| serde_json::from_str::<serde_json::Value>(&patch.content).ok())
        .and_then(|v| v["spec"]["replicas"].as_i64())
        .unwrap_or(-1) as i32;
    let executed_at = status
        .execution
        .as_ref()
        .filter(|e| e.success && !e.dry_run)
        .and_then(|e| serde_json::to_value(&e.executed_at).ok())
        .and_then(|v| v.as_str().map(str::to_owned));
    ProposalView {
        name: p.name_any(),
        uid: p.uid().unwrap_or_default(),
        target: p.spec.target.name.clone(),
        phase: status.phase.map(|p: ProposalPhase| p.as_str().to_owned()),
        replicas,
        executed_at,
        applied_events: applied.get(&p.name_any()).copied().unwrap_or(0),
    }
}

/// Per proposal, how many times an Event said its patch was applied (a repeated Event counts
/// its series); "already applied" notes (a retry that found the stamp) do not count.
async fn applied_events(client: &Client, namespace: &str) -> Result<BTreeMap<String, u32>> {
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let mut counts = BTreeMap::new();
    for event in events {
        let about = event.regarding.as_ref();
        let is_proposal = about.is_some_and(|r| r.kind.as_deref() == Some("Proposal"));
        let note = event.note.as_deref().unwrap_or_default();
        if is_proposal
            && event.reason.as_deref() == Some("Applied")
            && !note.contains("already applied")
        {
            let name = about.and_then(|r| r.name.clone()).unwrap_or_default();
            let times = event
                .series
                .as_ref()
                .map_or(1, |s| u32::try_from(s.count).unwrap_or(1));
            *counts.entry(name).or_insert(0) += times;
        }
    }
    Ok(counts)
}

/// Polls the namespace until it converged or `deadline` passed; the time it took and the last
/// findings, without the repeated `Applied` Events of `known_repeats` (counted by an earlier
/// run: they never heal).
async fn converge(
    scene: &Scene,
    client: &Client,
    deadline: Duration,
    known_repeats: &BTreeSet<String>,
) -> Result<(Duration, Findings)> {
    let began = Instant::now();
    let mut next_report = Duration::from_secs(10);
    let mut shown = false;
    loop {
        let findings = match snapshot(client, &scene.namespace).await {
            Ok(snapshot) => {
                approve_reviewing(scene, &snapshot).await;
                chaos::check(&snapshot)
            }
            Err(e) if began.elapsed() < deadline => {
                eprintln!("   (reading the namespace failed: {e}; again)");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if began.elapsed() > next_report {
            eprintln!(
                "   ... {:.0} s, waiting for: {}",
                began.elapsed().as_secs_f64(),
                findings.examples()
            );
            next_report += Duration::from_secs(10);
            // Past the 30 s target: what the laggards look like, once.
            if began.elapsed() > Duration::from_secs(30) && !shown {
                show_unfinished(scene, &findings).await;
                shown = true;
            }
        }
        let findings = findings.without_known_repeats(known_repeats);
        if findings.converged() || began.elapsed() > deadline {
            return Ok((began.elapsed(), findings));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Churn waves with `fault` at a random point of each; see the module documentation.
async fn churn_scenario(
    bed: &Bed,
    fault: Fault,
    runs: usize,
    random: &mut Random,
) -> Result<Outcome> {
    let (prefix, checked) = match fault {
        Fault::Kill => (
            "chaos-kill",
            "orphans, status current, proposals finished, none announced applied twice or reverted",
        ),
        Fault::ApiserverRestart => (
            "chaos-apiserver",
            "same operator pid; status current, no orphans, proposals once",
        ),
        Fault::EtcdPause => (
            "chaos-etcd",
            "same operator pid; status current, no orphans, proposals once",
        ),
    };
    let scene = scene(bed, prefix).await?;
    let mut operator = OperatorProcess::start(bed, &scene.namespace, None, None).await?;
    let mut churn = Churn {
        live: Vec::new(),
        next: 0,
    };
    let deadline = Duration::from_secs(bed.args.deadline);
    let mut broken = Vec::new();
    let mut times = Vec::new();
    let mut repeats = BTreeSet::new();
    // The population first, without a fault: a fault in the middle of creating every Agent
    // would time the rest of that backlog, not the recovery. Its own time is the baseline.
    let populating = Instant::now();
    run_ops(
        &scene,
        churn.wave(0, bed.args.agents, random),
        &AtomicUsize::new(0),
    )
    .await?;
    let (_, findings) = converge(&scene, &bed.client, deadline, &repeats).await?;
    let populated = populating.elapsed();
    eprintln!(
        "   {} Agents created and converged without a fault in {:.1} s",
        bed.args.agents,
        populated.as_secs_f64()
    );
    if !findings.converged() {
        show_unfinished(&scene, &findings).await;
        broken.push(format!("the population: {}", findings.summary()));
    }
    repeats.extend(findings.repeated_names());
    for run in 0..runs {
        let ops = churn.wave(run + 1, bed.args.agents, random);
        let fault_at = random.below(ops.len());
        let total = ops.len();
        let done = AtomicUsize::new(0);
        let pid = operator.pid();
        let writes = run_ops(&scene, ops, &done);
        let faulting = async {
            while done.load(Ordering::SeqCst) < fault_at {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let result: Result<Instant> = async {
                match fault {
                    Fault::Kill => {
                        operator.kill();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        operator =
                            OperatorProcess::start(bed, &scene.namespace, None, None).await?;
                        Ok(Instant::now())
                    }
                    Fault::ApiserverRestart => {
                        bed.testbed.restart_apiserver().await?;
                        Ok(Instant::now())
                    }
                    Fault::EtcdPause => {
                        let etcd = bed
                            .testbed
                            .component_pids()
                            .into_iter()
                            .find(|(name, _)| *name == "etcd")
                            .map(|(_, pid)| pid)
                            .context("the testbed has no etcd process")?;
                        signal(etcd, "STOP")?;
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        signal(etcd, "CONT")?;
                        Ok(Instant::now())
                    }
                }
            }
            .await;
            result
        };
        let (written, fault_ended) = tokio::join!(writes, faulting);
        written?;
        let fault_ended = fault_ended?;
        let writes_done = Instant::now();
        let (_, findings) = converge(&scene, &bed.client, deadline, &repeats).await?;
        repeats.extend(findings.repeated_names());
        let since_fault = fault_ended.elapsed();
        let same_process = fault == Fault::Kill || (operator.pid() == pid && operator.alive());
        eprintln!(
            "   run {run}: {total} writes, fault after {fault_at}; converged {:.1} s after the fault \
             ({:.1} s after the last write){}{}",
            since_fault.as_secs_f64(),
            writes_done.elapsed().as_secs_f64(),
            if findings.converged() {
                String::new()
            } else {
                format!("; NOT: {}", findings.examples())
            },
            if same_process {
                ""
            } else {
                "; the operator process did not survive"
            },
        );
        if !findings.converged() {
            show_unfinished(&scene, &findings).await;
            broken.push(format!("run {run}: {}", findings.summary()));
        } else {
            times.push(since_fault);
        }
        if !same_process {
            broken.push(format!("run {run}: the operator process restarted or died"));
            if !operator.alive() {
                operator = OperatorProcess::start(bed, &scene.namespace, None, None).await?;
            }
        }
    }
    drop(operator);
    delete_namespace(bed, &scene.namespace).await;
    let fault_text = match fault {
        Fault::Kill => "SIGKILL of the operator, restart",
        Fault::ApiserverRestart => "kube-apiserver stopped and started",
        Fault::EtcdPause => "etcd SIGSTOP 10 s",
    };
    Ok(Outcome {
        scenario: match fault {
            Fault::Kill => "operator-kill",
            Fault::ApiserverRestart => "apiserver-restart",
            Fault::EtcdPause => "etcd-pause",
        }
        .to_owned(),
        runs,
        conditions: format!(
            "{} Agents (created and converged without a fault in {:.0} s), then per run ±{} and \
             {} scaled by proposal; {fault_text} at a random write",
            bed.args.agents,
            populated.as_secs_f64(),
            (bed.args.agents / 20).max(1),
            (bed.args.agents / 10).max(1),
        ),
        checked: checked.to_owned(),
        broken,
        converge: times,
    })
}

/// Waits until kube-controller-manager's garbage collector collects the dependent of a deleted
/// Agent. It notices a new custom resource kind only at its next discovery (up to 30 s after the
/// CRDs are installed); until then an Agent's children outlive it, which would be charged to
/// the first run's convergence.
async fn garbage_collector_watches_agents(bed: &Bed) -> Result<Duration> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let began = Instant::now();
    let namespace = bed.testbed.create_namespace("chaos-gc").await?;
    let agents: Api<Agent> = Api::namespaced(bed.client.clone(), &namespace);
    let maps: Api<ConfigMap> = Api::namespaced(bed.client.clone(), &namespace);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut round = 0;
    loop {
        round += 1;
        let name = format!("gc-{round}");
        let agent = agents
            .create(&PostParams::default(), &new_agent(&name)?)
            .await?;
        let mut map = ConfigMap::default();
        map.metadata.name = Some(name.clone());
        map.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "kgents.io/v1".into(),
            kind: "Agent".into(),
            name: name.clone(),
            uid: agent.uid().unwrap_or_default(),
            ..OwnerReference::default()
        }]);
        maps.create(&PostParams::default(), &map).await?;
        agents.delete(&name, &DeleteParams::background()).await?;
        let round_end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < round_end {
            if maps.get_opt(&name).await?.is_none() {
                delete_namespace(bed, &namespace).await;
                return Ok(began.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if Instant::now() > deadline {
            bail!("the garbage collector did not collect an Agent's dependent within 120 s");
        }
    }
}

/// Prints the status of the first unfinished proposals and stale Agents, for the cause.
async fn show_unfinished(scene: &Scene, findings: &Findings) {
    for name in findings.unfinished_proposals.iter().take(3) {
        if let Ok(p) = scene.proposals.get(name).await {
            eprintln!(
                "   unfinished {name}: {}",
                serde_json::to_string(&p.status).unwrap_or_default()
            );
        }
    }
    let deployments: Api<Deployment> =
        Api::namespaced(scene.agents.clone().into_client(), &scene.namespace);
    for name in findings.stale_status.iter().take(3) {
        if let Ok(a) = scene.agents.get(name).await {
            eprintln!(
                "   stale {name}: generation {:?}, status {}",
                a.metadata.generation,
                serde_json::to_string(&a.status).unwrap_or_default()
            );
        }
        // Whether the operator or the Deployment's own controllers lag behind.
        if let Ok(d) = deployments.get(name).await {
            eprintln!(
                "   its Deployment: generation {:?}, spec replicas {:?}, status {}",
                d.metadata.generation,
                d.spec.replicas,
                serde_json::to_string(&d.status).unwrap_or_default()
            );
        }
    }
}

async fn delete_namespace(bed: &Bed, namespace: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(bed.client.clone());
    let _ = api.delete(namespace, &DeleteParams::background()).await;
}

/// Waits until the webhook of `scene` denies a dry-run CRITICAL proposal.
async fn webhook_effective(scene: &Scene) -> Result<()> {
    let probe: Proposal = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": "probe"},
        "spec": {"proposer": scene.proposer, "changeType": "RISK_OVERRIDE",
                 "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "x"}},
    }))?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match scene.as_agent.create(&dry_run, &probe).await {
            Err(kube::Error::Api(s)) if s.message.contains("T-gent") => return Ok(()),
            _ if Instant::now() > deadline => bail!("the webhook did not take effect within 30 s"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Creates every kind the deploy/examples samples hold except Proposals and Workflows (which
/// the webhook gates); the kinds that failed, with why.
async fn create_ungated_kinds(client: &Client, namespace: &str) -> Result<Vec<String>> {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let read = |file: &str| -> Result<String> {
        std::fs::read_to_string(samples.join(file)).with_context(|| format!("reading {file}"))
    };
    let mut failed = Vec::new();
    let mut note = |kind: &str, result: std::result::Result<(), kube::Error>| {
        if let Err(e) = result {
            failed.push(format!("{kind}: {e}"));
        }
    };
    let pp = PostParams::default();
    let agent: Agent = serde_saphyr::from_str(&read("agent-b-gent.yaml")?)?;
    note(
        "Agent",
        Api::<Agent>::namespaced(client.clone(), namespace)
            .create(&pp, &agent)
            .await
            .map(|_| ()),
    );
    let pheromone: Pheromone = serde_saphyr::from_str(&read("pheromone-warning.yaml")?)?;
    note(
        "Pheromone",
        Api::<Pheromone>::namespaced(client.clone(), namespace)
            .create(&pp, &pheromone)
            .await
            .map(|_| ()),
    );
    let memory: Memory = serde_saphyr::from_str(&read("memory-scratch.yaml")?)?;
    note(
        "Memory",
        Api::<Memory>::namespaced(client.clone(), namespace)
            .create(&pp, &memory)
            .await
            .map(|_| ()),
    );
    let umwelt: Umwelt = serde_saphyr::from_str(&read("umwelt-l-gent.yaml")?)?;
    note(
        "Umwelt",
        Api::<Umwelt>::namespaced(client.clone(), namespace)
            .create(&pp, &umwelt)
            .await
            .map(|_| ()),
    );
    Ok(failed)
}

/// The webhook killed, then its configuration removed: see the module documentation.
async fn webhook_down(bed: &Bed) -> Result<Outcome> {
    let scene = scene(bed, "chaos-webhook").await?;
    let port = free_port()?;
    let mut operator = OperatorProcess::start(bed, &scene.namespace, None, Some(port)).await?;
    webhook_effective(&scene).await?;
    let mut churn = Churn {
        live: Vec::new(),
        next: 0,
    };
    let agents = bed.args.agents.min(100);
    run_ops(
        &scene,
        churn.wave(0, agents, &mut Random::new(7)),
        &AtomicUsize::new(0),
    )
    .await?;
    let mut broken = Vec::new();
    // 1. The webhook's server dies; its configuration stays (failurePolicy: Fail).
    operator.kill();
    let failed = create_ungated_kinds(&bed.client, &scene.namespace).await?;
    if !failed.is_empty() {
        broken.push(format!(
            "not created while the webhook was down: {}",
            failed.join("; ")
        ));
    }
    let refused = scene
        .as_agent
        .create(
            &PostParams::default(),
            &scale_proposal("while-down", &scene.proposer, "agent-00001", 4)?,
        )
        .await;
    if refused.is_ok() {
        broken.push(
            "a Proposal was admitted unchecked while the failing webhook was registered".into(),
        );
    }
    // 2. The configuration goes too (as an uninstall or a graceful shutdown removes it):
    // proposals are stored unchecked, one the webhook would deny among them.
    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = Api::all(bed.client.clone());
    configurations
        .delete(
            &webhook_configuration_name(&scene.namespace),
            &DeleteParams::default(),
        )
        .await?;
    let denied_name = "delete-agent-00002";
    let delete: Proposal = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": denied_name},
        "spec": {"proposer": scene.proposer, "changeType": "AGENT_DELETE",
                 "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "agent-00002"},
                 "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":0}}"}},
    }))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match scene.as_agent.create(&PostParams::default(), &delete).await {
            Ok(_) => break,
            // The API server drops the configuration from its informer shortly.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e).context("storing a proposal with the webhook removed"),
        }
    }
    perform(
        &scene,
        &Op::Propose {
            name: "scale-agent-00003-late".into(),
            agent: "agent-00003".into(),
            replicas: 3,
        },
    )
    .await?;
    // 3. The operator comes back (and registers its webhook again).
    operator = OperatorProcess::start(bed, &scene.namespace, None, Some(port)).await?;
    let restarted = Instant::now();
    let (_, findings) = converge(
        &scene,
        &bed.client,
        Duration::from_secs(bed.args.deadline),
        &BTreeSet::new(),
    )
    .await?;
    let elapsed = restarted.elapsed();
    let denied = scene.proposals.get(denied_name).await?;
    let denied_phase = denied.status.as_ref().and_then(|s| s.phase);
    let executed = denied
        .status
        .as_ref()
        .and_then(|s| s.execution.as_ref())
        .is_some();
    let target_alive = scene
        .agents
        .get_opt("agent-00002")
        .await?
        .is_some_and(|a| a.metadata.deletion_timestamp.is_none() && a.spec.replicas == 1);
    if denied_phase != Some(ProposalPhase::Rejected) || executed || !target_alive {
        broken.push(format!(
            "the proposal the webhook would deny ended {denied_phase:?}, executed: {executed}, \
             its target untouched: {target_alive}"
        ));
    }
    let ungated_present = scene.agents.get_opt("b-gent").await?.is_some();
    if !ungated_present {
        broken.push("the Agent created while the webhook was down is gone".into());
    }
    if !findings.converged() {
        eprintln!("   NOT converged: {}", findings.examples());
        show_unfinished(&scene, &findings).await;
        broken.push(findings.summary());
    }
    eprintln!(
        "   {}; re-assessed within {:.1} s of the restart",
        if broken.is_empty() {
            "held".to_owned()
        } else {
            broken.join("; ")
        },
        elapsed.as_secs_f64()
    );
    drop(operator);
    delete_namespace(bed, &scene.namespace).await;
    Ok(Outcome {
        scenario: "webhook-down".into(),
        runs: 1,
        conditions: format!(
            "{agents} Agents; the operator with its webhook killed (failurePolicy Fail), then the \
             configuration removed and 2 proposals stored unchecked"
        ),
        checked: "Agent, Pheromone, Memory, Umwelt created; Proposal refused; the unchecked \
                  AGENT_DELETE rejected on re-assessment and never executed"
            .into(),
        broken,
        converge: vec![elapsed],
    })
}

/// The identity holding the `leader-change` Lease in `namespace`.
async fn lease_holder(client: &Client, namespace: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// Two operators under leader election; the leader killed as a proposal is approved.
async fn leader_change(bed: &Bed, runs: usize, random: &mut Random) -> Result<Outcome> {
    let scene = scene(bed, "chaos-leader").await?;
    let identities = ["chaos-a", "chaos-b"];
    let mut operators = Vec::new();
    for identity in identities {
        operators.push(OperatorProcess::start(bed, &scene.namespace, Some(identity), None).await?);
    }
    let mut churn = Churn {
        live: Vec::new(),
        next: 0,
    };
    let agents = bed.args.agents.min(20);
    let done = AtomicUsize::new(0);
    run_ops(&scene, churn.wave(0, agents, random), &done).await?;
    let mut broken = Vec::new();
    let mut times = Vec::new();
    let mut during_execution = 0;
    for run in 0..runs {
        let (_, findings) = converge(
            &scene,
            &bed.client,
            Duration::from_secs(bed.args.deadline),
            &BTreeSet::new(),
        )
        .await?;
        if !findings.converged() {
            broken.push(format!("before run {run}: {}", findings.summary()));
            break;
        }
        let Some(holder) = lease_holder(&bed.client, &scene.namespace).await else {
            bail!("no operator holds the Lease {LEASE}");
        };
        let leader = identities
            .iter()
            .position(|i| *i == holder)
            .with_context(|| format!("the Lease is held by {holder}, no operator of this run"))?;
        let agent = churn.live[random.below(churn.live.len())].clone();
        let name = format!("leader-{run}-{agent}");
        let replicas = 5 + run as i32 % 3;
        perform(
            &scene,
            &Op::Propose {
                name: name.clone(),
                agent: agent.clone(),
                replicas,
            },
        )
        .await?;
        // Kill the leader the moment the proposal is approved: its next step is the patch.
        let deadline = Instant::now() + Duration::from_secs(60);
        let phase_at_kill = loop {
            let phase = scene
                .proposals
                .get_opt(&name)
                .await?
                .and_then(|p| p.status?.phase);
            if matches!(phase, Some(ProposalPhase::Approved | ProposalPhase::Merged))
                || Instant::now() > deadline
            {
                break phase;
            }
            if phase == Some(ProposalPhase::Reviewing) {
                let _ = kgents::kgents_operator::proposal::approve(
                    &scene.approver,
                    &scene.namespace,
                    &name,
                    Some("leader change"),
                )
                .await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        operators[leader].kill();
        let killed = Instant::now();
        if phase_at_kill == Some(ProposalPhase::Approved) {
            during_execution += 1;
        }
        operators[leader] =
            OperatorProcess::start(bed, &scene.namespace, Some(identities[leader]), None).await?;
        let (_, findings) = converge(
            &scene,
            &bed.client,
            Duration::from_secs(bed.args.deadline),
            &BTreeSet::new(),
        )
        .await?;
        let merged = scene.proposals.get(&name).await?;
        let merged_phase = merged.status.as_ref().and_then(|s| s.phase);
        let snapshot = snapshot(&bed.client, &scene.namespace).await?;
        let applied = snapshot
            .proposals
            .iter()
            .find(|p| p.name == name)
            .map_or(0, |p| p.applied_events);
        let target = scene.agents.get(&agent).await?;
        eprintln!(
            "   run {run}: leader {holder} killed at {phase_at_kill:?}; {name} {merged_phase:?} \
             {:.1} s later, applied {applied}×, replicas {}",
            killed.elapsed().as_secs_f64(),
            target.spec.replicas
        );
        if merged_phase != Some(ProposalPhase::Merged)
            || applied != 1
            || target.spec.replicas != replicas
        {
            broken.push(format!(
                "run {run}: {name} ended {merged_phase:?}, applied {applied}×, replicas {} (want {replicas})",
                target.spec.replicas
            ));
        } else if !findings.converged() {
            broken.push(format!("run {run}: {}", findings.summary()));
        } else {
            times.push(killed.elapsed());
        }
    }
    drop(operators);
    delete_namespace(bed, &scene.namespace).await;
    Ok(Outcome {
        scenario: "leader-change".into(),
        runs,
        conditions: format!(
            "2 operator processes, {agents} Agents; the leader SIGKILLed when a proposal turned \
             Approved ({during_execution} of {runs} before it was Merged)"
        ),
        checked: "the patch applied exactly once (Applied Events, the target's replicas)".into(),
        broken,
        converge: times,
    })
}

/// The API key the model fakes accept and the probed agents' Secret holds.
const MODEL_KEY: &str = "sk-chaos-fake-0123456789";

/// A TCP listener on 127.0.0.1 that accepts every connection, reads it and never answers:
/// a model endpoint that black-holes requests.
async fn black_hole() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buffer = [0u8; 4096];
                while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok(addr)
}

/// What one half of `model-blackhole` measured.
struct ModelRun {
    agent: chaos::HistogramDelta,
    pheromone: chaos::HistogramDelta,
    to_status: Vec<Duration>,
    missing: usize,
}

/// 100 probed agents whose model is at `endpoint`, then plain Agents and Pheromones created
/// meanwhile; the Agent and Pheromone controllers' reconcile latency over that work.
async fn model_run(bed: &Bed, endpoint: &str, probed: usize) -> Result<ModelRun> {
    use k8s_openapi::api::core::v1::Secret;
    let scene = scene(bed, "chaos-model").await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "model-key"},
        "stringData": {"apiKey": MODEL_KEY},
    }))?;
    Api::<Secret>::namespaced(bed.client.clone(), &scene.namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    let operator = OperatorProcess::start_with(bed, &scene.namespace, None, None, true).await?;
    let probed_agents = futures::stream::iter(0..probed)
        .map(|i| {
            let agents = scene.agents.clone();
            let endpoint = endpoint.to_owned();
            async move {
                let agent: Agent = serde_json::from_value(json!({
                    "apiVersion": "kgents.io/v1", "kind": "Agent",
                    "metadata": {"name": format!("probed-{i:03}")},
                    "spec": {
                        "genus": "B", "replicas": 1,
                        "model": {"provider": fake_model::Wire::OpenAi.provider(),
                                  "name": format!("probed-{i:03}"), "endpoint": endpoint,
                                  "secretRef": {"name": "model-key", "key": "apiKey"}},
                        "health": {"type": "COGNITIVE_PROBE", "intervalSeconds": 5, "timeoutSeconds": 4},
                    },
                }))?;
                agents.create(&PostParams::default(), &agent).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    probed_agents.into_iter().collect::<Result<Vec<()>>>()?;
    // Let the probes run (their interval is 5 s, their timeout 4 s) before measuring.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let before = measure::http_get(operator.http, "/metrics")
        .await
        .context("scraping the operator's /metrics")?;
    let plain = probed.div_ceil(2).min(50);
    let pheromone_yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/pheromone-warning.yaml"),
    )?;
    let pheromones: Api<Pheromone> = Api::namespaced(bed.client.clone(), &scene.namespace);
    let mut created = BTreeMap::new();
    for i in 0..plain {
        let name = format!("plain-{i:03}");
        scene
            .agents
            .create(&PostParams::default(), &new_agent(&name)?)
            .await?;
        created.insert(name, Instant::now());
        let mut pheromone: Pheromone = serde_saphyr::from_str(&pheromone_yaml)?;
        pheromone.metadata.name = Some(format!("warning-{i:03}"));
        pheromones
            .create(&PostParams::default(), &pheromone)
            .await?;
    }
    let mut to_status = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(bed.args.deadline);
    while to_status.len() < plain && Instant::now() < deadline {
        for agent in scene.agents.list(&ListParams::default()).await?.items {
            let name = agent.name_any();
            let Some(at) = created.get(&name) else {
                continue;
            };
            let current = agent
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .is_some_and(|g| Some(g) == agent.metadata.generation);
            if current
                && agent
                    .status
                    .as_ref()
                    .and_then(|s| s.deployment.as_ref())
                    .is_some()
            {
                to_status.entry(name).or_insert_with(|| at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = measure::http_get(operator.http, "/metrics")
        .await
        .context("scraping the operator's /metrics")?;
    let metric = "kgents_reconcile_duration_seconds";
    drop(operator);
    delete_namespace(bed, &scene.namespace).await;
    Ok(ModelRun {
        agent: chaos::histogram_delta(&before, &after, metric, "agent"),
        pheromone: chaos::histogram_delta(&before, &after, metric, "pheromone"),
        missing: plain - to_status.len(),
        to_status: to_status.into_values().collect(),
    })
}

/// Milliseconds of an optional figure in seconds, for the table.
fn millis(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s.is_finite() => format!("{:.0} ms", s * 1000.0),
        Some(_) => "> 16 s".to_owned(),
        None => "—".to_owned(),
    }
}

/// The other controllers' latency with 100 probed agents on a normal and a black-holed model.
async fn model_blackhole(bed: &Bed) -> Result<Outcome> {
    let probed = bed.args.agents.min(100);
    let fake = fake_model::FakeModel::start(fake_model::Wire::OpenAi, MODEL_KEY).await;
    let hole = black_hole().await?;
    let normal = model_run(bed, &fake.endpoint(), probed).await?;
    let holed = model_run(bed, &format!("http://{hole}/v1"), probed).await?;
    let mut broken = Vec::new();
    let describe = |run: &ModelRun| {
        let (median, worst) = chaos::median_and_worst(&run.to_status).unwrap_or_default();
        format!(
            "agent mean {} p99 ≤ {}, pheromone mean {} p99 ≤ {}, plain Agent status {:.1} s / {:.1} s",
            millis(run.agent.mean()),
            millis(run.agent.quantile_bound(0.99)),
            millis(run.pheromone.mean()),
            millis(run.pheromone.quantile_bound(0.99)),
            median.as_secs_f64(),
            worst.as_secs_f64()
        )
    };
    let (normal_text, holed_text) = (describe(&normal), describe(&holed));
    eprintln!("   normal model:      {normal_text}");
    eprintln!("   black-holed model: {holed_text}");
    for (label, run) in [("normal", &normal), ("black-holed", &holed)] {
        if run.missing > 0 {
            broken.push(format!(
                "{label}: {} plain Agents got no status",
                run.missing
            ));
        }
    }
    // Kept means: the black hole may cost the other controllers at most twice their latency
    // (plus 50 ms for the noise of a shared machine).
    for (controller, n, h) in [
        ("agent", &normal.agent, &holed.agent),
        ("pheromone", &normal.pheromone, &holed.pheromone),
    ] {
        if let (Some(n), Some(h)) = (n.mean(), h.mean())
            && h > 2.0 * n + 0.05
        {
            broken.push(format!(
                "{controller} reconciles took {:.0} ms with the black hole against {:.0} ms",
                h * 1000.0,
                n * 1000.0
            ));
        }
    }
    Ok(Outcome {
        scenario: "model-blackhole".into(),
        runs: 2,
        conditions: format!(
            "{probed} probed Agents (every 5 s, timeout 4 s) on a fake model, then on a listener \
             that never answers; {plain} plain Agents and {plain} Pheromones created meanwhile",
            plain = probed.div_ceil(2).min(50)
        ),
        checked: format!(
            "reconcile latency (the operator's histogram) and time to status; normal: \
             {normal_text}; black-holed: {holed_text}"
        ),
        broken,
        converge: holed.to_status.clone(),
    })
}

/// The Workflow of run `run` of `workflow-kill`: announce, scale Agent `wf-agent-<run>` to 2
/// through a Proposal, report; its steps run as the Umwelt `runner`.
fn kill_workflow(run: usize) -> Result<Workflow> {
    let emit =
        |payload: &str| json!({"pheromone_type": "STATE", "source": "runner", "payload": payload});
    Ok(serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Workflow",
        "metadata": {"name": format!("wf-{run}")},
        "spec": {"umwelt": "runner", "steps": [
            {"name": "announce", "path": "void.pheromone.emit", "args": emit("scaling")},
            {"name": "scale", "dependsOn": ["announce"], "proposal": {
                "proposer": "runner", "changeType": "AGENT_SCALE",
                "target": {"apiVersion": "kgents.io/v1", "kind": "Agent",
                           "name": format!("wf-agent-{run}")},
                "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":2}}"}}},
            {"name": "report", "dependsOn": ["scale"], "path": "void.pheromone.emit",
             "args": emit("scaled")},
        ]},
    }))?)
}

/// What one Workflow of `workflow-kill` left behind: None when everything held, else what broke.
fn workflow_broken(
    workflow: &Workflow,
    proposals: &[Proposal],
    pheromones: &[Pheromone],
    agents: &[Agent],
) -> Option<String> {
    let name = workflow.metadata.name.clone().unwrap_or_default();
    let phase = workflow.status.as_ref().and_then(|s| s.phase);
    if phase != Some(WorkflowPhase::Succeeded) {
        return Some(format!("{name} is {phase:?}"));
    }
    let label = kgents::kgents_operator::workflow::WORKFLOW_LABEL;
    let filed = proposals
        .iter()
        .filter(|p| p.labels().get(label) == Some(&name))
        .count();
    let prefix = format!("{name}-");
    let emitted = pheromones
        .iter()
        .filter(|p| p.name_any().starts_with(&prefix))
        .count();
    let agent = format!("wf-agent-{}", name.trim_start_matches("wf-"));
    let replicas = agents
        .iter()
        .find(|a| a.name_any() == agent)
        .map(|a| a.spec.replicas);
    (filed != 1 || emitted != 2 || replicas != Some(2)).then(|| {
        format!(
            "{name}: {filed} proposal(s), {emitted} pheromone(s), {agent} replicas {replicas:?}"
        )
    })
}

/// `workflow-kill`: see the module documentation.
async fn workflow_kill(bed: &Bed, runs: usize, random: &mut Random) -> Result<Outcome> {
    let scene = scene(bed, "chaos-workflow").await?;
    let client = &bed.client;
    let umwelt: Umwelt = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Umwelt", "metadata": {"name": "runner"},
        "spec": {"agent": "runner", "affordances": ["void.pheromone.*"]},
    }))?;
    Api::<Umwelt>::namespaced(client.clone(), &scene.namespace)
        .create(&PostParams::default(), &umwelt)
        .await?;
    let workflows: Api<Workflow> = Api::namespaced(client.clone(), &scene.namespace);
    let mut operator = OperatorProcess::start(bed, &scene.namespace, None, None).await?;
    let mut mid_run = 0;
    let mut steps_at_kill = [0usize; 4];
    for run in 0..runs {
        // Proposals sent to review are approved as they come, so the steps after them run
        // between the kills too.
        if let Ok(listed) = scene.proposals.list(&ListParams::default()).await {
            approve_listed(&scene, &listed.items).await;
        }
        scene
            .agents
            .create(
                &PostParams::default(),
                &new_agent(&format!("wf-agent-{run}"))?,
            )
            .await?;
        workflows
            .create(&PostParams::default(), &kill_workflow(run)?)
            .await?;
        tokio::time::sleep(Duration::from_millis(random.below(400) as u64)).await;
        let current = workflows.get(&format!("wf-{run}")).await?;
        if !current
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_finished())
        {
            mid_run += 1;
        }
        // How far this run's Workflow got when the kill came (steps succeeded, 0–3).
        let done = current.status.as_ref().map_or(0, |s| {
            s.steps
                .iter()
                .filter(|step| step.phase == StepPhase::Succeeded)
                .count()
        });
        steps_at_kill[done.min(3)] += 1;
        operator.kill();
        tokio::time::sleep(Duration::from_millis(200)).await;
        operator = OperatorProcess::start(bed, &scene.namespace, None, None).await?;
    }
    // The last restart: every Workflow must finish, approving what the risk model sends to
    // review (the proposals come fast from one proposer) as a person would.
    let restarted = Instant::now();
    let deadline = Duration::from_secs(bed.args.deadline);
    let broken = loop {
        let listed = workflows.list(&ListParams::default()).await?.items;
        let proposals = scene.proposals.list(&ListParams::default()).await?.items;
        approve_listed(&scene, &proposals).await;
        let pheromones = Api::<Pheromone>::namespaced(client.clone(), &scene.namespace)
            .list(&ListParams::default())
            .await?
            .items;
        let agents = scene.agents.list(&ListParams::default()).await?.items;
        let broken: Vec<String> = listed
            .iter()
            .filter_map(|w| workflow_broken(w, &proposals, &pheromones, &agents))
            .collect();
        if broken.is_empty() || restarted.elapsed() > deadline {
            break broken;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = restarted.elapsed();
    eprintln!(
        "   {runs} kills, {mid_run} before that run's Workflow finished (with 0/1/2/3 steps done: \
         {steps_at_kill:?}); all finished {:.1} s after the last restart{}",
        took.as_secs_f64(),
        if broken.is_empty() {
            String::new()
        } else {
            format!("; NOT: {}", broken.join("; "))
        }
    );
    drop(operator);
    delete_namespace(bed, &scene.namespace).await;
    Ok(Outcome {
        scenario: "workflow-kill".to_owned(),
        runs,
        conditions: format!(
            "a 3-step Workflow (Pheromone, Proposal, Pheromone) started before each SIGKILL of \
             the operator at a random instant (0–0.4 s after the Workflow was created); \
             {mid_run} of {runs} kills before that run's Workflow finished, with 0, 1, 2 steps \
             done: {}, {}, {}",
            steps_at_kill[0], steps_at_kill[1], steps_at_kill[2]
        ),
        checked: "every Workflow Succeeded; one Proposal and two Pheromones per Workflow; each \
                  Agent scaled once"
            .to_owned(),
        broken,
        converge: vec![took],
    })
}
