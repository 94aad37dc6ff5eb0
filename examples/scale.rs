//! Scale benchmark of the Agent controller (a benchmark, not a test).
//!
//! ```sh
//! cargo run --release --example scale -- --agents 500
//! # as a user runs the operator (every controller, default concurrency, no probes), on the full
//! # testbed where the agents' pods run:
//! cargo run --release --example scale -- --agents 1000 --baseline all-writes --nodes 20 --all-controllers
//! ```
//!
//! On a private control plane (etcd + kube-apiserver from the testbed; no controller-manager,
//! so nothing but the operator and this program writes — or, with `--nodes`, the full testbed
//! with controller-manager, scheduler and kwok nodes, so the agents' pods are scheduled and
//! become Ready), it measures:
//!
//! 1. **direct**: this program writes N Deployments and N Services itself (the same objects the
//!    operator would make, by default with the operator's own server-side apply and field
//!    manager; `--baseline create` POSTs them instead), with the same client and concurrency —
//!    the API server's ceiling;
//! 2. **operator**: the operator runs as a separate process (this binary, re-executed with
//!    `--operator`); N Agents are created and the time until each has its Deployment, its
//!    Service and a status for its current generation is recorded.
//!
//! Each of the two runs (and `--write-costs`) starts on a fresh testbed, so both start from an
//! empty cluster: the API server's cost per write grows with what the cluster holds (every
//! Service's ClusterIP allocation counts the addresses already allocated), and on one testbed
//! the operator's run would pay for the direct run's objects. `--one-testbed` runs both on one,
//! direct first, as earlier versions of this benchmark did. With `--nodes`, each run waits
//! until kube-controller-manager watches the new custom resources (its garbage collector finds
//! them within 30 s), so that its watches are not counted as the operator's.
//!
//! It prints agents/s for both, the ratio, p50/p99 time-to-children, the operator's peak RSS
//! (VmHWM of its process), its CPU (user and system) and reconciles per agent, the CPU of every
//! process of the run per agent, and the watches the operator holds on the API server by
//! resource (`apiserver_longrunning_requests{verb="WATCH"}`, besides the WATCH requests that
//! ended meanwhile). With `--nodes` it also waits until every Agent is Running (its pod Ready)
//! and reports the operator's CPU up to that point, which includes the reconciles the pods'
//! and children's status changes cause. `--write-costs` first times each kind of write of the operator
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
use kgents::kgents_crds::agent::AgentPhase;
use kgents::kgents_operator::agent::observed::ObservedDeployment;
use kgents::kgents_operator::agent::plan::{self, AgentRef, PlanConfig};
use kgents::kgents_operator::agent::status::{self as agent_status, Realisation, StatusInput};
use kgents::kgents_operator::{OperatorConfig, agent, run};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

#[path = "support/measure.rs"]
mod measure;
use measure::{
    ClientStack, http_get, peak_rss_kib, rss_split_kib, run_operator, ticks_per_second, wait_ready,
};

#[derive(Parser, Debug)]
#[command(about = "Agents/s of the operator against the API server's own ceiling.")]
struct Args {
    /// Number of Agents (and of Deployment + Service pairs in the direct run).
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// Requests in flight when creating (the Agents, and the direct run's writes).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The operator's reconcile concurrency (default: the operator's own default, as a user
    /// who does not set it runs it).
    #[arg(long)]
    operator_concurrency: Option<u16>,
    /// Run every controller of the operator with cognitive probes off (as `examples/operator --
    /// --no-leader-election --no-probes` does), not the Agent controller alone.
    #[arg(long)]
    all_controllers: bool,
    /// Run the full testbed with this many kwok nodes (controller-manager, scheduler; the
    /// agents' pods run); 0: etcd and kube-apiserver only.
    #[arg(long, default_value_t = 0)]
    nodes: usize,
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
    /// Run the operator with kube's default client stack, every object decoded whole with its
    /// managed fields (the comparison for the trimmed client the operator example uses).
    #[arg(long)]
    untrimmed_client: bool,
    /// Run every part (write costs, direct, operator) on one testbed, in that order, as
    /// earlier runs of this benchmark did: each later part then runs on a cluster that holds
    /// the earlier parts' objects. By default each part gets a fresh testbed.
    #[arg(long)]
    one_testbed: bool,
    /// Worker threads of the operator process's tokio runtime (default: the operator
    /// example's, `run::DEFAULT_WORKER_THREADS`).
    #[arg(long, default_value_t = run::DEFAULT_WORKER_THREADS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    operator_worker_threads: usize,
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

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.operator {
        runtime.worker_threads(args.operator_worker_threads);
    }
    runtime.enable_all().build()?.block_on(async {
        if args.operator {
            operator_process(args).await
        } else {
            benchmark(args).await
        }
    })
}

