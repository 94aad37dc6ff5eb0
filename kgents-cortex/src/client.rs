//! Reaching the daemon: [`connect`] opens a gRPC channel over the Unix socket, and
//! [`CortexLayer`] is the ghost chain's first layer (live, 500 ms) for short-lived processes
//! such as the CLI: it asks the daemon for a snapshot and decodes it exactly as the cache
//! layer decodes a file. No socket file is a miss at once, without a connection attempt.
//! [`connect_url`] reaches a daemon over TCP (TLS with a CA file, and the bearer token).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use kgents_ghost::{Layer, LayerError, Query, Snapshot, SnapshotKey};
use tokio::net::UnixStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{self, AttachToken, BearerToken};
use crate::error::{Error, Result};
use crate::pb;
use crate::pb::cortex_client::CortexClient;

/// The daemon's layer name in the ghost chain's attempts and in answers' sources.
pub const LAYER_NAME: &str = "cortex";

/// A client over the Unix socket at `path`, connected within `timeout`.
///
/// # Errors
/// [`Error::Transport`] when nothing answers there in time.
pub async fn connect(path: &Path, timeout: Duration) -> Result<CortexClient<Channel>> {
    // The URI is required by the HTTP/2 layer but never resolved: the connector dials the socket.
    let endpoint = Endpoint::from_static("http://cortex.local")
        .connect_timeout(timeout)
        .timeout(timeout);
    connect_via(endpoint, path, timeout).await
}

/// [`connect`] with the HTTP/2 settings of `endpoint` (its URI is ignored: the socket at
/// `path` is dialled), within `timeout`.
///
/// # Errors
/// [`Error::Transport`] when nothing answers there in time.
pub async fn connect_via(
    endpoint: Endpoint,
    path: &Path,
    timeout: Duration,
) -> Result<CortexClient<Channel>> {
    let channel = socket_channel(endpoint, path, timeout).await?;
    Ok(CortexClient::new(channel).max_decoding_message_size(crate::server::MAX_RESPONSE_BYTES))
}

async fn socket_channel(endpoint: Endpoint, path: &Path, timeout: Duration) -> Result<Channel> {
    let socket = path.to_owned();
    let connecting = endpoint.connect_with_connector(tower::service_fn(move |_| {
        let socket = socket.clone();
        async move { UnixStream::connect(socket).await.map(TokioIo::new) }
    }));
    let channel = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| Error::Transport {
            what: format!("connecting to {}", path.display()),
            message: format!("no answer within {timeout:?}"),
        })?
        .map_err(|e| Error::Transport {
            what: format!("connecting to {}", path.display()),
            message: chain(&e),
        })?;
    Ok(channel)
}

/// The environment variable naming a daemon reached over TCP (`https://host:port`).
pub const URL_ENV: &str = "KGENTS_CORTEX_URL";
/// The environment variable naming the CA file that signed a TCP daemon's certificate.
pub const CA_ENV: &str = "KGENTS_CORTEX_CA";

/// A client of a daemon over TCP: `https://host:port` (TLS, trusting the CA in `ca`) or
/// `http://` on loopback, sending `token` with every request, connected within `timeout`.
///
/// # Errors
/// [`Error::Transport`] for a malformed URL or when nothing answers in time, [`Error::Auth`]
/// for an `https` URL without a CA file or an unreadable one.
pub async fn connect_url(
    url: &str,
    ca: Option<&Path>,
    token: Option<&BearerToken>,
    timeout: Duration,
) -> Result<CortexClient<InterceptedService<Channel, AttachToken>>> {
    let bad = |message: String| Error::Transport {
        what: format!("the Cortex URL {url:?}"),
        message,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| bad(format!("{e}; write it as https://HOST:PORT")))?
        .connect_timeout(timeout)
        .timeout(timeout);
    match endpoint.uri().scheme_str() {
        Some("https") => {
            let ca = ca.ok_or_else(|| {
                Error::Auth(format!(
                    "{url} is https: name the CA that signed the daemon's certificate \
                     (--cortex-ca FILE or ${CA_ENV})"
                ))
            })?;
            endpoint = endpoint
                .tls_config(auth::client_tls(ca, None)?)
                .map_err(|e| bad(chain(&e)))?;
        }
        Some("http") => {}
        _ => return Err(bad("the scheme must be https (or http on loopback)".into())),
    }
    let channel = tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| bad(format!("no answer within {timeout:?}")))?
        .map_err(|e| bad(chain(&e)))?;
    Ok(
        CortexClient::with_interceptor(channel, AttachToken::new(token))
            .max_decoding_message_size(crate::server::MAX_RESPONSE_BYTES),
    )
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

/// Where a [`CortexLayer`] finds the daemon.
#[derive(Debug, Clone)]
enum Target {
    /// The Unix socket.
    Socket(PathBuf),
    /// A daemon over TCP.
    Remote {
        url: String,
        ca: Option<PathBuf>,
        token: Option<BearerToken>,
    },
}

