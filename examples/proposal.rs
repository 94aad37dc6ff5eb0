//! Proposals from the command line: approve or reject one under your own identity, or measure
//! what the T-gent admission webhook adds to the latency of creating a proposal.
//!
//! ```sh
//! cargo run --example proposal -- approve scale-b-gent -n kgents --comment "checked the budget"
//! cargo run --example proposal -- reject scale-b-gent -n kgents --reason "not this week"
//! cargo run --release --example proposal -- latency --clients 20 --seconds 30 --slices 6
//! cargo run --release --example proposal -- latency --rate 100
//! ```
//!
//! `approve` and `reject` write to the proposal's status subresource; the approver is who the
//! API server says you are (a SelfSubjectReview), not a name you type. A proposer's approval of
//! their own proposal does not count.
//!
//! `latency` starts a private control plane (the testbed; build it once with
//! `scripts/testbed-build`), then has N clients create proposals as fast as they can for the
//! given time, in a namespace the webhook does not see and in one it gates (failurePolicy Fail,
//! served by this process over TLS on 127.0.0.1, registered for that namespace only), in
//! alternating slices so that load from outside the measurement falls on both alike, and
//! prints p50/p99 of `create` for both and what the webhook adds. No proposal controller runs in either phase (proposals are only
//! created, never reconciled or executed), so the two phases carry the same other load: the API
//! server, etcd and the clients, all on this machine. It also prints what splits the added time:
//! the webhook's connections by protocol, its handler's own p50/p99, and the CPU time each
//! process (API server, etcd, the clients, the webhook on its own threads) spent per create.
//!
//! As fast as they can, the clients saturate the machine, and what the webhook adds then is
//! mostly lost capacity. `--rate R` drives creates open-loop at R per second instead (below
//! saturation): each create is started at its scheduled instant whether or not earlier ones
//! have finished, over a pool of `--clients` API clients, and its latency is counted from that
//! scheduled instant, so queueing shows in the figures rather than slowing the senders
//! (coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kgents::kgents_crds::Proposal;
use kgents::kgents_operator::admission::server::{CertificateSource, Endpoint, WebhookConfig};
use kgents::kgents_operator::{admission, proposal};
use kube::api::PostParams;
use kube::{Api, Client};

#[path = "support/measure.rs"]
mod measure;

#[derive(Parser, Debug)]
#[command(about = "Approve or reject a Proposal, or measure the admission webhook's latency.")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Approve a proposal as the authenticated user.
    Approve {
        /// The proposal's name.
        name: String,
        /// Its namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// A remark stored with the approval.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a proposal as the authenticated user.
    Reject {
        /// The proposal's name.
        name: String,
        /// Its namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Measure create latency with and without the webhook on a private control plane.
    Latency {
        /// Concurrent clients.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Seconds per phase (without and with the webhook).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Slices each phase is cut into, run alternately (without, with, without, …), so load
        /// from outside the measurement falls on both phases alike; 1 runs them one after the
        /// other.
        #[arg(long, default_value_t = 6)]
        slices: u32,
        /// Creates per second, started at fixed intervals whatever the completions (open loop,
        /// latency from the scheduled start); without it the clients create back to back.
        #[arg(long)]
        rate: Option<f64>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Args::parse().command {
        Command::Approve {
            name,
            namespace,
            comment,
        } => {
            let client = Client::try_default()
                .await
                .context("no usable kubeconfig")?;
            let who = proposal::approve(&client, &namespace, &name, comment.as_deref())
                .await
                .with_context(|| format!("approving proposal {namespace}/{name}"))?;
            println!("proposal {namespace}/{name} approved by {who}");
        }
        Command::Reject {
            name,
            namespace,
            reason,
        } => {
            let client = Client::try_default()
                .await
                .context("no usable kubeconfig")?;
            let who = proposal::reject(&client, &namespace, &name, reason.as_deref())
                .await
                .with_context(|| format!("rejecting proposal {namespace}/{name}"))?;
            println!("proposal {namespace}/{name} rejected by {who}");
        }
        Command::Latency {
            clients,
            seconds,
            slices,
            rate,
        } => {
            if let Some(rate) = rate {
                anyhow::ensure!(
                    rate.is_finite() && rate > 0.0,
                    "--rate must be a positive number of creates per second, not {rate}"
                );
            }
            latency(
                clients.max(1),
                Duration::from_secs(seconds),
                slices.max(1),
                rate,
            )
            .await?
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Name of the webhook runtime's threads (their CPU time is counted apart from the clients').
const WEBHOOK_THREAD: &str = "kgents-webhook";

/// CPU time (user + system) of a `/proc/.../stat` file, in clock ticks.
fn stat_ticks(path: &str) -> Option<u64> {
    measure::stat(std::path::Path::new(path)).map(|stat| stat.cpu_ticks)
}

/// CPU time (clock ticks) of this process's threads named `WEBHOOK_THREAD`, living or not: a
/// thread's ticks vanish from /proc when it exits, so the webhook runtime keeps its threads.
fn webhook_thread_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == WEBHOOK_THREAD)
        })
        .filter_map(|task| stat_ticks(&task.path().join("stat").to_string_lossy()))
        .sum()
}

