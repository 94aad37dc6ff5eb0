//! `kgents terrarium`: connects like every other command, then hands the terminal to the
//! kgents-terrarium dashboard. Its data comes from the Cortex daemon when one runs (its socket
//! exists and it answers), else from its own watches; without a kubeconfig it shows the ghost
//! snapshots (read-only).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use kgents::kgents_core::clock::{Clock, SystemClock};
use kgents::kgents_ghost::{FsGhostStore, GhostStore};
use kgents::kgents_logos::{ClusterActor, KubeActor, Logos, Scope};
use kgents_terrarium::source::{ClusterFeed, Feed, GhostFeed};
use kgents_terrarium::terminal::{self, Options};
use kgents_terrarium::{App, Theme};

use crate::cli::Global;
use crate::commands::Failure;
use crate::connect;

/// Set while the dashboard owns the terminal: log lines written to stderr then would land in the
/// middle of the drawing, so they are dropped (the dashboard shows connection trouble itself).
static DRAWING: AtomicBool = AtomicBool::new(false);

/// The log writer of the process: stderr, or nothing while the dashboard draws.
pub fn log_writer() -> Box<dyn std::io::Write> {
    if DRAWING.load(Ordering::Relaxed) {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    }
}

/// `kgents terrarium`.
#[derive(Args, Debug)]
pub struct TerrariumArgs {
    /// No approvals or rejections from the dashboard.
    #[arg(long)]
    pub readonly: bool,
    /// The decay tick: how often intensities and ages are redrawn, in milliseconds (50–5000).
    #[arg(long, default_value_t = 333, value_name = "MS")]
    pub tick: u64,
    /// The witness store `time.witness.<agent>.replay` reads: a redb file (opened read-only,
    /// beside the operator writing it) or a postgres:// URL (default: as `kgents seance`).
    #[arg(long, env = "KGENTS_WITNESS_STORE", value_name = "PATH|URL")]
    pub witness_store: Option<String>,
}

/// Runs the dashboard until `q`.
pub async fn run(global: &Global, args: TerrariumArgs) -> Result<u8, Failure> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure {
            code: 2,
            message: "kgents terrarium draws on a terminal; run it in one (for scripts: kgents status, kgents get, kgents observe -w)".into(),
        });
    }
    if !(50..=5_000).contains(&args.tick) {
        return Err(Failure {
            code: 2,
            message: format!(
                "--tick {} is out of range: give 50 to 5000 milliseconds",
                args.tick
            ),
        });
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn GhostStore> = Arc::new(FsGhostStore::new(connect::ghost_root()?));
    let (feed, scope, context): (Box<dyn Feed>, Scope, Option<String>) =
        match connect::connect_with(global, true).await {
            Ok(conn) => {
                let scope = if global.all_namespaces {
                    Scope::All
                } else {
                    Scope::Namespace(conn.namespace.clone())
                };
                let actor = KubeActor::new(conn.client.clone(), conn.deadline);
                let caller = connect::caller(global, Some(&actor), &conn.namespace).await?;
                let writer: Option<Arc<dyn ClusterActor>> =
                    (!args.readonly).then(|| Arc::new(actor) as Arc<dyn ClusterActor>);
                let mut logos = Logos::new(Arc::new(connect::live_view(&conn)), writer);
                if let Some(store) =
                    crate::seance::local_witness(args.witness_store.as_deref()).await
                {
                    logos = logos.with_witness(store);
                }
                let mut feed = ClusterFeed::new(
                    conn.client,
                    scope.clone(),
                    Arc::new(logos),
                    caller,
                    Some(Arc::clone(&store)),
                    Arc::clone(&clock),
                );
                // A running Cortex daemon serves the data (one watch per kind for every
                // dashboard); it reads with its own identity, so only a person acting with
                // their own credentials is served by it.
                if global.umwelt.is_none()
                    && global.as_agent.is_none()
                    && let Ok(socket) = kgents::kgents_cortex::socket::default_path()
                    && std::fs::symlink_metadata(&socket).is_ok()
                {
                    feed = feed.with_cortex(socket);
                }
                (Box::new(feed), scope, global.context.clone())
            }
            Err(error) => {
                let scope = match (&global.namespace, global.all_namespaces) {
                    (Some(ns), false) => Scope::Namespace(ns.clone()),
                    _ => Scope::All,
                };
                let feed = GhostFeed {
                    store,
                    clock: Arc::clone(&clock),
                    scope: scope.clone(),
                    reason: error.to_string(),
                };
                (Box::new(feed), scope, None)
            }
        };
    let mut app = App::new(clock.now(), scope, args.readonly);
    app.context = context;
    let options = Options {
        tick: Duration::from_millis(args.tick),
        theme: Theme::from_env(),
    };
    DRAWING.store(true, Ordering::Relaxed);
    let result = terminal::run(app, feed, clock, options).await;
    DRAWING.store(false, Ordering::Relaxed);
    result.map_err(|error| Failure {
        code: 1,
        message: format!("the terminal: {error}"),
    })?;
    Ok(0)
}
