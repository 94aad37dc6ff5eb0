//! The whole daemon over a kube client: binds the socket, starts the watches, serves the
//! Cortex until shutdown. `kgents cortex serve` only parses flags and calls [`serve`]; another
//! Rust service can embed the daemon the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kgents_core::clock::{Clock, SystemClock};
use kgents_ghost::{FsGhostStore, GhostStore};
use kgents_logos::{ClusterActor, ClusterView, ConceptModel, KubeActor, LiveView, Logos};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};

use crate::auth::{self, BearerToken, TlsFiles, TokenCheck};
use crate::cache::WatchCache;
use crate::error::{Error, Result};
use crate::fanout::{DEFAULT_CAPACITY, Hub};
use crate::server::{self, CortexService};
use crate::socket;
use crate::watch::Watches;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Unix socket.
    pub socket: PathBuf,
    /// Also serve gRPC on this TCP address: plain text on loopback, else only with `tls` and
    /// `token` (see [`crate::auth::check_exposure`]).
    pub tcp: Option<SocketAddr>,
    /// TLS on the TCP listener.
    pub tls: Option<TlsFiles>,
    /// The bearer token every TCP request but health must carry.
    pub token: Option<BearerToken>,
    /// The model behind the `concept.*` paths (none: they answer "no model configured").
    pub model: Option<Arc<ConceptModel>>,
    /// Serve the Prometheus metrics at `http://ADDR/metrics`.
    pub metrics: Option<SocketAddr>,
    /// Serve gRPC health alone, in plain text, on this address (for kubelet's gRPC probes).
    pub health: Option<SocketAddr>,
    /// The ghost cache to keep warm (none: no snapshots written).
    pub ghost_root: Option<PathBuf>,
    /// Each `Observe` subscriber's buffer, in changes.
    pub buffer: usize,
    /// The deadline of each API call the daemon makes.
    pub deadline: Duration,
    /// The witness store `time.witness.<agent>.replay` reads (none: not served, said so).
    pub witness: Option<Arc<dyn kgents_seance::WitnessStore>>,
}

impl Options {
    /// Defaults at `socket`: no TCP, no ghost writes, the default buffer, 5 s deadlines.
    pub fn new(socket: PathBuf) -> Options {
        Options {
            socket,
            tcp: None,
            tls: None,
            token: None,
            model: None,
            metrics: None,
            health: None,
            ghost_root: None,
            buffer: DEFAULT_CAPACITY,
            deadline: kgents_logos::live::DEFAULT_DEADLINE,
            witness: None,
        }
    }
}

/// Where the daemon listens, once it does.
#[derive(Debug, Clone)]
pub struct Listening {
    /// The Unix socket.
    pub socket: PathBuf,
    /// The TCP address bound, if any.
    pub tcp: Option<SocketAddr>,
    /// The metrics address bound, if any.
    pub metrics: Option<SocketAddr>,
    /// The health-only address bound, if any.
    pub health: Option<SocketAddr>,
}

/// Runs the daemon until `shutdown` resolves; `ready` is called once it listens.
///
/// # Errors
/// The socket cannot be bound (another daemon, something else in the way), a non-loopback
/// TCP address without TLS and a token, unusable TLS files, or the transport failing.
pub async fn serve(
    client: kube::Client,
    options: Options,
    ready: impl FnOnce(&Listening),
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    if let Some(addr) = options.tcp {
        auth::check_exposure(addr, options.tls.is_some(), options.token.is_some())
            .map_err(Error::Auth)?;
    }
    // Read before anything is bound: a bad file is reported at once.
    let tls = options.tls.as_ref().map(auth::server_tls).transpose()?;
    let (listener, socket_file) = socket::bind(&options.socket)?;
    let tcp = match options.tcp {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("binding {addr}"), e))?,
        ),
        None => None,
    };
    let metrics_listener = match options.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("binding the metrics address {addr}"), e))?,
        ),
        None => None,
    };
    let health_listener = match options.health {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("binding the health address {addr}"), e))?,
        ),
        None => None,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let live: Arc<dyn ClusterView> = Arc::new(LiveView::new(client.clone(), options.deadline));
    let actor: Arc<dyn ClusterActor> = Arc::new(KubeActor::new(client.clone(), options.deadline));
    let cache = Arc::new(WatchCache::new(Arc::clone(&clock), Some(Arc::clone(&live))));
    let hub = Arc::new(Hub::new(options.buffer));
    let store = options
        .ghost_root
        .clone()
        .map(|root| Arc::new(FsGhostStore::new(root)) as Arc<dyn GhostStore>);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watches = Watches {
        client,
        cache: Arc::clone(&cache),
        hub: Arc::clone(&hub),
        store,
        live,
        clock: Arc::clone(&clock),
    };
    let watching = tokio::spawn(watches.run(stopped.clone()));
    let mut logos = Logos::new(
        Arc::clone(&cache) as Arc<dyn ClusterView>,
        Some(Arc::clone(&actor)),
    );
    if let Some(store) = options.witness.clone() {
        logos = logos.with_witness(store);
    }
    if let Some(model) = options.model.clone() {
        logos = logos.with_model(model);
    }
    let service = CortexService::new(logos, cache, Some(actor), Arc::clone(&hub), clock);

    let until = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let unix = server::router(service.clone())
        .await?
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), until(stopped.clone()));
    let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let health_addr = health_listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(listener) = health_listener {
        let served = server::health_router()
            .await
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), until(stopped.clone()));
        tokio::spawn(async move {
            if let Err(error) = served.await {
                tracing::warn!(%error, "the health endpoint failed");
            }
        });
    }
    if let Some(listener) = metrics_listener {
        let service = service.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let service = service.clone();
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        service.render_metrics(),
                    )
                }
            }),
        );
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "the metrics endpoint failed");
            }
        });
    }
    let tcp_served = match tcp {
        Some(listener) => Some(
            server::router_with(service, tls, TokenCheck::new(options.token.clone()))
                .await?
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener),
                    until(stopped.clone()),
                ),
        ),
        None => None,
    };
    ready(&Listening {
        socket: socket_file.path().to_owned(),
        tcp: tcp_addr,
        metrics: metrics_addr,
        health: health_addr,
    });
    let served = async {
        match tcp_served {
            Some(tcp) => futures::try_join!(unix, tcp).map(|_| ()),
            None => unix.await,
        }
    };
    tokio::pin!(served);
    let result = tokio::select! {
        result = &mut served => result,
        () = shutdown => {
            let _ = stop.send(true);
            // Endless Observe streams would hold a graceful shutdown forever: end them first.
            hub.close_all();
            tokio::time::timeout(Duration::from_secs(5), &mut served)
                .await
                .unwrap_or(Ok(()))
        }
    };
    let _ = stop.send(true);
    watching.abort();
    drop(socket_file);
    result.map_err(|e| Error::Transport {
        what: "serving the Cortex".into(),
        message: e.to_string(),
    })
}