async fn operator_process(args: Args) -> Result<()> {
    let stack = client_stack(&args);
    let mut config = OperatorConfig::default();
    if let Some(concurrency) = args.operator_concurrency {
        config.concurrency = concurrency;
    }
    config.namespace = args.namespace;
    // The agents here have no cognitive probes; off, as with `--no-probes`.
    config.probes.enabled = false;
    let controllers: Vec<&str> = if args.all_controllers {
        run::controllers().iter().map(|c| c.name).collect()
    } else {
        vec![agent::CONTROLLER]
    };
    run_operator(args.kubeconfig, config, args.http_addr, &controllers, stack).await
}

/// The operator process's client, as `--untrimmed-client` chooses.
fn client_stack(args: &Args) -> ClientStack {
    if args.untrimmed_client {
        ClientStack::Plain
    } else {
        ClientStack::Trimmed
    }
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
            symbiont_image: kgents::kgents_operator::DEFAULT_SYMBIONT_IMAGE,
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
                            deployment: Some(&ObservedDeployment::from(&children.deployment)),
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
    let text = apiserver_metrics(client).await;
    let mut out = BTreeMap::new();
    for (name, labels, value) in samples(&text) {
        let key = match name {
            "apiserver_request_total" => {
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
            }
            "apiserver_watch_events_total" => format!(
                "watch event {}{}",
                label(labels, "kind"),
                label(labels, "resource")
            ),
            _ => continue,
        };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

/// The API server's `/metrics` text; empty when it cannot be read (the figures are then left
/// out, the run goes on).
async fn apiserver_metrics(client: &Client) -> String {
    let Ok(request) = http::Request::get("/metrics").body(Vec::new()) else {
        return String::new();
    };
    client.request_text(request).await.unwrap_or_default()
}

/// The samples of a Prometheus text: metric name, labels (without the braces) and value.
fn samples(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines().filter_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let value = value.parse::<f64>().ok()?;
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        Some((name, labels.strip_suffix('}').unwrap_or(labels), value))
    })
}

