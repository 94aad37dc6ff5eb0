//! Reaching the daemon: [`connect`] opens a gRPC channel over the Unix socket, and
//! [`CortexLayer`] is the ghost chain's first layer (live, 500 ms) for short-lived processes
//! such as the CLI: it asks the daemon for a snapshot and decodes it exactly as the cache
//! layer decodes a file. No socket file is a miss at once, without a connection attempt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use kgents_ghost::{Layer, LayerError, Query, Snapshot, SnapshotKey};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

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
    Ok(CortexClient::new(channel).max_decoding_message_size(crate::server::MAX_RESPONSE_BYTES))
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

/// The daemon as a ghost layer (see the [module docs](self)).
pub struct CortexLayer {
    path: PathBuf,
    budget: Duration,
    client: tokio::sync::OnceCell<CortexClient<Channel>>,
}

impl CortexLayer {
    /// A layer asking the daemon at `path`, each request within `budget` (the chain's
    /// [`DAEMON_BUDGET`](kgents_ghost::chain::DAEMON_BUDGET) is the usual one).
    pub fn new(path: impl Into<PathBuf>, budget: Duration) -> CortexLayer {
        CortexLayer {
            path: path.into(),
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

    /// The socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn client(&self) -> std::result::Result<CortexClient<Channel>, LayerError> {
        if std::fs::symlink_metadata(&self.path).is_err() {
            return Err(LayerError::Unavailable(format!(
                "no Cortex daemon (no socket at {}; start one with `kgents cortex serve`)",
                self.path.display()
            )));
        }
        self.client
            .get_or_try_init(|| connect(&self.path, self.budget))
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