/// The client type of a [`CortexLayer`]: the token attached (or not) to every request.
type LayerClient = CortexClient<InterceptedService<Channel, AttachToken>>;

/// The daemon as a ghost layer (see the [module docs](self)).
pub struct CortexLayer {
    target: Target,
    budget: Duration,
    client: tokio::sync::OnceCell<LayerClient>,
}

impl CortexLayer {
    /// A layer asking the daemon at `path`, each request within `budget` (the chain's
    /// [`DAEMON_BUDGET`](kgents_ghost::chain::DAEMON_BUDGET) is the usual one).
    pub fn new(path: impl Into<PathBuf>, budget: Duration) -> CortexLayer {
        CortexLayer {
            target: Target::Socket(path.into()),
            budget,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// A layer asking the daemon at `url` over TCP (see [`connect_url`]).
    pub fn remote(
        url: impl Into<String>,
        ca: Option<PathBuf>,
        token: Option<BearerToken>,
        budget: Duration,
    ) -> CortexLayer {
        CortexLayer {
            target: Target::Remote {
                url: url.into(),
                ca,
                token,
            },
            budget,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// A layer when a socket file is at `path`, else `None`: a process that knows no daemon
    /// runs skips the layer entirely, so an absent daemon costs nothing and does not count
    /// against the ghost cache's stability score.
    pub fn if_present(path: impl Into<PathBuf>, budget: Duration) -> Option<CortexLayer> {
        let path = path.into();
        std::fs::symlink_metadata(&path)
            .is_ok()
            .then(|| CortexLayer::new(path, budget))
    }

    /// The layer the environment names: `$KGENTS_CORTEX_URL` (with `$KGENTS_CORTEX_CA` and
    /// `$KGENTS_CORTEX_TOKEN`) when set, else the socket at `socket` when one is there.
    ///
    /// # Errors
    /// A token in the environment that is unusable (too short, not printable).
    pub fn from_env(socket: Option<PathBuf>, budget: Duration) -> Result<Option<CortexLayer>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match var(URL_ENV) {
            Some(url) => Ok(Some(CortexLayer::remote(
                url,
                var(CA_ENV).map(PathBuf::from),
                BearerToken::from_env()?,
                budget,
            ))),
            None => Ok(socket.and_then(|path| CortexLayer::if_present(path, budget))),
        }
    }

    /// The socket, for a layer over one.
    pub fn path(&self) -> Option<&Path> {
        match &self.target {
            Target::Socket(path) => Some(path),
            Target::Remote { .. } => None,
        }
    }

    async fn connect(&self) -> Result<LayerClient> {
        match &self.target {
            Target::Socket(path) => {
                let endpoint = Endpoint::from_static("http://cortex.local")
                    .connect_timeout(self.budget)
                    .timeout(self.budget);
                let channel = socket_channel(endpoint, path, self.budget).await?;
                Ok(
                    CortexClient::with_interceptor(channel, AttachToken::new(None))
                        .max_decoding_message_size(crate::server::MAX_RESPONSE_BYTES),
                )
            }
            Target::Remote { url, ca, token } => {
                connect_url(url, ca.as_deref(), token.as_ref(), self.budget).await
            }
        }
    }

    async fn client(&self) -> std::result::Result<LayerClient, LayerError> {
        if let Target::Socket(path) = &self.target
            && std::fs::symlink_metadata(path).is_err()
        {
            return Err(LayerError::Unavailable(format!(
                "no Cortex daemon (no socket at {}; start one with `kgents cortex serve`)",
                path.display()
            )));
        }
        self.client
            .get_or_try_init(|| self.connect())
            .await
            .cloned()
            .map_err(|e| LayerError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Layer for CortexLayer {
    fn name(&self) -> &str {
        LAYER_NAME
    }

    fn is_live(&self) -> bool {
        true
    }

    /// The daemon writes the snapshots it serves (at most once a second each), so the reader
    /// does not write them again.
    fn writes_through(&self) -> bool {
        false
    }

    async fn fetch(&self, query: &Query) -> std::result::Result<Snapshot, LayerError> {
        let mut client = self.client().await?;
        let mut request = tonic::Request::new(pb::SnapshotRequest {
            key: crate::request::key_of_query(query),
        });
        request.set_timeout(self.budget);
        let response = client.get_snapshot(request).await.map_err(|status| {
            let text = format!(
                "the Cortex answered {:?}: {}",
                status.code(),
                status.message()
            );
            match status.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
                    LayerError::Unavailable(text)
                }
                _ => LayerError::Failed(text),
            }
        })?;
        let bytes = response.into_inner().envelope_json;
        kgents_ghost::store::codec::decode(&bytes, &SnapshotKey::Query(query.clone())).map_err(
            |reason| LayerError::Failed(format!("the Cortex sent an unusable snapshot: {reason}")),
        )
    }
}
