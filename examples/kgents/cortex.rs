//! `kgents cortex serve`: the Cortex daemon (`kgents-cortex`) over the kubeconfig's connection,
//! on a Unix socket (`--socket`, else `$KGENTS_CORTEX_SOCKET`, else `~/.kgents/cortex.sock`),
//! keeping the ghost cache (`$KGENTS_GHOST_DIR`, else `~/.kgents/ghost`) warm; optionally on
//! TCP (TLS and a bearer token off loopback) and with a model behind the `concept.*` paths
//! (`--model-provider`/`--model`/`--model-endpoint`, else the `KGENTS_MODEL_*` environment).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use kgents::kgents_cortex::auth::{BearerToken, TlsFiles};
use kgents::kgents_cortex::daemon::{self, Options};
use kgents::kgents_cortex::fanout::DEFAULT_CAPACITY;
use kgents::kgents_cortex::socket;
use kgents::kgents_logos::{ConceptModel, ConceptOptions};

use crate::cli::Global;
use crate::commands::Failure;
use crate::connect;

/// `kgents cortex`.
#[derive(Subcommand, Debug)]
pub enum CortexCommand {
    /// Run the daemon until Ctrl+C (or SIGTERM).
    Serve(ServeArgs),
}

/// `kgents cortex serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The Unix socket (else $KGENTS_CORTEX_SOCKET, else ~/.kgents/cortex.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also serve gRPC on this TCP address (port 0 picks one): plain text on loopback
    /// (127.0.0.1:50051), any other address only with --tls-cert, --tls-key and a token.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,
    /// The TCP listener's TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TCP listener's TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The bearer token TCP clients must send (else $KGENTS_CORTEX_TOKEN); health stays open.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The model behind concept.* (else $KGENTS_MODEL_PROVIDER): anthropic, openai,
    /// openrouter, ollama or claude-cli; the key comes from $KGENTS_MODEL_API_KEY or the
    /// provider's own variable.
    #[arg(long, value_name = "PROVIDER")]
    pub model_provider: Option<String>,
    /// The model's name (else $KGENTS_MODEL).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// The model's endpoint (else $KGENTS_MODEL_ENDPOINT).
    #[arg(long, value_name = "URL")]
    pub model_endpoint: Option<String>,
    /// The daily model-token budget of a caller whose Umwelt sets none (the daemon's own
    /// callers included); unlimited when not given.
    #[arg(long, value_name = "TOKENS")]
    pub token_budget: Option<u64>,
    /// How long one model answer may take, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub model_timeout: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Serve gRPC health alone, in plain text, on this address (kubelet's gRPC probes speak
    /// neither TLS nor a token; health tells nothing about the cluster).
    #[arg(long, value_name = "ADDR")]
    pub health: Option<SocketAddr>,
    /// Each Observe subscriber's buffer, in changes; a subscriber that falls this far behind is
    /// ended with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = DEFAULT_CAPACITY, value_name = "N")]
    pub buffer: usize,
    /// Do not write the ghost snapshots.
    #[arg(long)]
    pub no_ghost: bool,
    /// The witness store `time.witness.<agent>.replay` reads: a redb file (opened read-only,
    /// beside the operator writing it) or a postgres:// URL (default: as `kgents seance`).
    #[arg(long, env = "KGENTS_WITNESS_STORE", value_name = "PATH|URL")]
    pub witness_store: Option<String>,
}

fn failure(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Runs a `kgents cortex` command.
pub async fn run(global: &Global, command: CortexCommand) -> Result<u8, Failure> {
    match command {
        CortexCommand::Serve(args) => serve(global, args).await,
    }
}

async fn serve(global: &Global, args: ServeArgs) -> Result<u8, Failure> {
    if !(1..=1_000_000).contains(&args.buffer) {
        return Err(failure(
            2,
            format!("--buffer {} is not from 1 to 1000000", args.buffer),
        ));
    }
    let socket = match args.socket.clone() {
        Some(path) => path,
        None => socket::default_path().map_err(|e| failure(2, e.to_string()))?,
    };
    let ghost_root = if args.no_ghost {
        None
    } else {
        Some(connect::ghost_root()?)
    };
    // The CLI's runtime has one thread, right for a one-shot command; the daemon serves many
    // clients and fans out to its subscribers, so it runs on a runtime with a worker per core
    // (on a thread of its own: a runtime cannot be started inside another).
    let global = global.clone();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kgents-cortex".into())
        .spawn(move || {
            let served = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(run_daemon(&global, args, socket, ghost_root)),
                Err(e) => Err(failure(1, format!("starting the daemon's runtime: {e}"))),
            };
            let _ = done.send(served);
        })
        .map_err(|e| failure(1, format!("starting the daemon's thread: {e}")))?;
    result
        .await
        .unwrap_or_else(|_| Err(failure(1, "the daemon's thread ended without an answer")))
}

