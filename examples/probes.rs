//! Overhead of cognitive probes (a measurement, not a test).
//!
//! ```sh
//! scripts/testbed-build     # once
//! cargo run --release --example probes -- --agents 100 --seconds 150
//! cargo run --release --example probes -- --agents 100 --seconds 150 --compare-without-probes
//! ```
//!
//! On a private control plane (etcd, kube-apiserver, controller-manager, scheduler and kwok
//! nodes from the testbed), this program starts a fake OpenAI-compatible model that answers
//! every probe correctly, runs the operator (the Agent controller and the cognitive runner) as
//! a separate process (this binary re-executed with `--operator`), creates N Agents with
//! `health.type: COGNITIVE_PROBE` and the default interval (30 s) whose model is the fake,
//! waits until every agent is HEALTHY, and then measures for a fixed window:
//!
//! - model **calls per agent per hour** (counted by the fake),
//! - the operator process's **CPU seconds per agent per hour** (user + system time from
//!   `/proc/<pid>/stat`, so only the operator is counted, not the fake or the control plane),
//! - CPU per probe call, the runner's status writes in the window (from `/metrics`), and
//! - the operator's **peak RSS** (`VmHWM`).
//!
//! With `--compare-without-probes` the operator is then restarted with probes disabled and
//! measured over the same window with the same agents, so the probes' share of the CPU can be
//! told from the controllers' idle cost.
//!
//! With `--round-cpu ROUNDS` it measures instead, in this one process and without a cluster,
//! the CPU one probe round costs: the real OpenAI-compatible client over loopback HTTP (one
//! shared transport, as the operator's runner has) asks the fake model, the probe judges the
//! answer and a health tracker takes the verdict, round after round through the three probes.
//! The fake answers in the same process, so the figure includes the server's side and is an
//! upper bound:
//!
//! ```sh
//! cargo run --release --example probes -- --round-cpu 2000
//! ```

// The fake model is shared with the operator's testbed tests.
#[path = "../kgents-operator/tests/support_cognitive/fake_model.rs"]
mod fake_model;
#[path = "support/measure.rs"]
mod measure;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kgents::kgents_crds::Agent;
use kgents::kgents_crds::agent::CognitiveHealth;
use kgents::kgents_operator::{OperatorConfig, ProbeConfig, agent, cognitive};
use kgents::kgents_probes::{
    Challenge, EchoProbe, HealthTracker, JsonProbe, Operation, Probe, ProbeKind, ProbeRunner,
    ReasoningProbe, RunnerConfig, TrackerConfig, Verdict,
};
use kube::Api;
use kube::api::{ListParams, PostParams};

use fake_model::{FakeModel, Wire};
use measure::{
    ClientStack, cpu_time, http_get, metric_sum, peak_rss_kib, run_operator, ticks_per_second,
    wait_ready,
};

const NAMESPACE: &str = "probes-overhead";
const API_KEY: &str = "sk-overhead-fake";

#[derive(Parser, Debug)]
#[command(about = "Probe overhead per agent: model calls and operator CPU per agent-hour.")]
struct Args {
    /// Number of probing Agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Length of the measurement window, in seconds.
    #[arg(long, default_value_t = 150)]
    seconds: u64,
    /// Pods per agent (each gets the readiness-gate condition the runner sets).
    #[arg(long, default_value_t = 1)]
    replicas: i32,
    /// `spec.health.intervalSeconds` (unset: the CRD default, 30 s).
    #[arg(long)]
    interval: Option<i32>,
    /// Also measure the operator with probes disabled over the same agents and window.
    #[arg(long)]
    compare_without_probes: bool,
    /// Measure instead the CPU of this many probe rounds in process (no cluster), and print it.
    #[arg(long, value_name = "ROUNDS")]
    round_cpu: Option<u64>,
    /// Internal: run as the operator process.
    #[arg(long, hide = true)]
    operator: bool,
    /// Internal (with --operator): kubeconfig of the control plane.
    #[arg(long, hide = true)]
    kubeconfig: Option<PathBuf>,
    /// Internal (with --operator): address of /metrics and /readyz.
    #[arg(long, hide = true)]
    http_addr: Option<SocketAddr>,
    /// Internal (with --operator): run without the cognitive probes.
    #[arg(long, hide = true)]
    no_probes: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    if args.operator {
        runtime.block_on(operator_process(args))
    } else if let Some(rounds) = args.round_cpu {
        runtime.block_on(round_cpu(rounds))
    } else {
        runtime.block_on(measure(args))
    }
}

/// The operator: the Agent controller and the cognitive runner for [`NAMESPACE`].
async fn operator_process(args: Args) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = OperatorConfig {
        namespace: Some(NAMESPACE.to_owned()),
        probes: ProbeConfig {
            enabled: !args.no_probes,
            ..ProbeConfig::default()
        },
        ..OperatorConfig::default()
    };
    run_operator(
        args.kubeconfig,
        config,
        args.http_addr,
        &[agent::CONTROLLER, cognitive::CONTROLLER],
        ClientStack::Trimmed,
    )
    .await
}

