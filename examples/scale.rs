//! Scale benchmark of the Agent controller (a benchmark, not a test).
//!
//! ```sh
//! cargo run --release --example scale -- --agents 500
//! ```
//!
//! On a private control plane (etcd + kube-apiserver from the testbed; no controller-manager,
//! so nothing but the operator and this program writes), it measures:
//!
//! 1. **direct**: this program writes N Deployments and N Services itself (the same objects the
//!    operator would make, by default with the operator's own server-side apply and field
//!    manager; `--baseline create` POSTs them instead), with the same client and concurrency —
//!    the API server's ceiling;
//! 2. **operator**: the operator runs as a separate process (this binary, re-executed with
//!    `--operator`); N Agents are created and the time until each has its Deployment, its
//!    Service and a status for its current generation is recorded.
//!
//! It prints agents/s for both, the ratio, p50/p99 time-to-children, and the operator's peak
//! RSS (VmHWM of its process). `--write-costs` first times each kind of write of the operator
//! path on its own (Agent create, ServiceAccount / Deployment / Service apply, status apply,
//! Event), so the ratio can be explained by writes per agent × cost per write.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use kgents::kgents_crds::Agent;
use kgents::kgents_operator::agent::plan::{self, AgentRef, PlanConfig};
use kgents::kgents_operator::agent::status::{self as agent_status, Realisation, StatusInput};
use kgents::kgents_operator::{OperatorConfig, agent};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

#[path = "support/measure.rs"]
mod measure;
use measure::{peak_rss_kib, run_operator, ticks_per_second, wait_ready};