/// The value of label `key` in a sample's labels, empty when absent.
fn label(labels: &str, key: &str) -> String {
    let needle = format!("{key}=\"");
    labels
        .split(',')
        .find_map(|l| l.strip_prefix(&needle))
        .map(|v| v.trim_end_matches('"').to_owned())
        .unwrap_or_default()
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

/// The watches on the API server by resource: `open <resource>` from the gauge
/// `apiserver_longrunning_requests{verb="WATCH"}` and `ended <resource>` from the WATCH requests
/// of `apiserver_request_total` (counted when a watch ends).
async fn apiserver_watches(client: &Client) -> BTreeMap<String, f64> {
    let text = apiserver_metrics(client).await;
    let mut out = BTreeMap::new();
    for (name, labels, value) in samples(&text) {
        let what = match name {
            "apiserver_longrunning_requests" => "open",
            "apiserver_request_total" => "ended",
            _ => continue,
        };
        if label(labels, "verb") != "WATCH" {
            continue;
        }
        *out.entry(format!("{what} {}", label(labels, "resource")))
            .or_insert(0.0) += value;
    }
    out
}

/// The change of every watch figure between two [`apiserver_watches`] readings, non-zero ones.
fn watches_line(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    what: &str,
) -> String {
    let prefix = format!("{what} ");
    let line = after
        .iter()
        .filter_map(|(key, value)| {
            let resource = key.strip_prefix(&prefix)?;
            let change = value - before.get(key).copied().unwrap_or(0.0);
            (change.abs() >= 0.5).then(|| format!("{resource} {change:.0}"))
        })
        .collect::<Vec<_>>()
        .join(", ");
    if line.is_empty() {
        "none".to_owned()
    } else {
        line
    }
}

/// User and system CPU time of process `pid` so far (fields 14 and 15 of `/proc/<pid>/stat`).
fn user_system(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let per_second = ticks_per_second();
    let ticks = |i: usize| -> Option<Duration> {
        let ticks: u64 = fields.get(i)?.parse().ok()?;
        #[allow(clippy::cast_precision_loss)] // ticks stay far below 2^52
        Some(Duration::from_secs_f64(ticks as f64 / per_second))
    };
    // After the name, utime and stime are the 12th and 13th fields.
    Some((ticks(11)?, ticks(12)?))
}

/// The user and system CPU `pid` used since the reading `before` ([`user_system`]).
fn user_system_since(
    before: Option<(Duration, Duration)>,
    pid: u32,
) -> Option<(Duration, Duration)> {
    let ((user0, system0), (user1, system1)) = before.zip(user_system(pid))?;
    Some((user1.saturating_sub(user0), system1.saturating_sub(system0)))
}

/// Reconciles started per controller, from the operator's `/metrics`.
async fn operator_reconciles(addr: SocketAddr) -> BTreeMap<String, f64> {
    let text = http_get(addr, "/metrics").await.unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("kgents_reconciles_total{controller=\"")?;
            let (controller, value) = rest.split_once("\"} ")?;
            Some((controller.to_owned(), value.trim().parse::<f64>().ok()?))
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
    /// The Agent reported phase Running (its pod Ready; only with `--nodes`).
    running: Option<Instant>,
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

/// Starts the control plane a part of the run measures on: the full testbed with
/// `--nodes`, etcd and kube-apiserver alone otherwise; the CRDs installed.
async fn start_testbed(args: &Args) -> Result<kgents_testbed::Testbed> {
    let testbed = if args.nodes > 0 {
        eprintln!(
            "starting the full testbed with {} kwok node(s) ...",
            args.nodes
        );
        kgents_testbed::Testbed::builder().with_nodes(args.nodes)
    } else {
        eprintln!("starting a private etcd + kube-apiserver ...");
        kgents_testbed::Testbed::builder()
    }
    .start()
    .await
    .context("starting the testbed (build it once with scripts/testbed-build)")?;
    let crds = kgents::kgents_crds::crds();
    testbed.install_crds(&crds).await?;
    if args.nodes > 0 {
        let plurals: Vec<String> = crds.iter().map(|c| c.spec.names.plural.clone()).collect();
        controller_manager_watches(&testbed.client().await?, &plurals).await;
    }
    Ok(testbed)
}

/// Waits until kube-controller-manager watches every new custom resource. Its garbage
/// collector finds new kinds by discovery, every 30 s, and then opens a watch for each. A
/// watch it opened during the operator's run would be counted as the operator's.
async fn controller_manager_watches(client: &Client, plurals: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open = apiserver_watches(client).await;
        let unwatched: Vec<&String> = plurals
            .iter()
            .filter(|p| open.get(&format!("open {p}")).copied().unwrap_or(0.0) < 1.0)
            .collect();
        if unwatched.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!(
                "warning: after 90 s kube-controller-manager still watches none of {unwatched:?}; \
                 the operator's watch counts below may include its watches"
            );
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The control plane for the next part of the run: a fresh one, so that each part starts
/// from an empty cluster, or with `--one-testbed` the same one. Fresh is the fair comparison:
/// the API server's cost per write grows with what the cluster already holds (a Service's
/// ClusterIP allocation counts every allocated address, the Go heap to mark grows with the
/// objects cached), so on a shared testbed the later part pays for the earlier part's objects.
async fn fresh_unless_shared(
    testbed: kgents_testbed::Testbed,
    args: &Args,
) -> Result<kgents_testbed::Testbed> {
    if args.one_testbed {
        return Ok(testbed);
    }
    // Stopped before the next one starts: the two never share the cores.
    drop(testbed);
    start_testbed(args).await
}

async fn benchmark(args: Args) -> Result<()> {
    let n = args.agents;
    // On one testbed the direct run's Deployments keep their pods while the operator's run
    // schedules its own: both sets must fit on the fake nodes, or the operator's agents never
    // become Running.
    let pods_per_node = kgents_testbed::names::PODS_PER_NODE;
    let pods = if args.one_testbed { 2 * n } else { n };
    if args.nodes > 0 && args.nodes * pods_per_node < pods {
        bail!(
            "--nodes {} holds {} pods, but {n} agents need {pods}{}; use --nodes {} or more",
            args.nodes,
            args.nodes * pods_per_node,
            if args.one_testbed {
                " (the direct run's and the operator's)"
            } else {
                ""
            },
            pods.div_ceil(pods_per_node)
        );
    }

    let mut testbed = start_testbed(&args).await?;
    if args.write_costs {
        eprintln!("timing each kind of write ...");
        write_costs(&testbed.client().await?, n, args.concurrency).await?;
        testbed = fresh_unless_shared(testbed, &args).await?;
    }
    let client = testbed.client().await?;
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
    drop(client);
    let testbed = fresh_unless_shared(testbed, &args).await?;
    let client = testbed.client().await?;

    namespace(&client, "scale-operator").await?;
    let ns = "scale-operator";
    let board: Board = Arc::new(Mutex::new(HashMap::new()));
    // Watching the children costs the API server a watch event per child write, work the
    // direct run does not pay; by default completion is read from the Agent's status alone (the
    // operator writes it only after its Deployment and Service were applied) and the children
    // are counted once at the end. This program's watches start before the operator, so the
    // watches the API server holds afterwards, less those before, are the operator's.
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
                        let status = a.status.as_ref();
                        let current = status.is_some_and(|s| {
                            s.observed_generation == a.metadata.generation && s.deployment.is_some()
                        });
                        if current {
                            mark(&board, a.name_any(), |p| &mut p.status);
                            if !watch_children {
                                mark(&board, a.name_any(), |p| &mut p.deployment);
                                mark(&board, a.name_any(), |p| &mut p.service);
                            }
                            if status.and_then(|s| s.phase) == Some(AgentPhase::Running) {
                                mark(&board, a.name_any(), |p| &mut p.running);
                            }
                        }
                    }
                    async {}
                }),
        )
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watches_before = apiserver_watches(&client).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let http_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .args(["--operator", "--namespace", ns])
        .arg("--kubeconfig")
        .arg(testbed.kubeconfig_path())
        .arg("--http-addr")
        .arg(http_addr.to_string());
    if let Some(concurrency) = args.operator_concurrency {
        command
            .arg("--operator-concurrency")
            .arg(concurrency.to_string());
    }
    if args.all_controllers {
        command.arg("--all-controllers");
    }
    command
        .arg("--operator-worker-threads")
        .arg(args.operator_worker_threads.to_string());
    if args.untrimmed_client {
        command.arg("--untrimmed-client");
    }
    let mut child = command.spawn().context("starting the operator process")?;
    let operator_pid = child.id();
    let outcome = async {
        wait_ready(http_addr, Duration::from_secs(60)).await?;
        // Let the operator's informers list and start watching before the clock starts.
        tokio::time::sleep(Duration::from_millis(500)).await;

        eprintln!("operator: creating {n} Agents ...");
        let agents: Api<Agent> = Api::namespaced(client.clone(), ns);
        let counters = apiserver_counters(&client).await;
        let reconciles_before = operator_reconciles(http_addr).await;
        let cpu = cpu_snapshot();
        let split_before = user_system(operator_pid);
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
        let wait_all = |what: &'static str, done: fn(&Progress) -> Option<Instant>| {
            let board = board.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(600);
                loop {
                    let finished: Vec<Instant> = board
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .values()
                        .filter_map(done)
                        .collect();
                    if finished.len() >= n {
                        return Ok::<_, anyhow::Error>(finished.into_iter().max());
                    }
                    if Instant::now() > deadline {
                        bail!("only {} of {n} agents {what} after 600 s", finished.len());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let last = wait_all("complete", Progress::done).await?;
        let total = last.map_or(Duration::ZERO, |l| l.duration_since(began));
        let operator_cpu = cpu_since(&cpu);
        let split = user_system_since(split_before, operator_pid);
        let operator_counters =
            counters_per_agent(&counters, &apiserver_counters(&client).await, n);
        let reconciles = operator_reconciles(http_addr).await;
        let watches_after = apiserver_watches(&client).await;
        let until_running = if args.nodes > 0 {
            let last = wait_all("Running", |p| p.running).await?;
            let until = last.map_or(Duration::ZERO, |l| l.duration_since(began));
            let split_running = user_system_since(split_before, operator_pid);
            Some((
                until,
                cpu_since(&cpu),
                split_running,
                operator_reconciles(http_addr).await,
            ))
        } else {
            None
        };
        // Settled: every Agent complete (and Running, with nodes). What the operator spends
        // now is what it costs to hold N Agents, not to make them.
        let rest_before = user_system(operator_pid);
        tokio::time::sleep(AT_REST).await;
        let at_rest =
            user_system_since(rest_before, operator_pid).map(|(user, system)| user + system);
        let mut latencies: Vec<Duration> = board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|p| Some(p.done()?.duration_since(p.created?)))
            .collect();
        latencies.sort();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        let found = (
            deployments.list(&ListParams::default()).await?.items.len(),
            services.list(&ListParams::default()).await?.items.len(),
        );
        if found != (n, n) {
            bail!("expected {n} Deployments and {n} Services, found {found:?}");
        }
        Ok::<_, anyhow::Error>(Measured {
            total,
            created_in,
            latencies,
            operator_cpu,
            split,
            operator_counters,
            reconciles: per_agent(&reconciles_before, &reconciles, n),
            watches_before,
            watches_after,
            until_running: until_running.map(|(until, cpu, split, reconciles)| Settled {
                until,
                cpu,
                split,
                reconciles: per_agent(&reconciles_before, &reconciles, n),
            }),
            at_rest,
        })
    }
    .await;
    for task in [watch_deployments, watch_services, Some(watch_agents)]
        .into_iter()
        .flatten()
    {
        task.abort();
    }
    let rss = peak_rss_kib(operator_pid);
    let rss_split = rss_split_kib(operator_pid);
    let _ = child.kill();
    let _ = child.wait();
    let measured = outcome?;
    let operator_rate = n as f64 / measured.total.as_secs_f64();

    println!(
        "agents:                    {n} (creating {} at a time; operator concurrency {}; {} worker thread(s); {}; {}; {})",
        args.concurrency,
        args.operator_concurrency.map_or_else(
            || format!("{} (its default)", OperatorConfig::default().concurrency),
            |c| c.to_string()
        ),
        if args.operator_worker_threads == run::DEFAULT_WORKER_THREADS {
            format!("{} (the default)", args.operator_worker_threads)
        } else {
            args.operator_worker_threads.to_string()
        },
        if args.all_controllers {
            "every controller, probes off"
        } else {
            "the Agent controller alone"
        },
        if args.nodes > 0 {
            format!("full testbed with {} kwok node(s)", args.nodes)
        } else {
            "etcd + kube-apiserver only".to_owned()
        },
        if args.one_testbed {
            "one testbed, direct run first"
        } else {
            "a fresh testbed for each run"
        }
    );
    println!(
        "direct (API ceiling):      {:.2} s, {direct_rate:.1} agents/s ({:?})",
        direct_took.as_secs_f64(),
        args.baseline
    );
    println!(
        "operator:                  {:.2} s, {operator_rate:.1} agents/s (Agents created in {:.2} s; {} client)",
        measured.total.as_secs_f64(),
        measured.created_in.as_secs_f64(),
        client_stack(&args).name()
    );
    println!(
        "ratio operator/direct:     {:.2}",
        operator_rate / direct_rate
    );
    let latencies = &measured.latencies;
    println!(
        "time to children:          p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(latencies, 99.0).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    println!("CPU ms per agent, direct:   {}", cpu_line(&direct_cpu, n));
    println!(
        "CPU ms per agent, operator: {}",
        cpu_line(&measured.operator_cpu, n)
    );
    println!(
        "operator CPU per agent:     {}",
        split_line(measured.split, n)
    );
    if let Some(relative) = relative_to_apiserver(&measured.operator_cpu) {
        println!(
            "  per kube-apiserver CPU meanwhile: {:.2}% (both slow down together when the machine does: this reading compares runs made at different machine speeds)",
            relative * 100.0
        );
    }
    println!("operator reconciles/agent:  {}", measured.reconciles);
    println!(
        "API server work per agent, direct:   {}",
        direct_counters.join("; ")
    );
    println!(
        "API server work per agent, operator: {}",
        measured.operator_counters.join("; ")
    );
    println!(
        "watches the operator holds, by resource: {}",
        watches_line(&measured.watches_before, &measured.watches_after, "open")
    );
    println!(
        "WATCH requests ended meanwhile, by resource: {}",
        watches_line(&measured.watches_before, &measured.watches_after, "ended")
    );
    if let Some(settled) = &measured.until_running {
        println!(
            "until every Agent Running: {:.2} s after the first create",
            settled.until.as_secs_f64()
        );
        println!("  CPU ms per agent:         {}", cpu_line(&settled.cpu, n));
        println!(
            "  operator CPU per agent:   {}",
            split_line(settled.split, n)
        );
        println!("  operator reconciles/agent: {}", settled.reconciles);
    }
    match measured.at_rest {
        Some(cpu) => println!(
            "operator CPU at rest:      {:.2} ms per second over {} s, {n} Agents settled",
            cpu.as_secs_f64() * 1000.0 / AT_REST.as_secs_f64(),
            AT_REST.as_secs()
        ),
        None => println!("operator CPU at rest:      unavailable (no /proc)"),
    }
    match rss {
        Some(kib) => println!(
            "operator peak RSS (VmHWM): {:.1} MiB{}",
            kib as f64 / 1024.0,
            rss_split.map_or(String::new(), |(anon, file, shmem)| format!(
                " (at the end: {:.1} MiB heap and stacks, {:.1} MiB mapped files incl. code, {:.1} MiB shared)",
                anon as f64 / 1024.0,
                file as f64 / 1024.0,
                shmem as f64 / 1024.0
            ))
        ),
        None => println!("operator peak RSS:         unavailable (no /proc)"),
    }
    Ok(())
}

/// What the operator run measured.
struct Measured {
    total: Duration,
    created_in: Duration,
    latencies: Vec<Duration>,
    operator_cpu: BTreeMap<String, f64>,
    /// The operator's user and system CPU while the agents were completed.
    split: Option<(Duration, Duration)>,
    operator_counters: Vec<String>,
    reconciles: String,
    watches_before: BTreeMap<String, f64>,
    watches_after: BTreeMap<String, f64>,
    until_running: Option<Settled>,
    /// The operator's CPU (user + system) over [`AT_REST`] once every Agent had settled.
    at_rest: Option<Duration>,
}

/// How long the operator is watched at rest, its Agents settled, after the run.
const AT_REST: Duration = Duration::from_secs(10);

/// The run up to every Agent Running (with `--nodes`).
struct Settled {
    until: Duration,
    cpu: BTreeMap<String, f64>,
    split: Option<(Duration, Duration)>,
    reconciles: String,
}

/// `total (user + system)` in ms per agent.
fn split_line(split: Option<(Duration, Duration)>, n: usize) -> String {
    match split {
        Some((user, system)) => {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n.max(1) as f64;
            format!(
                "{:.2} ms ({:.2} user + {:.2} system)",
                ms(user + system),
                ms(user),
                ms(system)
            )
        }
        None => "unavailable (no /proc)".to_owned(),
    }
}

/// The operator's CPU over kube-apiserver's during the same run (`cpu`, by process). A shared
/// VM's speed varies by tens of percent from one run to the next and from day to day, and
/// both processes' CPU for the same work grows and shrinks with it; the API server's work per
/// Agent is the same in every run (the request and watch counts show it), so the quotient
/// compares runs made at different machine speeds. `None` without both figures.
fn relative_to_apiserver(cpu: &BTreeMap<String, f64>) -> Option<f64> {
    let operator = cpu.get("operator").copied()?;
    let apiserver = cpu.get("kube-apiserver").copied().filter(|s| *s > 0.0)?;
    Some(operator / apiserver)
}

/// Reconciles per agent by controller since `before`.
fn per_agent(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, n: usize) -> String {
    let line = after
        .iter()
        .filter_map(|(controller, value)| {
            let change = value - before.get(controller).copied().unwrap_or(0.0);
            (change > 0.0).then(|| format!("{controller} {:.2}", change / n.max(1) as f64))
        })
        .collect::<Vec<_>>()
        .join(", ");
    if line.is_empty() {
        "none".to_owned()
    } else {
        line
    }
}
