//! `kgents mcp`: the `kgents-mcp` server over the connection and caller the global flags
//! describe (the kubeconfig's identity, or `--umwelt`'s affordances).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use kgents::kgents_core::clock::{Clock, SystemClock};
use kgents::kgents_cortex::cache::WatchCache;
use kgents::kgents_cortex::fanout::Hub;
use kgents::kgents_cortex::watch::Watches;
use kgents::kgents_ghost::snapshot::{AgentStatus, AgentSummary, ClusterStatus};
use kgents::kgents_logos::outcome::{
    MemorySummary, PheromoneRecord, ProposalRecord, UmweltSummary,
};
use kgents::kgents_logos::{
    ClusterActor, ClusterView, Error, Filter, KubeActor, Logos, Observed, Scope,
};
use kgents::kgents_mcp::{self, CancellationToken, HttpOptions, KgentsMcp, McpConfig};

use crate::cli::Global;
use crate::commands::Failure;
use crate::connect;

/// `kgents mcp`.
#[derive(Args, Debug)]
pub struct McpArgs {
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (e.g. 127.0.0.1:8765; port 0
    /// picks one). Beyond loopback a bearer token is required.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// List and serve the write tools (emit, propose, writing paths through invoke).
    #[arg(long)]
    pub allow_writes: bool,
    /// Byte cap of each rendering of a result (structured JSON, text).
    #[arg(long, default_value_t = kgents_mcp::server::DEFAULT_MAX_BYTES, value_name = "BYTES")]
    pub max_bytes: usize,
    /// Items per page when the client names no limit.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub page_size: usize,
    /// Seconds between polls of pheromones and proposals for change notifications (0: none).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub watch_interval: f64,
    /// A file holding the bearer token HTTP clients must send (else $KGENTS_MCP_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub bearer_token_file: Option<PathBuf>,
    /// A Host header accepted when bound beyond loopback (repeatable; default: any, since the
    /// token guards).
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn token(args: &McpArgs) -> Result<Option<String>, Failure> {
    if let Some(path) = &args.bearer_token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("--bearer-token-file {}: {e}", path.display())))?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(std::env::var("KGENTS_MCP_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

/// Reads from watch caches (kept by one watch per kgents kind, as the Cortex daemon keeps them)
/// once every kind is listed, so that a read at 10,000 pheromones costs no API call; from the
/// API until then, and for good when the API server refuses the cluster-wide watches (a user
/// who may read one namespace only).
struct WatchedOrLive {
    cache: Arc<WatchCache>,
    live: Arc<dyn ClusterView>,
}

impl WatchedOrLive {
    fn view(&self) -> &dyn ClusterView {
        if self.cache.listed() {
            self.cache.as_ref()
        } else {
            self.live.as_ref()
        }
    }
}

#[async_trait::async_trait]
impl ClusterView for WatchedOrLive {
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>, Error> {
        self.view().agents(filter).await
    }

    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>, Error> {
        self.view().agent(namespace, name).await
    }

    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>, Error> {
        self.view().pheromones(filter).await
    }

    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>, Error> {
        self.view().proposals(filter).await
    }

    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>, Error> {
        self.live.memories(filter).await
    }

    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>, Error> {
        self.live.umwelts(filter).await
    }

    async fn cluster(&self) -> Result<Observed<ClusterStatus>, Error> {
        self.live.cluster().await
    }
}

/// The server's view: [`WatchedOrLive`], its watches running until the returned sender is
/// dropped (or sends `true`).
fn watched_view(
    conn: &connect::Connection,
) -> (Arc<dyn ClusterView>, tokio::sync::watch::Sender<bool>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let live: Arc<dyn ClusterView> = Arc::new(connect::live_view(conn));
    let cache = Arc::new(WatchCache::new(Arc::clone(&clock), Some(Arc::clone(&live))));
    let watches = Watches {
        client: conn.client.clone(),
        cache: Arc::clone(&cache),
        // Nobody subscribes: the MCP server's change notifications read the Logos.
        hub: Arc::new(Hub::new(1)),
        store: None,
        live: Arc::clone(&live),
        clock,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(watches.run(stopped));
    (Arc::new(WatchedOrLive { cache, live }), stop)
}

/// Runs the server until the client goes away (stdio) or Ctrl+C.
pub async fn run(global: &Global, args: McpArgs) -> Result<u8, Failure> {
    if args.max_bytes < 1024 {
        return Err(usage(format!(
            "--max-bytes {} is below 1024",
            args.max_bytes
        )));
    }
    if !(1..=1000).contains(&args.page_size) {
        return Err(usage(format!(
            "--page-size {} is not from 1 to 1000",
            args.page_size
        )));
    }
    let watch_interval = Duration::try_from_secs_f64(args.watch_interval).map_err(|_| {
        usage(format!(
            "--watch-interval {} is not a number of seconds",
            args.watch_interval
        ))
    })?;
    // Zero turns the notifications off.
    let watch_interval = (!watch_interval.is_zero()).then_some(watch_interval);
    let token = token(&args)?;
    if let Some(addr) = args.http {
        // Refuse before connecting: a misconfiguration is reported at once.
        kgents_mcp::transport::check_http(addr, token.as_deref())
            .map_err(|e| usage(e.to_string()))?;
    }
    // No read timeout on the connection (the watches below are quiet for long); every read and
    // write still has its deadline (LiveView and KubeActor enforce it).
    let conn = connect::connect_with(global, true).await?;
    // Held until the server ends: dropping it stops the watches.
    let (view, _stop_watches) = watched_view(&conn);
    let actor = KubeActor::new(conn.client.clone(), conn.deadline);
    let caller = connect::caller(global, Some(&actor), &conn.namespace).await?;
    // Read-only means no writer at all: not even a path the checks missed could write.
    let writer = args
        .allow_writes
        .then(|| Arc::new(actor) as Arc<dyn ClusterActor>);
    let scope = if global.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(conn.namespace.clone())
    };
    let config = McpConfig {
        allow_writes: args.allow_writes,
        max_bytes: args.max_bytes,
        page_size: args.page_size,
        scope,
        watch_interval,
        ..McpConfig::default()
    };
    let mut logos = Logos::new(view, writer);
    if let Some(store) = crate::seance::local_witness(None).await {
        logos = logos.with_witness(store);
    }
    let server = KgentsMcp::new(logos, caller, config);
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let served = match args.http {
        None => kgents_mcp::serve_stdio(server, shutdown).await,
        Some(addr) => {
            let options = HttpOptions {
                addr,
                bearer_token: token,
                allowed_hosts: args.allowed_hosts,
            };
            kgents_mcp::serve_http(server, options, shutdown, |bound| {
                eprintln!("kgents mcp: serving http://{bound}/mcp");
            })
            .await
        }
    };
    served.map(|()| 0).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })
}
