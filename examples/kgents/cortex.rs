//! `kgents cortex serve`: the Cortex daemon (`kgents-cortex`) over the kubeconfig's connection,
//! on a Unix socket (`--socket`, else `$KGENTS_CORTEX_SOCKET`, else `~/.kgents/cortex.sock`),
//! keeping the ghost cache (`$KGENTS_GHOST_DIR`, else `~/.kgents/ghost`) warm.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use kgents::kgents_cortex::daemon::{self, Options};
use kgents::kgents_cortex::fanout::DEFAULT_CAPACITY;
use kgents::kgents_cortex::socket;

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
    /// Also serve plain-text gRPC on this loopback address (e.g. 127.0.0.1:50051; port 0 picks
    /// one).
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
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

async fn run_daemon(
    global: &Global,
    args: ServeArgs,
    socket: PathBuf,
    ghost_root: Option<PathBuf>,
) -> Result<u8, Failure> {
    // No read timeout on the connection: a quiet watch is not an error. Every read and write the
    // daemon makes still has its deadline (LiveView and KubeActor enforce it).
    let conn = connect::connect_with(global, true).await?;
    let options = Options {
        socket,
        tcp: args.tcp,
        metrics: args.metrics,
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
            eprintln!(
                "kgents cortex: serving unix:{}{tcp}{metrics}",
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
            Error::AlreadyRunning { .. } | Error::NotASocket { .. } | Error::NoSocketPath => 2,
            _ => 1,
        };
        failure(code, e.to_string())
    })
}