/// The model from the flags, else the environment; none when neither names a provider.
fn model(args: &ServeArgs) -> Result<Option<Arc<ConceptModel>>, Failure> {
    model_from(
        [
            args.model_provider.clone(),
            args.model.clone(),
            args.model_endpoint.clone(),
        ],
        ConceptOptions {
            deadline: Duration::from_secs(args.model_timeout.max(1)),
            default_budget: args.token_budget,
            ..ConceptOptions::default()
        },
    )
}

/// The model the environment names (`KGENTS_MODEL_PROVIDER`, ...), for the CLI's own Logos;
/// none when no provider is set.
pub(crate) fn model_from_env() -> Result<Option<Arc<ConceptModel>>, Failure> {
    model_from([None, None, None], ConceptOptions::default())
}

/// The model from `[provider, name, endpoint]` flags, each else its environment variable.
fn model_from(
    flags: [Option<String>; 3],
    options: ConceptOptions,
) -> Result<Option<Arc<ConceptModel>>, Failure> {
    use kgents::kgents_llm::config::{ENV_ENDPOINT, ENV_MODEL, ENV_PROVIDER};
    let [provider, model, endpoint] = flags;
    let flag = |name: &str| match name {
        ENV_PROVIDER => provider.clone(),
        ENV_MODEL => model.clone(),
        ENV_ENDPOINT => endpoint.clone(),
        _ => None,
    };
    let lookup = |name: &str| flag(name).or_else(|| std::env::var(name).ok());
    if lookup(ENV_PROVIDER).is_none_or(|p| p.trim().is_empty()) {
        return Ok(None);
    }
    let config = kgents::kgents_llm::ModelConfig::from_env_with(lookup)
        .map_err(|e| failure(2, format!("the concept.* model: {e}")))?;
    let client = kgents::kgents_llm::build_client(&config)
        .map_err(|e| failure(2, format!("the concept.* model: {e}")))?;
    let name = format!(
        "{}/{}",
        config.provider().as_str(),
        config.model().unwrap_or("default")
    );
    Ok(Some(Arc::new(ConceptModel::new(client, name, options))))
}

async fn run_daemon(
    global: &Global,
    args: ServeArgs,
    socket: PathBuf,
    ghost_root: Option<PathBuf>,
) -> Result<u8, Failure> {
    // No read timeout on the connection: a quiet watch is not an error. Every read and write the
    // daemon makes still has its deadline (LiveView and KubeActor enforce it).
    let conn = connect::connect_with(global, true).await?;
    let token = match &args.token_file {
        Some(path) => Some(BearerToken::from_file(path).map_err(|e| failure(2, e.to_string()))?),
        None => BearerToken::from_env().map_err(|e| failure(2, e.to_string()))?,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let model = model(&args)?;
    let options = Options {
        socket,
        tcp: args.tcp,
        tls,
        token,
        model,
        metrics: args.metrics,
        health: args.health,
        ghost_root,
        buffer: args.buffer,
        deadline: conn.deadline,
        witness: crate::seance::local_witness(args.witness_store.as_deref()).await,
    };
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(term) => { term.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    };
    daemon::serve(
        conn.client,
        options,
        |listening| {
            let tcp = listening
                .tcp
                .map(|a| format!(" and tcp {a}"))
                .unwrap_or_default();
            let metrics = listening
                .metrics
                .map(|a| format!(" (metrics at http://{a}/metrics)"))
                .unwrap_or_default();
            let health = listening
                .health
                .map(|a| format!(" (health at {a})"))
                .unwrap_or_default();
            eprintln!(
                "kgents cortex: serving unix:{}{tcp}{metrics}{health}",
                listening.socket.display()
            );
        },
        shutdown,
    )
    .await
    .map(|()| 0)
    .map_err(|e| {
        use kgents::kgents_cortex::Error;
        let code = match e {
            Error::AlreadyRunning { .. }
            | Error::NotASocket { .. }
            | Error::NoSocketPath
            | Error::Auth(_) => 2,
            _ => 1,
        };
        failure(code, e.to_string())
    })
}
