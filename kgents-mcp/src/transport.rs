//! The transports: stdio, and streamable HTTP bound to loopback by default (a bearer token is
//! required anywhere else), each with the change-notification poller.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::RoleServer;
use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::server::KgentsMcp;
use crate::watch;

/// The shortest bearer token accepted.
pub const MIN_TOKEN_BYTES: usize = 16;

/// How to serve over HTTP. `Debug` shows whether a bearer token is set, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// The bearer token every request must carry (required beyond loopback).
    pub bearer_token: Option<String>,
    /// `Host` header values accepted beyond loopback (empty: any, since the token guards).
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("addr", &self.addr)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// Checks an HTTP binding before anything listens: beyond loopback a token is required, and a
/// token must not be trivially short.
///
/// # Errors
/// [`Error::TokenRequired`], [`Error::WeakToken`].
pub fn check_http(addr: SocketAddr, token: Option<&str>) -> Result<()> {
    if let Some(token) = token
        && token.len() < MIN_TOKEN_BYTES
    {
        return Err(Error::WeakToken {
            len: token.len(),
            min: MIN_TOKEN_BYTES,
        });
    }
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(Error::TokenRequired { addr });
    }
    Ok(())
}

/// Whether `header` is `Bearer <token>`, compared in constant time.
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_bearer(token: Arc<String>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer_matches(header, &token) {
        next.run(request).await
    } else {
        (
            http::StatusCode::UNAUTHORIZED,
            [(
                http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"kgents-mcp\"",
            )],
            "a bearer token is required: send Authorization: Bearer <token>\n",
        )
            .into_response()
    }
}

/// Serves over stdio until the client closes stdin or `shutdown` is cancelled.
///
/// # Errors
/// [`Error::Serve`] when the transport fails.
pub async fn serve_stdio(server: KgentsMcp, shutdown: CancellationToken) -> Result<()> {
    let watcher = server
        .config()
        .watch_interval
        .map(|interval| watch::spawn_watch(&server, interval, shutdown.child_token()));
    let transport: AsyncRwTransport<RoleServer, _, _> =
        AsyncRwTransport::new_server(tokio::io::stdin(), tokio::io::stdout())
            .with_max_line_length(server.config().max_request_bytes);
    let running = server
        .serve_with_ct(transport, shutdown.clone())
        .await
        .map_err(|e| Error::Serve(e.to_string()))?;
    let result = running.waiting().await;
    shutdown.cancel();
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    result.map(|_| ()).map_err(|e| Error::Serve(e.to_string()))
}

/// Serves streamable HTTP on `/mcp` until `shutdown` is cancelled; `on_bound` learns the
/// address actually bound (for port 0).
///
/// # Errors
/// [`Error::TokenRequired`] / [`Error::WeakToken`] before binding, [`Error::Bind`], and
/// [`Error::Serve`].
pub async fn serve_http(
    server: KgentsMcp,
    options: HttpOptions,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    check_http(options.addr, options.bearer_token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| Error::Bind {
            addr: options.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Bind {
        addr: options.addr,
        source,
    })?;
    on_bound(local);
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown.child_token())
        .with_max_request_body_bytes(server.config().max_request_bytes);
    if !local.ip().is_loopback() {
        // DNS-rebinding protection is for unauthenticated local servers; beyond loopback the
        // bearer token guards, and the Host is whatever name clients use.
        config = if options.allowed_hosts.is_empty() {
            config.disable_allowed_hosts()
        } else {
            config.with_allowed_hosts(options.allowed_hosts.clone())
        };
    }
    let watcher = server
        .config()
        .watch_interval
        .map(|interval| watch::spawn_watch(&server, interval, shutdown.child_token()));
    let factory = server.clone();
    let service = StreamableHttpService::new(
        move || Ok(factory.session()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut app = axum::Router::new().route_service("/mcp", service);
    if let Some(token) = options.bearer_token {
        let token = Arc::new(token);
        app = app.layer(axum::middleware::from_fn(
            move |request: Request, next: Next| require_bearer(Arc::clone(&token), request, next),
        ));
    }
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .map_err(|e| Error::Serve(e.to_string()));
    shutdown.cancel();
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_bearer_token() {
        let token = "mcp-canary-token-5f4e3d2c1b";
        let options = HttpOptions {
            addr: "0.0.0.0:8080".parse().expect("an address"),
            bearer_token: Some(token.to_owned()),
            allowed_hosts: vec!["kgents.example".to_owned()],
        };
        let shown = format!("{options:?} {options:#?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("kgents.example"),
            "{shown}"
        );
    }

    #[test]
    fn beyond_loopback_a_token_is_required() {
        let token = "0123456789abcdef0123";
        for addr in ["127.0.0.1:0", "[::1]:8080"] {
            assert!(check_http(addr.parse().unwrap(), None).is_ok(), "{addr}");
        }
        for addr in ["0.0.0.0:8080", "10.1.2.3:80", "[::]:80"] {
            let err = check_http(addr.parse().unwrap(), None).unwrap_err();
            assert!(err.to_string().contains("bearer token"), "{err}");
            assert!(check_http(addr.parse().unwrap(), Some(token)).is_ok());
        }
        let err = check_http("0.0.0.0:1".parse().unwrap(), Some("short")).unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
    }

    #[test]
    fn the_bearer_must_match_exactly() {
        let token = "0123456789abcdef";
        assert!(bearer_matches(Some("Bearer 0123456789abcdef"), token));
        for bad in [
            None,
            Some("Bearer 0123456789abcdeg"),
            Some("bearer 0123456789abcdef"),
            Some("Bearer 0123"),
            Some("0123456789abcdef"),
        ] {
            assert!(!bearer_matches(bad, token), "{bad:?}");
        }
    }
}