#[derive(Parser, Debug)]
#[command(about = "Agents/s of the operator against the API server's own ceiling.")]
struct Args {
    /// Number of Agents (and of Deployment + Service pairs in the direct run).
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// Requests in flight when creating, and the operator's reconcile concurrency.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How the direct run writes: `apply` (server-side apply under the operator's field manager,
    /// the operator's own bodies including owner references — the fair ceiling) or `create`
    /// (POST without owner references, as earlier runs of this benchmark did) or `all-writes`
    /// (every write the operator path requires — Agent, ServiceAccount, Deployment, Service,
    /// status — made directly: the operator's overhead rather than the two-object ceiling).
    #[arg(long, value_enum, default_value_t = Baseline::Apply)]
    baseline: Baseline,
    /// Time completion by watching the Deployments and Services too (costs the API server a
    /// watch event per child write that the direct run does not pay).
    #[arg(long)]
    watch_children: bool,
    /// Also time each kind of write the operator path makes, one kind at a time.
    #[arg(long)]
    write_costs: bool,
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

/// How the direct run writes its Deployments and Services.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Baseline {
    /// Server-side apply, forced, under the operator's field manager, with owner references.
    Apply,
    /// POST, no owner references.
    Create,
    /// Every write the operator path requires, made directly: the Agent (POST), then its
    /// ServiceAccount, then Deployment and Service at once (server-side apply), then its
    /// status (server-side apply) — the operator's own overhead over the API server, not a
    /// ceiling for two objects.
    AllWrites,
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

async fn operator_process(args: Args) -> Result<()> {
    let config = OperatorConfig {
        namespace: args.namespace,
        concurrency: u16::try_from(args.concurrency).unwrap_or(u16::MAX),
        ..OperatorConfig::default()
    };
    run_operator(
        args.kubeconfig,
        config,
        args.http_addr,
        &[agent::CONTROLLER],
    )
    .await
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

fn planned(i: usize, namespace: &str, uid: &str, image: &str) -> Result<plan::Children> {
    let agent = new_agent(i)?;
    let name = agent_named(i);
    plan::plan(
        &AgentRef {
            name: &name,
            namespace,
            uid,
        },
        &agent.spec,
        &PlanConfig {
            placeholder_image: image,
            api_server: &[],
        },
    )
    .map_err(|p| anyhow::anyhow!("{}: {}", p.reason, p.message))
}

fn config_field_manager() -> String {
    OperatorConfig::default().field_manager
}

/// A stand-in owner for the direct run's objects: nothing collects garbage on this control
/// plane, so the reference only gives the bodies the operator's size and shape.
const DIRECT_OWNER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Writes `object` the way `baseline` says.
async fn write<K>(api: &Api<K>, baseline: Baseline, mut object: K) -> Result<()>
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::Serialize
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match baseline {
        Baseline::Apply | Baseline::AllWrites => {
            let name = object.meta().name.clone().unwrap_or_default();
            let params = PatchParams::apply(&OperatorConfig::default().field_manager).force();
            api.patch(&name, &params, &Patch::Apply(&object)).await?;
        }
        Baseline::Create => {
            object.meta_mut().owner_references = None;
            api.create(&PostParams::default(), &object).await?;
        }
    }
    Ok(())
}

/// The direct run: the operator's own Deployment and Service for each agent, written by us,
/// `concurrency` agents at a time and each agent's two objects at once (as the operator's
/// reconcile, with the same concurrency, does).
async fn direct(
    client: &Client,
    namespace_name: &str,
    n: usize,
    concurrency: usize,
    baseline: Baseline,
) -> Result<Duration> {
    namespace(client, namespace_name).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace_name);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace_name);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace_name);
    let agents: Api<Agent> = Api::namespaced(client.clone(), namespace_name);
    let config = OperatorConfig::default();
    let began = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (deployments, services) = (deployments.clone(), services.clone());
            let (accounts, agents) = (accounts.clone(), agents.clone());
            let image = config.placeholder_image.clone();
            async move {
                let all = baseline == Baseline::AllWrites;
                let uid = if all {
                    let created = agents.create(&PostParams::default(), &new_agent(i)?).await?;
                    created.uid().unwrap_or_default()
                } else {
                    DIRECT_OWNER_UID.to_owned()
                };
                let children = planned(i, namespace_name, &uid, &image)?;
                if all && let Some(sa) = children.service_account.clone() {
                    write(&accounts, baseline, sa).await?;
                }
                // Both at once, as the operator's reconcile applies them.
                tokio::try_join!(
                    write(&deployments, baseline, children.deployment.clone()),
                    write(&services, baseline, children.service),
                )?;
                if all {
                    let name = agent_named(i);
                    let selector = plan::selector_string(&name);
                    let input = StatusInput {
                        generation: Some(1),
                        desired_replicas: 1,
                        name: &name,
                        selector: &selector,
                        memory: None,
                        umwelt: None,
                        realisation: Realisation::Applied {
                            deployment: Some(&children.deployment),
                        },
                    };
                    let status = agent_status::compute(&input, None, jiff::Timestamp::now());
                    let body = serde_json::json!({"apiVersion": "kgents.io/v1", "kind": "Agent", "status": status});
                    let params = PatchParams::apply(&config_field_manager()).force();
                    agents
                        .patch_status(&name, &params, &Patch::Apply(&body))
                        .await?;
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(began.elapsed())
}

/// CPU seconds used so far, by process: this program (`benchmark`), and each of its children
/// by command name (`etcd`, `kube-apiserver`; the re-executed operator process as `operator`).
/// Read from `/proc/<pid>/stat`.
fn cpu_snapshot() -> BTreeMap<String, f64> {
    let per_second = ticks_per_second();
    #[allow(clippy::cast_precision_loss)] // ticks stay far below 2^52
    let seconds = |stat: &measure::Stat| stat.cpu_ticks as f64 / per_second;
    let me = std::process::id();
    let mut out = BTreeMap::new();
    let own = measure::stat_of(me);
    if let Some(own) = &own {
        out.insert("benchmark".to_owned(), seconds(own));
    }
    let own_comm = own.map(|own| own.comm).unwrap_or_default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(child) = measure::stat_of(pid)
            && child.ppid == me
        {
            let name = if child.comm == own_comm {
                "operator".to_owned()
            } else {
                child.comm.clone()
            };
            *out.entry(name).or_insert(0.0) += seconds(&child);
        }
    }
    out
}

