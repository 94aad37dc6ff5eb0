//! The operator's small HTTP server: `/metrics`, `/healthz`, `/readyz`.
//!
//! Plain HTTP on a configurable address (default `0.0.0.0:8080`); it carries no secrets and is
//! meant for the kubelet's probes and a Prometheus scrape.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::leader::LeaderState;
use crate::metrics::Metrics;
use crate::{Error, Result};

/// What the health endpoints report.
#[derive(Debug)]
pub struct Health {
    /// Set once the operator has checked its CRDs and started (or is standing by to start) its
    /// controllers. Atomic: written by the run loop, read by request handlers.
    ready: AtomicBool,
    leader: LeaderState,
}

impl Health {
    /// A health state that is not ready yet.
    pub fn new(leader: LeaderState) -> Self {
        Self {
            ready: AtomicBool::new(false),
            leader,
        }
    }

    /// Marks the operator ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether the operator is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The router, separate from binding so tests can drive it in-process.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let leader = state.health.leader.is_leader();
    (StatusCode::OK, format!("ok (leader: {leader})\n"))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: checking CRDs and starting controllers\n",
        )
    }
}

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound address (useful with
/// port 0) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Http { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Http { addr, source })?;
    let app = router(metrics, health);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics/health server stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn endpoints_answer_over_loopback() {
        let metrics = Arc::new(Metrics::new());
        metrics.reconcile_started("agent");
        let health = Arc::new(Health::new(LeaderState::always()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            metrics,
            health.clone(),
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .expect("serve");

        let ready = get(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        health.set_ready(true);
        let ready = get(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

        let healthz = get(addr, "/healthz").await;
        assert!(healthz.contains("leader: true"), "{healthz}");

        let body = get(addr, "/metrics").await;
        assert!(
            body.contains("kgents_reconciles_total{controller=\"agent\"} 1"),
            "{body}"
        );

        stop_tx.send(()).expect("stop");
        task.await.expect("server task");
    }
}
