//! `symbiont`: the sidecar in an agent pod. Serves the agent's memory, journal, Umwelt, safe
//! mode, pheromones and AGENTESE on localhost (see the kgents-symbiont crate).
//!
//! ```text
//! symbiont --memory-dir /var/lib/kgents/memory --memory-size 256Mi \
//!   --annotations /etc/kgents/podinfo/annotations \
//!   --namespace NS --agent NAME --umwelt UMWELT --umwelt-config-map UMWELT-umwelt
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use kgents_symbiont::limits::parse_quantity_bytes;
use kgents_symbiont::run::{ClusterConfig, Config, start};
use kgents_symbiont::store::StoreLimits;

#[derive(Debug, Parser)]
#[command(name = "symbiont", about = "The sidecar in every agent pod")]
struct Cli {
    /// Where to listen (loopback: only the pod's containers reach it).
    #[arg(long, env = "KGENTS_SYMBIONT_LISTEN", default_value = "127.0.0.1:7777")]
    listen: SocketAddr,
    /// The Memory's volume (the store is memory.redb inside it).
    #[arg(
        long,
        env = "KGENTS_MEMORY_DIR",
        default_value = "/var/lib/kgents/memory"
    )]
    memory_dir: PathBuf,
    /// The Memory's size limit (a quantity: 256Mi, 1Gi).
    #[arg(long, env = "KGENTS_MEMORY_SIZE", default_value = "256Mi")]
    memory_size: String,
    /// The largest value (a quantity).
    #[arg(long, env = "KGENTS_MAX_VALUE", default_value = "1Mi")]
    max_value: String,
    /// The downward-API file of the pod's annotations (safe mode).
    #[arg(
        long,
        env = "KGENTS_PODINFO_ANNOTATIONS",
        default_value = "/etc/kgents/podinfo/annotations"
    )]
    annotations: PathBuf,
    /// The Umwelt's runtime view as a file (instead of watching its ConfigMap).
    #[arg(long, env = "KGENTS_UMWELT_FILE")]
    umwelt_file: Option<PathBuf>,
    /// The Umwelt's ConfigMap to watch (`<umwelt>-umwelt`).
    #[arg(long, env = "KGENTS_UMWELT_CONFIG_MAP")]
    umwelt_config_map: Option<String>,
    /// The agent's namespace.
    #[arg(long, env = "KGENTS_NAMESPACE")]
    namespace: Option<String>,
    /// The agent's name.
    #[arg(long, env = "KGENTS_AGENT")]
    agent: Option<String>,
    /// The Umwelt whose affordances the agent has.
    #[arg(long, env = "KGENTS_UMWELT")]
    umwelt: Option<String>,
    /// The agent's Memory, whose status.sizeUsed and status.lastAccess the symbiont reports.
    #[arg(long, env = "KGENTS_MEMORY")]
    memory: Option<String>,
    /// Seconds between reports of the Memory's use (sent only when it changed).
    #[arg(long, env = "KGENTS_MEMORY_REPORT_SECONDS", default_value_t = 30)]
    report_seconds: u64,
    /// Serve memory, journal and safe mode only; no API server.
    #[arg(long, env = "KGENTS_SYMBIONT_NO_CLUSTER")]
    no_cluster: bool,
}

fn quantity(flag: &str, value: &str) -> anyhow::Result<u64> {
    parse_quantity_bytes(value).with_context(|| {
        format!("--{flag} {value:?} is not a quantity of bytes: write e.g. 256Mi or 1Gi")
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let limits = StoreLimits {
        size: quantity("memory-size", &cli.memory_size)?,
        max_value: usize::try_from(quantity("max-value", &cli.max_value)?)?,
    };
    let (cluster, client) = if cli.no_cluster {
        (None, None)
    } else {
        let (Some(agent), Some(umwelt)) = (cli.agent.clone(), cli.umwelt.clone()) else {
            bail!(
                "the symbiont needs --agent and --umwelt (or KGENTS_AGENT, KGENTS_UMWELT) to act for the agent; pass --no-cluster to serve memory only"
            );
        };
        let client = kube::Client::try_default()
            .await
            .context("no Kubernetes configuration (in-cluster or KUBECONFIG); pass --no-cluster to serve memory only")?;
        let namespace = cli
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        (
            Some(ClusterConfig {
                namespace,
                agent,
                umwelt,
                memory: cli.memory.clone(),
                report_every: std::time::Duration::from_secs(cli.report_seconds.max(1)),
            }),
            Some(client),
        )
    };
    let running = start(
        Config {
            listen: cli.listen,
            memory_dir: cli.memory_dir,
            limits,
            annotations_file: Some(cli.annotations),
            umwelt_file: cli.umwelt_file,
            umwelt_config_map: cli.umwelt_config_map,
            cluster,
        },
        client,
    )
    .await?;
    println!(
        "symbiont listening on http://{} (started in {} ms)",
        running.addr,
        started.elapsed().as_millis()
    );
    // The kubelet stops a sidecar with SIGTERM; every acknowledged write is already durable.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        served = running.task => served??,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