/// The API server's counters that explain its work: requests by verb and resource
/// (`apiserver_request_total`) and watch events sent by kind (`apiserver_watch_events_total`).
async fn apiserver_counters(client: &Client) -> BTreeMap<String, f64> {
    let request = match http::Request::get("/metrics").body(Vec::new()) {
        Ok(request) => request,
        Err(_) => return BTreeMap::new(),
    };
    let Ok(text) = client.request_text(request).await else {
        return BTreeMap::new();
    };
    let label = |labels: &str, key: &str| -> String {
        let needle = format!("{key}=\"");
        labels
            .split(',')
            .find_map(|l| l.strip_prefix(&needle))
            .map(|v| v.trim_end_matches('"').to_owned())
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let key = if let Some(labels) = series.strip_prefix("apiserver_request_total{") {
            let sub = label(labels, "subresource");
            format!(
                "request {} {}{}",
                label(labels, "verb"),
                label(labels, "resource"),
                if sub.is_empty() {
                    String::new()
                } else {
                    format!("/{sub}")
                }
            )
        } else if let Some(labels) = series.strip_prefix("apiserver_watch_events_total{") {
            format!(
                "watch event {}{}",
                label(labels, "kind"),
                label(labels, "resource")
            )
        } else {
            continue;
        };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

/// Counter increases per agent since `before`, the ones of at least 0.05 per agent.
fn counters_per_agent(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    n: usize,
) -> Vec<String> {
    after
        .iter()
        .filter_map(|(key, value)| {
            let per = (value - before.get(key).copied().unwrap_or(0.0)) / n.max(1) as f64;
            (per >= 0.05).then(|| format!("{key}: {per:.2}"))
        })
        .collect()
}

/// CPU seconds per process between two snapshots.
fn cpu_since(before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    cpu_snapshot()
        .into_iter()
        .map(|(name, secs)| {
            let earlier = before.get(&name).copied().unwrap_or(0.0);
            (name, secs - earlier)
        })
        .collect()
}

fn cpu_line(cpu: &BTreeMap<String, f64>, per: usize) -> String {
    cpu.iter()
        .filter(|(_, secs)| **secs > 0.0)
        .map(|(name, secs)| format!("{name} {:.2}", secs * 1000.0 / per.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `n` writes made by `one(i)` with `concurrency` in flight; the wall time per write and
/// the CPU the processes spent meanwhile.
async fn timed<F, Fut>(
    n: usize,
    concurrency: usize,
    one: F,
) -> Result<(Duration, BTreeMap<String, f64>)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let cpu = cpu_snapshot();
    let began = Instant::now();
    futures::stream::iter(0..n)
        .map(one)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let took = began.elapsed() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    Ok((took, cpu_since(&cpu)))
}

/// Times each kind of write of the operator path alone, on a namespace of its own: the
/// throughput cost (wall time per write at the given concurrency) of each.
async fn write_costs(client: &Client, n: usize, concurrency: usize) -> Result<()> {
    let ns = "scale-costs";
    namespace(client, ns).await?;
    let agents: Api<Agent> = Api::namespaced(client.clone(), ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let image = OperatorConfig::default().placeholder_image;
    let params = PatchParams::apply(&OperatorConfig::default().field_manager).force();
    let mut rows = Vec::new();

    let uids = Arc::new(Mutex::new(HashMap::new()));
    let cost = timed(n, concurrency, |i| {
        let (agents, uids) = (agents.clone(), uids.clone());
        async move {
            let created = agents
                .create(&PostParams::default(), &new_agent(i)?)
                .await?;
            uids.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(i, created.uid().unwrap_or_default());
            Ok(())
        }
    })
    .await?;
    rows.push(("Agent create (POST)", cost));
    let uid_of = |i: usize| {
        uids.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&i)
            .cloned()
            .unwrap_or_default()
    };
    let cost = timed(n, concurrency, |i| {
        let (accounts, params, uid) = (accounts.clone(), params.clone(), uid_of(i));
        let image = image.clone();
        async move {
            let children = planned(i, ns, &uid, &image)?;
            let sa = children.service_account.context("an own ServiceAccount")?;
            accounts
                .patch(&agent_named(i), &params, &Patch::Apply(&sa))
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("ServiceAccount apply", cost));
    let cost = timed(n, concurrency, |i| {
        let (deployments, params, uid) = (deployments.clone(), params.clone(), uid_of(i));
        let image = image.clone();
        async move {
            let children = planned(i, ns, &uid, &image)?;
            deployments
                .patch(
                    &agent_named(i),
                    &params,
                    &Patch::Apply(&children.deployment),
                )
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("Deployment apply", cost));
    let cost = timed(n, concurrency, |i| {
        let (services, params, uid) = (services.clone(), params.clone(), uid_of(i));
        let image = image.clone();
        async move {
            let children = planned(i, ns, &uid, &image)?;
            services
                .patch(&agent_named(i), &params, &Patch::Apply(&children.service))
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("Service apply", cost));
    let cost = timed(n, concurrency, |i| {
        let agents = agents.clone();
        let params = params.clone();
        async move {
            let name = agent_named(i);
            let selector = plan::selector_string(&name);
            let input = StatusInput {
                generation: Some(1),
                desired_replicas: 1,
                name: &name,
                selector: &selector,
                memory: None,
                umwelt: None,
                realisation: Realisation::Applied { deployment: None },
            };
            let status = agent_status::compute(&input, None, jiff::Timestamp::now());
            let body = serde_json::json!({"apiVersion": "kgents.io/v1", "kind": "Agent", "status": status});
            agents
                .patch_status(&name, &params, &Patch::Apply(&body))
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("Agent status apply", cost));
    let costs = timed(n, concurrency, |i| {
        let agents = agents.clone();
        async move {
            let body = serde_json::json!({"status": {"phase": "Running"}});
            agents
                .patch_status(
                    &agent_named(i),
                    &PatchParams::default(),
                    &Patch::Merge(&body),
                )
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("Agent status merge patch (for comparison)", costs));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: OperatorConfig::default().field_manager,
            instance: None,
        },
    );
    let cost = timed(n, concurrency, |i| {
        let (agents, recorder) = (agents.clone(), recorder.clone());
        async move {
            let agent = agents.get(&agent_named(i)).await?;
            recorder
                .publish(
                    &KubeEvent {
                        type_: EventType::Normal,
                        reason: "Pending".to_owned(),
                        note: Some("Pending: waiting for pods".to_owned()),
                        action: "Reconcile".to_owned(),
                        secondary: None,
                    },
                    &agent.object_ref(&()),
                )
                .await?;
            Ok(())
        }
    })
    .await?;
    let get = timed(n, concurrency, |i| {
        let agents = agents.clone();
        async move {
            agents.get(&agent_named(i)).await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("Event create (incl. an Agent GET)", cost));
    rows.push(("Agent GET (for the line above)", get));
    let cost = timed(n, concurrency, |i| {
        let (deployments, uid) = (deployments.clone(), uid_of(i));
        let image = image.clone();
        async move {
            let mut children = planned(i, ns, &uid, &image)?;
            children.deployment.metadata.name = Some(format!("post-{}", agent_named(i)));
            deployments
                .create(&PostParams::default(), &children.deployment)
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("Deployment create (POST, for comparison)", cost));
    let cost = timed(n, concurrency, |i| {
        let (services, uid) = (services.clone(), uid_of(i));
        let image = image.clone();
        async move {
            let mut children = planned(i, ns, &uid, &image)?;
            children.service.metadata.name = Some(format!("post-{}", agent_named(i)));
            services
                .create(&PostParams::default(), &children.service)
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push(("Service create (POST, for comparison)", cost));

    println!(
        "write costs ({n} each, concurrency {concurrency}; wall time per write, then CPU ms per write by process):"
    );
    for (what, (cost, cpu)) in rows {
        println!(
            "  {what:<42} {:>6.2} ms   [{}]",
            cost.as_secs_f64() * 1000.0,
            cpu_line(&cpu, n)
        );
    }
    Ok(())
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

    if args.write_costs {
        eprintln!("timing each kind of write ...");
        write_costs(&client, n, args.concurrency).await?;
    }
    eprintln!(
        "direct ({:?}): writing {n} Deployments and {n} Services ...",
        args.baseline
    );
    let counters = apiserver_counters(&client).await;
    let cpu = cpu_snapshot();
    let direct_took = direct(&client, "scale-direct", n, args.concurrency, args.baseline).await?;
    let direct_cpu = cpu_since(&cpu);
    let direct_counters = counters_per_agent(&counters, &apiserver_counters(&client).await, n);
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
        wait_ready(http_addr, Duration::from_secs(60)).await?;
        let board: Board = Arc::new(Mutex::new(HashMap::new()));
        let ns = "scale-operator";
        // Watching the children costs the API server a watch event per child write, work
        // the direct run does not pay; by default completion is read from the Agent's status
        // alone (the operator writes it only after its Deployment and Service were applied)
        // and the children are counted once at the end.
        let watch_children = args.watch_children;
        let watch_deployments = watch_children.then(|| {
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
        });
        let watch_services = watch_children.then(|| {
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
        });
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
                                if !watch_children {
                                    mark(&board, a.name_any(), |p| &mut p.deployment);
                                    mark(&board, a.name_any(), |p| &mut p.service);
                                }
                            }
                        }
                        async {}
                    }),
            )
        };
        tokio::time::sleep(Duration::from_millis(500)).await;

        eprintln!("operator: creating {n} Agents ...");
        let agents: Api<Agent> = Api::namespaced(client.clone(), ns);
        let counters = apiserver_counters(&client).await;
        let cpu = cpu_snapshot();
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
        let operator_cpu = cpu_since(&cpu);
        let operator_counters =
            counters_per_agent(&counters, &apiserver_counters(&client).await, n);
        let mut latencies: Vec<Duration> = board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|p| Some(p.done()?.duration_since(p.created?)))
            .collect();
        latencies.sort();
        for task in [watch_deployments, watch_services, Some(watch_agents)]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        let found = (
            deployments.list(&ListParams::default()).await?.items.len(),
            services.list(&ListParams::default()).await?.items.len(),
        );
        if found != (n, n) {
            bail!("expected {n} Deployments and {n} Services, found {found:?}");
        }
        Ok::<_, anyhow::Error>((
            total,
            created_in,
            latencies,
            operator_cpu,
            operator_counters,
        ))
    }
    .await;
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let (total, created_in, latencies, operator_cpu, operator_counters) = outcome?;
    let operator_rate = n as f64 / total.as_secs_f64();

    println!(
        "agents:                    {n} (concurrency {})",
        args.concurrency
    );
    println!(
        "direct (API ceiling):      {:.2} s, {direct_rate:.1} agents/s (one Deployment + one Service each, {:?})",
        direct_took.as_secs_f64(),
        args.baseline
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
    println!("CPU ms per agent, direct:   {}", cpu_line(&direct_cpu, n));
    println!("CPU ms per agent, operator: {}", cpu_line(&operator_cpu, n));
    println!(
        "API server work per agent, direct:   {}",
        direct_counters.join("; ")
    );
    println!(
        "API server work per agent, operator: {}",
        operator_counters.join("; ")
    );
    match rss {
        Some(kib) => println!("operator peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("operator peak RSS:         unavailable (no /proc)"),
    }
    Ok(())
}