/// CPU ticks per process of interest at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    apiserver: u64,
    etcd: u64,
    this_process: u64,
    webhook: u64,
}

fn cpu_sample(testbed: &kgents_testbed::Testbed) -> CpuSample {
    let mut sample = CpuSample {
        this_process: stat_ticks("/proc/self/stat").unwrap_or(0),
        webhook: webhook_thread_ticks(),
        ..CpuSample::default()
    };
    for (name, pid) in testbed.component_pids() {
        let ticks = stat_ticks(&format!("/proc/{pid}/stat")).unwrap_or(0);
        match name {
            "kube-apiserver" => sample.apiserver += ticks,
            "etcd" => sample.etcd += ticks,
            _ => {}
        }
    }
    sample
}

impl CpuSample {
    /// Adds the CPU time spent between `before` and `after`.
    fn add_interval(&mut self, before: CpuSample, after: CpuSample) {
        self.apiserver += after.apiserver.saturating_sub(before.apiserver);
        self.etcd += after.etcd.saturating_sub(before.etcd);
        self.this_process += after.this_process.saturating_sub(before.this_process);
        self.webhook += after.webhook.saturating_sub(before.webhook);
    }
}

/// CPU milliseconds per create, by process, of the CPU time `spent` over `creates`.
fn cpu_per_create(spent: CpuSample, creates: usize) -> String {
    // Linux reports CPU time in USER_HZ ticks, 100 per second on every mainstream platform.
    let per = |ticks: u64| ticks as f64 * 10.0 / creates.max(1) as f64;
    format!(
        "CPU ms/create: apiserver {:.2}, etcd {:.2}, clients {:.2}, webhook {:.2}",
        per(spent.apiserver),
        per(spent.etcd),
        per(spent.this_process.saturating_sub(spent.webhook)),
        per(spent.webhook),
    )
}

/// A LOW (scale) proposal named `name` by `proposer` against agent `agent`.
fn low_proposal(name: String, proposer: &str, agent: String) -> Proposal {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": name},
        "spec": {"proposer": proposer, "changeType": "AGENT_SCALE",
            "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": agent},
            "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":2}}"}},
    }))
    .expect("valid proposal")
}

/// How creates are driven in each slice.
#[derive(Debug, Clone, Copy)]
enum Load {
    /// `clients` tasks, each creating back to back.
    Saturate { clients: usize },
    /// `per_second` creates started at fixed intervals over a pool of `clients` API clients.
    Rate { clients: usize, per_second: f64 },
}

/// Runs one slice of `load` in `namespace` for `run`; the latencies and the failure count.
async fn drive(
    testbed: &kgents_testbed::Testbed,
    namespace: &str,
    proposer: &str,
    load: Load,
    run: Duration,
    tag: &str,
) -> Result<(Vec<Duration>, usize)> {
    match load {
        Load::Saturate { clients } => hammer(testbed, namespace, proposer, clients, run, tag).await,
        Load::Rate {
            clients,
            per_second,
        } => open_loop(testbed, namespace, proposer, clients, per_second, run, tag).await,
    }
}

