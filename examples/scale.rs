//! Scale benchmark of the Agent controller (a benchmark, not a test).
//!
//! ```sh
//! cargo run --release --example scale -- --agents 500
//! ```
//!
//! On a private control plane (etcd + kube-apiserver from the testbed; no controller-manager,
//! so nothing but the operator and this program writes), it measures:
//!
//! 1. **direct**: this program creates N Deployments and N Services itself (the same objects the
//!    operator would make), with the same client and concurrency — the API server's ceiling;
//! 2. **operator**: the operator runs as a separate process (this binary, re-executed with
//!    `--operator`); N Agents are created and the time until each has its Deployment, its
//!    Service and a status for its current generation is recorded.
//!
//! It prints agents/s for both, the ratio, p50/p99 time-to-children, and the operator's peak
//! RSS (VmHWM of its process).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kgents::kgents_crds::Agent;
use kgents::kgents_operator::agent::plan::{self, AgentRef, PlanConfig};
use kgents::kgents_operator::metrics::Metrics;
use kgents::kgents_operator::run::{self, RunOptions};
use kgents::kgents_operator::{OperatorConfig, agent};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, ResourceExt};

#[derive(Parser, Debug)]
#[command(about = "Agents/s of the operator against the API server's own ceiling.")]
struct Args {
    /// Number of Agents (and of Deployment + Service pairs in the direct run).
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// Requests in flight when creating, and the operator's reconcile concurrency.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Internal: run as the operator process.
    #[arg(long, hide = true)]
    operator: bool,
    /// Internal (with --operator): kubeconfig of the control plane.
    #[arg(long, hide = true)]
    kubeconfig: Option<PathBuf>,
    /// Internal (with --operator): the namespace to watch.
    #[arg(long, hide = true)]
    namespace: Option<String>,
    /// Internal (with --operator): address of /readyz.
    #[arg(long, hide = true)]
    http_addr: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.operator {
        return operator_process(args).await;
    }
    benchmark(args).await
}

async fn client_from(kubeconfig: &PathBuf) -> Result<Client> {
    let parsed = Kubeconfig::read_from(kubeconfig).context("reading the kubeconfig")?;
    let config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

async fn operator_process(args: Args) -> Result<()> {
    let kubeconfig = args.kubeconfig.context("--operator needs --kubeconfig")?;
    let client = client_from(&kubeconfig).await?;
    let config = OperatorConfig {
        namespace: args.namespace,
        concurrency: u16::try_from(args.concurrency).unwrap_or(u16::MAX),
        ..OperatorConfig::default()
    };
    let options = RunOptions {
        config,
        http_addr: args.http_addr,
        leader_election: None,
        metrics: Arc::new(Metrics::new()),
        controllers: run::controllers()
            .into_iter()
            .filter(|c| c.name == agent::CONTROLLER)
            .collect(),
    };
    run::run(client, options, run::shutdown_signal()).await?;
    Ok(())
}

async fn namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_owned());
    api.create(&PostParams::default(), &ns).await?;
    Ok(())
}

fn agent_named(i: usize) -> String {
    format!("agent-{i:04}")
}

fn new_agent(i: usize) -> Result<Agent> {
    Ok(Agent::new(
        &agent_named(i),
        serde_json::from_value(serde_json::json!({"genus": "B", "replicas": 1}))?,
    ))
}

/// The direct run: the operator's own Deployment and Service for each agent, created by us.
async fn direct(client: &Client, n: usize, concurrency: usize) -> Result<Duration> {
    namespace(client, "scale-direct").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "scale-direct");
    let services: Api<Service> = Api::namespaced(client.clone(), "scale-direct");
    let config = OperatorConfig::default();
    let began = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (deployments, services) = (deployments.clone(), services.clone());
            let image = config.placeholder_image.clone();
            async move {
                let agent = new_agent(i)?;
                let name = agent_named(i);
                let planned = plan::plan(
                    &AgentRef {
                        name: &name,
                        namespace: "scale-direct",
                        uid: "none",
                    },
                    &agent.spec,
                    &PlanConfig {
                        placeholder_image: &image,
                    },
                )
                .map_err(|p| anyhow::anyhow!("{}: {}", p.reason, p.message))?;
                let (mut d, mut s) = (planned.deployment, planned.service);
                d.metadata.owner_references = None;
                s.metadata.owner_references = None;
                deployments.create(&PostParams::default(), &d).await?;
                services.create(&PostParams::default(), &s).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(began.elapsed())
}

#[derive(Default, Clone, Copy)]
struct Progress {
    created: Option<Instant>,
    deployment: Option<Instant>,
    service: Option<Instant>,
    status: Option<Instant>,
}

impl Progress {
    fn done(&self) -> Option<Instant> {
        Some(self.deployment?.max(self.service?).max(self.status?))
    }
}

type Board = Arc<Mutex<HashMap<String, Progress>>>;