/// A running operator process.
struct OperatorProcess {
    child: std::process::Child,
    http: SocketAddr,
}

impl OperatorProcess {
    async fn start(kubeconfig: &std::path::Path, probes: bool) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let http = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .arg("--operator")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--http-addr")
            .arg(http.to_string());
        if !probes {
            command.arg("--no-probes");
        }
        let child = command.spawn().context("starting the operator process")?;
        let process = OperatorProcess { child, http };
        wait_ready(http, Duration::from_secs(60)).await?;
        Ok(process)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn metrics(&self) -> String {
        http_get(self.http, "/metrics").await.unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one window measured.
struct Window {
    seconds: f64,
    calls: usize,
    cpu: Duration,
    status_writes: f64,
    peak_rss_kib: Option<u64>,
}

async fn measure_window(
    operator: &OperatorProcess,
    fake: &FakeModel,
    window: Duration,
    ticks: f64,
) -> Result<Window> {
    let writes_before = metric_sum(
        &operator.metrics().await,
        "kgents_probe_status_writes_total",
    );
    let calls_before = fake.total_calls();
    let cpu_before = cpu_time(operator.pid(), ticks)?;
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let cpu_after = cpu_time(operator.pid(), ticks)?;
    let seconds = start.elapsed().as_secs_f64();
    let calls = fake.total_calls() - calls_before;
    let writes_after = metric_sum(
        &operator.metrics().await,
        "kgents_probe_status_writes_total",
    );
    Ok(Window {
        seconds,
        calls,
        cpu: cpu_after.saturating_sub(cpu_before),
        status_writes: writes_after - writes_before,
        peak_rss_kib: peak_rss_kib(operator.pid()),
    })
}

fn report(label: &str, agents: usize, window: &Window) {
    let agent_hours = agents as f64 * window.seconds / 3600.0;
    println!("{label}:");
    println!(
        "  window                 {:.1} s, {agents} agents ({agent_hours:.2} agent-hours)",
        window.seconds
    );
    println!(
        "  model calls            {} ({:.1} per agent per hour)",
        window.calls,
        window.calls as f64 / agent_hours
    );
    println!(
        "  operator CPU           {:.2} s ({:.3} CPU-s per agent per hour, {:.2} ms per call)",
        window.cpu.as_secs_f64(),
        window.cpu.as_secs_f64() / agent_hours,
        if window.calls > 0 {
            window.cpu.as_secs_f64() * 1000.0 / window.calls as f64
        } else {
            0.0
        }
    );
    println!("  status writes (runner) {:.0}", window.status_writes);
    match window.peak_rss_kib {
        Some(kib) => println!("  operator peak RSS      {:.1} MiB", kib as f64 / 1024.0),
        None => println!("  operator peak RSS      unknown"),
    }
}

async fn measure(args: Args) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = args.agents;
    eprintln!("starting the control plane with 2 fake nodes ...");
    let testbed = kgents_testbed::Testbed::builder()
        .with_nodes(2)
        .start()
        .await
        .context("starting the testbed (build it once with scripts/testbed-build)")?;
    testbed.install_crds(&kgents::kgents_crds::crds()).await?;
    let client = testbed.client().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NAMESPACE.to_owned());
    namespaces.create(&PostParams::default(), &ns).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "model-key"},
                "stringData": {"apiKey": API_KEY},
            }))?,
        )
        .await?;
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let ticks = ticks_per_second();

    eprintln!("starting the operator process ...");
    let operator = OperatorProcess::start(testbed.kubeconfig_path(), true).await?;
    eprintln!("creating {n} probing agents ...");
    let agents: Api<Agent> = Api::namespaced(client.clone(), NAMESPACE);
    let mut health = serde_json::json!({"type": "COGNITIVE_PROBE"});
    if let Some(interval) = args.interval {
        health["intervalSeconds"] = interval.into();
    }
    futures::stream::iter(0..n)
        .map(|i| {
            let agents = agents.clone();
            let health = health.clone();
            let endpoint = fake.endpoint();
            async move {
                let name = format!("agent-{i:04}");
                let spec = serde_json::json!({
                    "genus": "B",
                    "replicas": args.replicas,
                    "model": {"provider": "openai", "name": name, "endpoint": endpoint,
                              "secretRef": {"name": "model-key", "key": "apiKey"}},
                    "health": health,
                });
                agents
                    .create(
                        &PostParams::default(),
                        &Agent::new(&name, serde_json::from_value(spec)?),
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;

    let warm_up = Instant::now();
    loop {
        let list = agents.list(&ListParams::default()).await?;
        let healthy = list
            .items
            .iter()
            .filter(|a| {
                a.status.as_ref().and_then(|s| s.cognitive_health) == Some(CognitiveHealth::Healthy)
            })
            .count();
        if healthy == n {
            break;
        }
        if warm_up.elapsed() > Duration::from_secs(900) {
            bail!("only {healthy} of {n} agents became HEALTHY within 15 minutes");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!(
        "all {n} agents HEALTHY after {:.0} s; measuring for {} s ...",
        warm_up.elapsed().as_secs_f64(),
        args.seconds
    );
    let window = Duration::from_secs(args.seconds);
    let probing = measure_window(&operator, &fake, window, ticks).await?;
    drop(operator);
    report("with cognitive probes", n, &probing);

    if args.compare_without_probes {
        eprintln!("restarting the operator without probes ...");
        let operator = OperatorProcess::start(testbed.kubeconfig_path(), false).await?;
        // Let the restart's initial reconcile of every agent pass before measuring.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let idle = measure_window(&operator, &fake, window, ticks).await?;
        drop(operator);
        report("without probes (same agents)", n, &idle);
        let agent_hours = n as f64 * probing.seconds / 3600.0;
        let idle_rate = idle.cpu.as_secs_f64() / idle.seconds;
        let probe_cpu = probing.cpu.as_secs_f64() - idle_rate * probing.seconds;
        println!(
            "probes' share: {:.3} CPU-s per agent per hour",
            probe_cpu / agent_hours
        );
    }
    Ok(())
}

/// A fresh challenge of `kind` for round `round`: varied values from a mixing function (the fake
/// model works out every answer, so they need not be unguessable here, only different).
fn challenge(kind: ProbeKind, round: u64) -> Challenge {
    // SplitMix64: a different, well-spread value for every round.
    let mut z = round.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    match kind {
        ProbeKind::Echo => {
            const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
            let nonce = (0..10)
                .map(|i| char::from(ALPHABET[((z >> (i * 6)) % ALPHABET.len() as u64) as usize]))
                .collect();
            Challenge::Echo { nonce }
        }
        ProbeKind::Reasoning => Challenge::Reasoning {
            operation: if z & 1 == 0 {
                Operation::Sum
            } else {
                Operation::Product
            },
            lhs: 100 + (z >> 8) as u32 % 900,
            rhs: 12 + (z >> 24) as u32 % 88,
        },
        _ => Challenge::Json {
            nonce: 100_000_000 + (z >> 16) % 900_000_000,
        },
    }
}

/// `--round-cpu`: the CPU of `rounds` probe rounds in this process, client and fake server.
async fn round_cpu(rounds: u64) -> Result<()> {
    anyhow::ensure!(rounds > 0, "--round-cpu needs at least one round");
    let fake = FakeModel::start(Wire::OpenAi, API_KEY).await;
    let endpoint = fake.endpoint();
    let config = kgents_llm::ModelConfig::from_parts(
        "openai",
        Some("round-cpu"),
        Some(&endpoint),
        Some(API_KEY.to_owned().into()),
    )?;
    let transport = kgents_llm::SharedTransport::new(Duration::from_secs(5))?;
    let client = kgents_llm::build_client_shared(
        &config,
        &kgents_llm::RuntimeOptions::default(),
        &transport,
    )?;
    let runner = ProbeRunner::new(
        Arc::new(kgents::kgents_logos::TokioTimer),
        RunnerConfig::default(),
    )?;
    let probes: [(ProbeKind, Box<dyn Probe>); 3] = [
        (ProbeKind::Echo, Box::new(EchoProbe::new(client.clone()))),
        (
            ProbeKind::Reasoning,
            Box::new(ReasoningProbe::new(client.clone())),
        ),
        (ProbeKind::Json, Box::new(JsonProbe::new(client))),
    ];
    let mut tracker = HealthTracker::new(TrackerConfig::default())?;
    let ticks = ticks_per_second();
    let pid = std::process::id();
    let started_cpu = cpu_time(pid, ticks)?;
    let started = Instant::now();
    for round in 0..rounds {
        let (kind, probe) = &probes[(round % 3) as usize];
        let outcome = runner
            .run_challenge(probe.as_ref(), challenge(*kind, round))
            .await?;
        if outcome.verdict() != Verdict::Healthy {
            bail!(
                "round {round} ({kind:?}) was {:?}: {}",
                outcome.verdict(),
                outcome.reason()
            );
        }
        tracker.observe(&outcome);
    }
    let cpu = cpu_time(pid, ticks)?.saturating_sub(started_cpu);
    let wall = started.elapsed();
    let per_round = cpu / u32::try_from(rounds).context("--round-cpu fits in 32 bits")?;
    println!(
        "{rounds} probe rounds: {cpu:?} CPU ({per_round:?} a round, client and server), \
         {wall:?} wall; at the default 30 s interval an agent costs 120 rounds an hour = \
         {:?} CPU an hour",
        per_round * 120
    );
    anyhow::ensure!(
        fake.total_calls() as u64 == rounds,
        "the fake model counted {} calls for {rounds} rounds",
        fake.total_calls()
    );
    Ok(())
}
