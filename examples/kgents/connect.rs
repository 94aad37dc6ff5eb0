//! Connecting: the kube client from the kubectl-style flags (every call with a deadline), a
//! live view that connects only when first read, the ghost cache directory, and the caller the
//! flags describe.

use std::path::PathBuf;
use std::time::Duration;

use kgents::kgents_core::field::PheromoneType;
use kgents::kgents_ghost::digest::StatusDigest;
use kgents::kgents_ghost::snapshot::{AgentStatus, AgentSummary, ClusterStatus};
use kgents::kgents_ghost::snapshot::{Payload, Query, Snapshot, SnapshotKey};
use kgents::kgents_ghost::{FsGhostStore, GhostStore};
use kgents::kgents_logos::live::{self, KubeActor};
use kgents::kgents_logos::outcome::{
    MemorySummary, PheromoneRecord, ProposalRecord, UmweltSummary,
};
use kgents::kgents_logos::{Caller, ClusterActor, ClusterView, Error, Filter, LiveView, Observed};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::Global;

/// A client and the namespace the flags (or the context) name.
pub struct Connection {
    /// The client.
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// The deadline of each call.
    pub deadline: Duration,
}

/// The deadline of each API call from `--request-timeout` (bad values are usage errors).
pub fn deadline(global: &Global) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(global.request_timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::BadInput {
            path: "--request-timeout".into(),
            reason: format!(
                "{} is not a positive number of seconds",
                global.request_timeout
            ),
        })
}

/// Builds the client. Errors are "unavailable" (no kubeconfig, a missing context).
pub async fn connect(global: &Global) -> Result<Connection, Error> {
    connect_with(global, false).await
}

/// [`connect`]; `streaming`: no read deadline (a followed log stream may be quiet for long),
/// while connecting and writing keep theirs.
pub async fn connect_with(global: &Global, streaming: bool) -> Result<Connection, Error> {
    let deadline = deadline(global)?;
    let options = KubeConfigOptions {
        context: global.context.clone(),
        cluster: None,
        user: None,
    };
    let unavailable = |reason: String| Error::Unavailable {
        what: "loading the kubeconfig".into(),
        reason,
    };
    let mut config = match &global.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| unavailable(e.to_string()))?
        }
        None if global.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| unavailable(e.to_string()))?,
        None => Config::infer()
            .await
            .map_err(|e| unavailable(e.to_string()))?,
    };
    config.connect_timeout = Some(deadline);
    config.read_timeout = (!streaming).then_some(deadline);
    config.write_timeout = Some(deadline);
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    // Managed fields are never shown (kubectl hides them too): cut before decoding.
    let client = kgents::kgents_logos::wire::client(config)
        .map_err(|e| Error::from_kube("building the client", e))?;
    Ok(Connection {
        client,
        namespace,
        deadline,
    })
}

/// The ghost cache root: `$KGENTS_GHOST_DIR`, else `~/.kgents/ghost`
/// ([`FsGhostStore::default_root`]).
pub fn ghost_root() -> Result<PathBuf, Error> {
    // The one location every front-end and the Cortex daemon share (the seed's cache layout).
    FsGhostStore::default_root().map_err(|_| Error::BadInput {
        path: "ghost cache".into(),
        reason: "set KGENTS_GHOST_DIR (or HOME) so the ghost cache has a place".into(),
    })
}

/// The Pheromones by type in the ghost cache's last status digest (none without one): a live
/// view splits its first list of every Pheromone by them ([`LiveView::with_field_shape`]).
/// Read only when the cluster is, so a cached answer never pays for it.
pub fn ghost_field_shape() -> Vec<(PheromoneType, usize)> {
    let Ok(root) = ghost_root() else {
        return Vec::new();
    };
    match FsGhostStore::new(root)
        .read(&SnapshotKey::Query(Query::StatusDigest))
        .hit()
    {
        Some(Snapshot {
            payload: Payload::StatusDigest(digest),
            ..
        }) => digest.type_counts(),
        _ => Vec::new(),
    }
}

/// A live view over a connection, split-listing Pheromones as the ghost cache last saw them.
pub fn live_view(conn: &Connection) -> LiveView {
    LiveView::new(conn.client.clone(), conn.deadline).with_field_shape(ghost_field_shape())
}

/// The caller the flags describe: `--umwelt` / `--as-agent` restrict to an Umwelt's
/// affordances; otherwise the person behind the kubeconfig, unrestricted.
pub async fn caller(
    global: &Global,
    actor: Option<&KubeActor>,
    namespace: &str,
) -> Result<Caller, Error> {
    let need = |flag: &str| Error::Unavailable {
        what: format!("reading the Umwelt for {flag}"),
        reason: "no cluster connection".into(),
    };
    if let Some(name) = &global.umwelt {
        let actor = actor.ok_or_else(|| need("--umwelt"))?;
        return live::umwelt_caller(actor as &dyn ClusterActor, namespace, name).await;
    }
    if let Some(agent) = &global.as_agent {
        let actor = actor.ok_or_else(|| need("--as-agent"))?;
        return live::agent_caller(actor as &dyn ClusterActor, namespace, agent).await;
    }
    Ok(Caller::unrestricted("you (kubeconfig)"))
}

/// A live view that connects on its first read: a read the ghost cache answers never loads the
/// kubeconfig, builds a TLS client or touches the network. A failed connection is kept and
/// answered to every later read (it would fail the same way).
pub struct LazyLiveView {
    global: Global,
    view: tokio::sync::OnceCell<Result<LiveView, (String, String)>>,
}

impl LazyLiveView {
    /// A view that connects with `global`'s flags when first read.
    pub fn new(global: &Global) -> LazyLiveView {
        LazyLiveView {
            global: global.clone(),
            view: tokio::sync::OnceCell::new(),
        }
    }

    async fn view(&self) -> Result<&LiveView, Error> {
        let connected = self
            .view
            .get_or_init(|| async {
                match connect(&self.global).await {
                    Ok(conn) => Ok(live_view(&conn)),
                    // The connection errors are "unavailable" (see `connect`): kept as their
                    // two parts, since an error is answered to every read.
                    Err(Error::Unavailable { what, reason }) => Err((what, reason)),
                    Err(other) => Err(("connecting".to_owned(), other.to_string())),
                }
            })
            .await;
        connected
            .as_ref()
            .map_err(|(what, reason)| Error::Unavailable {
                what: what.clone(),
                reason: reason.clone(),
            })
    }
}

#[async_trait::async_trait]
impl ClusterView for LazyLiveView {
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>, Error> {
        self.view().await?.agents(filter).await
    }

    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>, Error> {
        self.view().await?.agent(namespace, name).await
    }

    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>, Error> {
        self.view().await?.pheromones(filter).await
    }

    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>, Error> {
        self.view().await?.proposals(filter).await
    }

    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>, Error> {
        self.view().await?.memories(filter).await
    }

    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>, Error> {
        self.view().await?.umwelts(filter).await
    }

    async fn cluster(&self) -> Result<Observed<ClusterStatus>, Error> {
        self.view().await?.cluster().await
    }

    async fn status_digest(&self) -> Result<Observed<StatusDigest>, Error> {
        self.view().await?.status_digest().await
    }
}