fn mark(board: &Board, name: String, field: fn(&mut Progress) -> &mut Option<Instant>) {
    let mut board = board.lock().unwrap_or_else(|p| p.into_inner());
    let entry = board.entry(name).or_default();
    let slot = field(entry);
    if slot.is_none() {
        *slot = Some(Instant::now());
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn wait_ready(addr: SocketAddr) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            let _ = stream
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response).await;
            if response.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the operator process did not become ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn benchmark(args: Args) -> Result<()> {
    let n = args.agents;
    eprintln!("starting a private etcd + kube-apiserver ...");
    let testbed = kgents_testbed::Testbed::builder()
        .start()
        .await
        .context("starting the testbed (build it once with scripts/testbed-build)")?;
    testbed.install_crds(&kgents::kgents_crds::crds()).await?;
    let client = testbed.client().await?;

    eprintln!("direct: creating {n} Deployments and {n} Services ...");
    let direct_took = direct(&client, n, args.concurrency).await?;
    let direct_rate = n as f64 / direct_took.as_secs_f64();

    namespace(&client, "scale-operator").await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let http_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--operator", "--namespace", "scale-operator"])
        .arg("--kubeconfig")
        .arg(testbed.kubeconfig_path())
        .arg("--http-addr")
        .arg(http_addr.to_string())
        .arg("--concurrency")
        .arg(args.concurrency.to_string())
        .spawn()
        .context("starting the operator process")?;
    let outcome = async {
        wait_ready(http_addr).await?;
        let board: Board = Arc::new(Mutex::new(HashMap::new()));
        let ns = "scale-operator";
        let watch_deployments = {
            let board = board.clone();
            let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
            tokio::spawn(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
                    .for_each(move |d| {
                        if let Ok(d) = d {
                            mark(&board, d.name_any(), |p| &mut p.deployment);
                        }
                        async {}
                    }),
            )
        };
        let watch_services = {
            let board = board.clone();
            let api: Api<Service> = Api::namespaced(client.clone(), ns);
            tokio::spawn(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
                    .for_each(move |s| {
                        if let Ok(s) = s {
                            mark(&board, s.name_any(), |p| &mut p.service);
                        }
                        async {}
                    }),
            )
        };
        let watch_agents = {
            let board = board.clone();
            let api: Api<Agent> = Api::namespaced(client.clone(), ns);
            tokio::spawn(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
                    .for_each(move |a| {
                        if let Ok(a) = a {
                            let current = a.status.as_ref().is_some_and(|s| {
                                s.observed_generation == a.metadata.generation
                                    && s.deployment.is_some()
                            });
                            if current {
                                mark(&board, a.name_any(), |p| &mut p.status);
                            }
                        }
                        async {}
                    }),
            )
        };
        tokio::time::sleep(Duration::from_millis(500)).await;

        eprintln!("operator: creating {n} Agents ...");
        let agents: Api<Agent> = Api::namespaced(client.clone(), ns);
        let began = Instant::now();
        futures::stream::iter(0..n)
            .map(|i| {
                let (agents, board) = (agents.clone(), board.clone());
                async move {
                    mark(&board, agent_named(i), |p| &mut p.created);
                    agents
                        .create(&PostParams::default(), &new_agent(i)?)
                        .await?;
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(args.concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        let created_in = began.elapsed();
        let deadline = Instant::now() + Duration::from_secs(600);
        let last = loop {
            let snapshot: Vec<Progress> = board
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .copied()
                .collect();
            let done: Vec<Instant> = snapshot.iter().filter_map(Progress::done).collect();
            if done.len() >= n {
                break done.into_iter().max();
            }
            if Instant::now() > deadline {
                bail!("only {} of {n} agents complete after 600 s", done.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let total = last.map_or(Duration::ZERO, |l| l.duration_since(began));
        let mut latencies: Vec<Duration> = board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|p| Some(p.done()?.duration_since(p.created?)))
            .collect();
        latencies.sort();
        for task in [watch_deployments, watch_services, watch_agents] {
            task.abort();
        }
        Ok::<_, anyhow::Error>((total, created_in, latencies))
    }
    .await;
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let (total, created_in, latencies) = outcome?;
    let operator_rate = n as f64 / total.as_secs_f64();

    println!(
        "agents:                    {n} (concurrency {})",
        args.concurrency
    );
    println!(
        "direct (API ceiling):      {:.2} s, {direct_rate:.1} agents/s (one Deployment + one Service each)",
        direct_took.as_secs_f64()
    );
    println!(
        "operator:                  {:.2} s, {operator_rate:.1} agents/s (Agents created in {:.2} s)",
        total.as_secs_f64(),
        created_in.as_secs_f64()
    );
    println!(
        "ratio operator/direct:     {:.2}",
        operator_rate / direct_rate
    );
    println!(
        "time to children:          p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 99.0).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    match rss {
        Some(kib) => println!("operator peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("operator peak RSS:         unavailable (no /proc)"),
    }
    Ok(())
}