/// Creates LOW proposals in `namespace` open-loop: the k-th is started at `start + k / rate`
/// (a late scheduler catches up at once rather than skipping), for `run`, over `clients` API
/// clients in turn. Latency runs from the scheduled instant, not the actual send, so a
/// backlog counts against the latency instead of quietly lowering the rate.
async fn open_loop(
    testbed: &kgents_testbed::Testbed,
    namespace: &str,
    proposer: &str,
    clients: usize,
    rate: f64,
    run: Duration,
    tag: &str,
) -> Result<(Vec<Duration>, usize)> {
    let mut apis: Vec<Api<Proposal>> = Vec::with_capacity(clients);
    for _ in 0..clients {
        apis.push(Api::namespaced(testbed.client().await?, namespace));
    }
    let count = (run.as_secs_f64() * rate).floor() as u64;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count as usize);
    for n in 0..count {
        let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(scheduled).await;
        let api = apis[n as usize % clients].clone();
        let proposal = low_proposal(
            format!("{tag}-{n}"),
            proposer,
            format!("agent-{}", n as usize % clients),
        );
        tasks.push(tokio::spawn(async move {
            api.create(&PostParams::default(), &proposal)
                .await
                .map(|_| scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failures = 0;
    for task in tasks {
        match task.await? {
            Ok(latency) => latencies.push(latency),
            Err(_) => failures += 1,
        }
    }
    latencies.sort();
    Ok((latencies, failures))
}

/// `clients` tasks creating LOW proposals in `namespace` for `run`; the sorted latencies.
async fn hammer(
    testbed: &kgents_testbed::Testbed,
    namespace: &str,
    proposer: &str,
    clients: usize,
    run: Duration,
    tag: &str,
) -> Result<(Vec<Duration>, usize)> {
    let mut tasks = Vec::new();
    for client_index in 0..clients {
        let api: Api<Proposal> = Api::namespaced(testbed.client().await?, namespace);
        let (proposer, tag) = (proposer.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            let deadline = Instant::now() + run;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let proposal = low_proposal(
                    format!("{tag}-{client_index}-{n}"),
                    &proposer,
                    format!("agent-{client_index}"),
                );
                n += 1;
                let started = Instant::now();
                match api.create(&PostParams::default(), &proposal).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (latencies, failed) = task.await?;
        all.extend(latencies);
        failures += failed;
    }
    all.sort();
    Ok((all, failures))
}

async fn latency(clients: usize, run: Duration, slices: u32, rate: Option<f64>) -> Result<()> {
    let load = match rate {
        Some(per_second) => Load::Rate {
            clients,
            per_second,
        },
        None => Load::Saturate { clients },
    };
    eprintln!("starting a private control plane ...");
    let testbed = kgents_testbed::Testbed::builder()
        .start()
        .await
        .context("starting the control plane (build it once with scripts/testbed-build)")?;
    testbed.install_crds(&kgents::kgents_crds::crds()).await?;
    let admin = testbed.client().await?;
    let proposer = proposal::whoami(&admin).await?;

    let plain = testbed.create_namespace("latency-plain").await?;
    let gated = testbed.create_namespace("latency-webhook").await?;
    let config = WebhookConfig {
        configuration_name: "kgents-proposals-latency".to_owned(),
        namespace: gated.clone(),
        secret_name: "kgents-webhook-tls".to_owned(),
        policy_config_map: None,
        bind: "127.0.0.1:0".parse()?,
        endpoint: Endpoint::Url {
            host: "127.0.0.1".to_owned(),
        },
        namespace_selector: Some(LabelSelector {
            match_labels: Some([("kubernetes.io/metadata.name".to_owned(), gated.clone())].into()),
            ..LabelSelector::default()
        }),
        watch_namespace: Some(gated.clone()),
        certificates: CertificateSource::Generated {
            validity: Duration::from_secs(30 * 86_400),
            renew_before: Duration::from_secs(7 * 86_400),
        },
        timeout_seconds: 3,
        remove_on_shutdown: true,
    };
    // The webhook (its informer, listener and handlers, and its own API client) runs on a
    // runtime of its own with a named thread, as in the operator's process
    // (`RunOptions::webhook_runtime`: one worker), so its CPU time can be told from the
    // clients'. The thread is kept alive for the whole run so its CPU time stays readable.
    let webhook_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(WEBHOOK_THREAD)
        .thread_keep_alive(Duration::from_secs(3_600))
        .enable_all()
        .build()?;
    let kubeconfig = testbed.kubeconfig_path().to_owned();
    let server = webhook_runtime
        .spawn(async move {
            let client = measure::client_from(&kubeconfig).await?;
            let ctx = kgents::kgents_operator::Context::new(client, Default::default());
            let health = Arc::new(kgents::kgents_operator::http::Health::new(
                kgents::kgents_operator::leader::LeaderState::always(),
            ));
            anyhow::Ok(admission::serve(&ctx, config, health).await?)
        })
        .await??;
    // Wait until the API server calls it: a dry-run CRITICAL proposal is denied.
    let api: Api<Proposal> = Api::namespaced(admin.clone(), &gated);
    let probe: Proposal = serde_json::from_value(serde_json::json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal", "metadata": {"name": "probe"},
        "spec": {"proposer": proposer, "changeType": "RISK_OVERRIDE", "target": {"kind": "Agent", "name": "x"}},
    }))?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(api.create(&dry_run, &probe).await, Err(kube::Error::Api(ref s)) if s.message.contains("T-gent"))
    {
        anyhow::ensure!(Instant::now() < deadline, "the webhook never took effect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The webhook is registered for the gated namespace only: creates in the plain namespace
    // never reach it, so both phases run with the same processes up (and the webhook's
    // informer only sees the gated phase's proposals, whose watch it needs).
    let stats_before = server.stats();
    let slice = run / slices;
    let (mut without, mut failed_without, mut cpu_without) = (Vec::new(), 0, CpuSample::default());
    let (mut with, mut failed_with, mut cpu_with) = (Vec::new(), 0, CpuSample::default());
    for index in 0..slices {
        let before = cpu_sample(&testbed);
        let (latencies, failed) = drive(
            &testbed,
            &plain,
            &proposer,
            load,
            slice,
            &format!("plain{index}"),
        )
        .await?;
        cpu_without.add_interval(before, cpu_sample(&testbed));
        without.extend(latencies);
        failed_without += failed;

        let before = cpu_sample(&testbed);
        let (latencies, failed) = drive(
            &testbed,
            &gated,
            &proposer,
            load,
            slice,
            &format!("gated{index}"),
        )
        .await?;
        cpu_with.add_interval(before, cpu_sample(&testbed));
        with.extend(latencies);
        failed_with += failed;
    }
    without.sort();
    with.sort();
    let stats = server.stats();
    webhook_runtime.spawn(server.shutdown()).await?;
    // A runtime may not be dropped from async code; it is shut down on a blocking thread.
    tokio::task::spawn_blocking(move || webhook_runtime.shutdown_timeout(Duration::from_secs(5)))
        .await?;

    let report = |label: &str, l: &[Duration], failed: usize| {
        println!(
            "{label:<16} {:>6} creates ({:>5.0}/s), {failed} failed, p50 {:>7.2} ms, p99 {:>7.2} ms",
            l.len(),
            l.len() as f64 / run.as_secs_f64(),
            percentile(l, 0.50).as_secs_f64() * 1e3,
            percentile(l, 0.99).as_secs_f64() * 1e3,
        )
    };
    let driven = match load {
        Load::Saturate { clients } => format!("{clients} clients back to back"),
        Load::Rate {
            clients,
            per_second,
        } => format!(
            "open loop at {per_second} creates/s over {clients} API clients, latency from the \
             scheduled start"
        ),
    };
    println!(
        "{driven}, {}s per phase in {slices} alternating slices of {:.1}s, LOW proposals; \
         no proposal controller in either phase (API server, etcd, clients and webhook share \
         this machine's cores in both)",
        run.as_secs(),
        slice.as_secs_f64(),
    );
    report("without webhook", &without, failed_without);
    println!(
        "                 {}",
        cpu_per_create(cpu_without, without.len())
    );
    report("with webhook", &with, failed_with);
    println!("                 {}", cpu_per_create(cpu_with, with.len()));
    println!(
        "webhook adds    p50 {:>7.2} ms, p99 {:>7.2} ms",
        (percentile(&with, 0.50).as_secs_f64() - percentile(&without, 0.50).as_secs_f64()) * 1e3,
        (percentile(&with, 0.99).as_secs_f64() - percentile(&without, 0.99).as_secs_f64()) * 1e3,
    );
    println!(
        "webhook server  {} reviews ({} in the run), handler p50 {:.1} µs, p99 {:.1} µs, max {:.2} ms; \
         TLS connections: {} HTTP/2, {} HTTP/1.1 ({} during the run), {} failed handshakes",
        stats.reviews,
        stats.reviews - stats_before.reviews,
        stats.handler_p50.as_secs_f64() * 1e6,
        stats.handler_p99.as_secs_f64() * 1e6,
        stats.handler_max.as_secs_f64() * 1e3,
        stats.connections_h2,
        stats.connections_http1,
        stats.connections() - stats_before.connections(),
        stats.failed_handshakes,
    );
    Ok(())
}
