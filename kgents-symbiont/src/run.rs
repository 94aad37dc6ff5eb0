//! Assembling a running symbiont from its [`Config`]: open the store, connect to the cluster
//! when asked (with its pheromone watch), bind the listener. The `symbiont` example binary parses its flags into a
//! [`Config`] and calls [`start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::sensing::PheromoneWatch;
use crate::server::{ClusterLink, Symbiont, router};
use crate::store::{RedbStore, StoreLimits};
use crate::umwelt::UmweltSource;
use crate::{Error, Result};

/// The store file's name inside the memory directory.
pub const STORE_FILE: &str = "memory.redb";
/// The budget of one Kubernetes API call.
pub const API_DEADLINE: Duration = Duration::from_secs(5);

/// Everything a symbiont is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (loopback in a pod: only the agent's containers reach it).
    pub listen: SocketAddr,
    /// The directory of the store (the Memory's volume).
    pub memory_dir: PathBuf,
    /// The store's limits.
    pub limits: StoreLimits,
    /// The downward-API annotations file.
    pub annotations_file: Option<PathBuf>,
    /// The Umwelt view as a file.
    pub umwelt_file: Option<PathBuf>,
    /// The Umwelt view as a ConfigMap to watch (in [`ClusterConfig::namespace`]).
    pub umwelt_config_map: Option<String>,
    /// The cluster: `None` runs memory, journal and safe mode only.
    pub cluster: Option<ClusterConfig>,
}

/// Who the agent is in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The agent's namespace.
    pub namespace: String,
    /// The agent's name.
    pub agent: String,
    /// The Umwelt whose affordances it has.
    pub umwelt: String,
    /// The agent's Memory, whose `status.sizeUsed` and `status.lastAccess` the symbiont reports
    /// (`None`: no Memory, nothing reported).
    pub memory: Option<String>,
    /// How often the Memory's use is reported (when it changed).
    pub report_every: Duration,
}

/// A started symbiont.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The shared state.
    pub state: Arc<Symbiont>,
    /// The server task.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens the store, connects the cluster (with `client`, when configured), binds and serves.
pub async fn start(config: Config, client: Option<kube::Client>) -> Result<Running> {
    let path = config.memory_dir.join(STORE_FILE);
    let store = tokio::task::spawn_blocking({
        let limits = config.limits.clone();
        move || RedbStore::open(&path, limits)
    })
    .await
    .map_err(|e| Error::BadRequest(format!("opening the store failed: {e}")))??;
    let mut symbiont = Symbiont::new(Arc::new(store), config.limits.max_value);
    if let Some(file) = config.annotations_file {
        symbiont = symbiont.with_annotations_file(file);
    }
    if let Some(file) = config.umwelt_file {
        symbiont = symbiont.with_umwelt(UmweltSource::File(file));
    }
    let mut report = None;
    if let Some(cluster) = config.cluster {
        if let Some(memory) = &cluster.memory {
            report = Some((
                client.clone(),
                cluster.namespace.clone(),
                memory.clone(),
                cluster.report_every,
            ));
        }
        let client = client.ok_or(Error::NoCluster("a cluster configuration"))?;
        if let Some(name) = &config.umwelt_config_map {
            symbiont = symbiont.with_umwelt(UmweltSource::watch_config_map(
                client.clone(),
                &cluster.namespace,
                name,
            ));
        }
        let live = Arc::new(kgents_logos::LiveView::new(client.clone(), API_DEADLINE));
        let pheromones = Arc::new(PheromoneWatch::new(cluster.namespace.clone(), live));
        pheromones.spawn(client.clone());
        let actor: Arc<dyn kgents_logos::ClusterActor> =
            Arc::new(kgents_logos::KubeActor::new(client, API_DEADLINE));
        symbiont = symbiont.with_cluster(ClusterLink {
            logos: kgents_logos::Logos::new(pheromones.clone(), Some(actor.clone())),
            pheromones,
            actor,
            namespace: cluster.namespace,
            agent: cluster.agent,
            umwelt: cluster.umwelt,
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            Error::BadRequest(format!(
                "cannot listen on {}: {e}; pick a free port with --listen",
                config.listen
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let state = Arc::new(symbiont);
    if let Some((Some(client), namespace, memory, every)) = report {
        crate::report::spawn_reporter(client, &namespace, &memory, state.clone(), every);
    }
    let app = router(state.clone());
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Running { addr, state, task })
}
