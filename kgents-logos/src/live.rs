//! The Kubernetes API through kube: [`LiveView`] (reads by list calls) and [`KubeActor`]
//! (writes as the client's identity). Every call runs under a deadline; a missed deadline is
//! [`Error::Timeout`], which front-ends treat as "unavailable".
//!
//! List calls rather than reflectors: see the crate docs (a one-shot CLI reads each kind once).

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kgents_core::field::PheromoneType;
use kgents_crds::{Agent, Memory, Pheromone, Proposal, Umwelt, Workflow};
use kgents_ghost::snapshot::{AgentStatus, AgentSummary, ClusterStatus, ComponentStatus};
use kgents_policy::AdmissionPolicy;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::approval;
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::outcome::{MemorySummary, PheromoneRecord, ProposalRecord, TetherTarget, UmweltSummary};
use crate::shard::{self, TypeShard};
use crate::summary;
use crate::table;
use crate::view::{ClusterActor, ClusterView, Filter, Observed, Scope, Source};

/// The default deadline of one API call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// The operator Deployment `status` checks: `kgents-system/kgents-operator`, where
/// `kgents infra init` and `deploy/operator/` install it.
pub const OPERATOR_DEPLOYMENT: (&str, &str) = ("kgents-system", "kgents-operator");
/// The proposal webhook's ValidatingWebhookConfiguration `status` checks.
pub const WEBHOOK_CONFIGURATION: &str = "kgents-proposals";

/// The layer name of live answers.
pub const LAYER: &str = "kubernetes";

/// Runs `call` under `deadline`, classifying its error.
pub async fn deadline<T>(
    what: impl Into<String>,
    deadline: Duration,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T> {
    let what = what.into();
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Error::from_kube(what, error)),
        Err(_) => Err(Error::Timeout { what, deadline }),
    }
}

/// The counts behind the mutex; a panic elsewhere while it was held leaves counts that are
/// still counts (at worst a stale hint), so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    }
}

/// Reads by list calls (see the module docs).
#[derive(Clone)]
pub struct LiveView {
    client: Client,
    deadline: Duration,
    /// The Pheromones by type as last seen, from which a list of every Pheromone is split
    /// ([`shard`]). Shared by clones; a std mutex, held only to copy or replace the counts,
    /// never across an await.
    field_shape: Arc<Mutex<Vec<(PheromoneType, usize)>>>,
}

impl LiveView {
    /// A view over `client`, each call within `deadline`.
    pub fn new(client: Client, deadline: Duration) -> LiveView {
        LiveView {
            client,
            deadline,
            field_shape: Arc::default(),
        }
    }

    /// The same view, told how many Pheromones of each type the field held when last seen
    /// (e.g. by a ghost digest), so that its first list of them can be split ([`shard`]). A
    /// wrong hint costs only speed. The view keeps the counts of each list it makes.
    #[must_use]
    pub fn with_field_shape(self, counts: Vec<(PheromoneType, usize)>) -> LiveView {
        *lock(&self.field_shape) = counts;
        self
    }

    /// Lists `K` in the filter.
    pub async fn list<K>(&self, filter: &Filter) -> Result<Vec<K>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let mut params = ListParams::default();
        if let Some(selector) = &filter.selector {
            params = params.labels(selector);
        }
        let api = api::<K>(&self.client, &filter.scope);
        let what = format!(
            "listing {} in {}",
            K::plural(&()),
            filter
                .scope
                .namespace()
                .map_or("all namespaces".to_owned(), |n| format!("namespace {n}"))
        );
        Ok(deadline(what, self.deadline, api.list(&params))
            .await?
            .items)
    }

    fn source(&self) -> Source {
        Source::live(LAYER, jiff::Timestamp::now())
    }

    /// The Pheromones of the filter as records read from server-side Tables, with the time
    /// their intensities are at; a list of every Pheromone is split into requests by type when
    /// the field was last seen large enough ([`shard`]). `None` when a Table cannot serve (a
    /// CRD without the columns), which the caller answers by listing the objects.
    async fn pheromone_rows(
        &self,
        filter: &Filter,
    ) -> Result<Option<(Vec<PheromoneRecord>, jiff::Timestamp)>> {
        // The counts are the whole field's: they say nothing of one namespace or label.
        let whole_field = filter.scope == Scope::All && filter.selector.is_none();
        let shards = if whole_field {
            shard::plan(&lock(&self.field_shape))
        } else {
            Vec::new()
        };
        if shards.len() > 1 {
            let tables =
                futures::future::join_all(shards.iter().map(|s| self.pheromone_table(filter, s)))
                    .await;
            let now = jiff::Timestamp::now();
            let mut records = Vec::new();
            let mut whole = true;
            for table in tables {
                match table {
                    Ok(Some(t)) => match table::records(&t, now) {
                        Some(rows) => records.extend(rows),
                        None => whole = false,
                    },
                    Ok(None) => whole = false,
                    // A cluster whose CRD does not declare `.spec.type` selectable refuses
                    // the selector: ask once more, unsplit.
                    Err(Error::Api { code: 400, .. }) => whole = false,
                    Err(e) => return Err(e),
                }
            }
            if whole {
                // Each shard is a consistent list of its own; a Pheromone deleted and made
                // again with another type between two of them would be listed twice.
                let mut seen = std::collections::HashSet::with_capacity(records.len());
                records
                    .retain(|r| seen.insert((r.summary.namespace.clone(), r.summary.name.clone())));
                self.remember_field_shape(&records);
                return Ok(Some((records, now)));
            }
        }
        let unsplit = TypeShard::Except(Vec::new());
        let Some(table) = self.pheromone_table(filter, &unsplit).await? else {
            return Ok(None);
        };
        let now = jiff::Timestamp::now();
        let Some(records) = table::records(&table, now) else {
            return Ok(None);
        };
        if whole_field {
            self.remember_field_shape(&records);
        }
        Ok(Some((records, now)))
    }

    /// Keeps the counts by type of a list of every Pheromone for the next one.
    fn remember_field_shape(&self, records: &[PheromoneRecord]) {
        let mut counts: Vec<(PheromoneType, usize)> = Vec::new();
        for record in records {
            let t = record.summary.pheromone_type;
            match counts.iter_mut().find(|(known, _)| *known == t) {
                Some((_, n)) => *n += 1,
                None => counts.push((t, 1)),
            }
        }
        *lock(&self.field_shape) = counts;
    }

    /// One request of the Pheromones of the filter (and of `shard`) as a server-side Table
    /// without objects (`None` when the request cannot even be built, which the caller treats
    /// like a Table it cannot use).
    async fn pheromone_table(
        &self,
        filter: &Filter,
        shard: &TypeShard,
    ) -> Result<Option<table::Table>> {
        let namespace = filter.scope.namespace();
        let mut params = ListParams::default();
        if let Some(selector) = &filter.selector {
            params = params.labels(selector);
        }
        if let Some(selector) = shard.field_selector() {
            params = params.fields(&selector);
        }
        let Ok(mut request) =
            kube::core::Request::new(Pheromone::url_path(&(), namespace)).list(&params)
        else {
            return Ok(None);
        };
        // `includeObject=None`: the cells only.
        let uri = request.uri().to_string();
        let separator = if uri.contains('?') { '&' } else { '?' };
        let Ok(uri) = format!("{uri}{separator}includeObject=None").parse() else {
            return Ok(None);
        };
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(table::ACCEPT_TABLE),
        );
        let what = format!(
            "listing pheromones in {}",
            namespace.map_or("all namespaces".to_owned(), |n| format!("namespace {n}"))
        );
        deadline(
            what,
            self.deadline,
            self.client.request::<table::Table>(request),
        )
        .await
        .map(Some)
    }
}

#[async_trait]
impl ClusterView for LiveView {
    async fn agents(&self, filter: &Filter) -> Result<Observed<Vec<AgentSummary>>> {
        let agents: Vec<Agent> = self.list(filter).await?;
        Ok(Observed {
            data: agents.iter().filter_map(summary::agent_summary).collect(),
            source: self.source(),
        })
    }

    async fn agent(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Observed<Option<AgentStatus>>> {
        let data = match namespace {
            Some(ns) => {
                let api: Api<Agent> = Api::namespaced(self.client.clone(), ns);
                deadline(
                    format!("reading agent {ns}/{name}"),
                    self.deadline,
                    api.get_opt(name),
                )
                .await?
                .as_ref()
                .and_then(summary::agent_status)
            }
            None => {
                let agents: Vec<Agent> = self.list(&Filter::scope(Scope::All)).await?;
                agents
                    .iter()
                    .find(|a| a.metadata.name.as_deref() == Some(name))
                    .and_then(summary::agent_status)
            }
        };
        Ok(Observed {
            data,
            source: self.source(),
        })
    }

    async fn pheromones(&self, filter: &Filter) -> Result<Observed<Vec<PheromoneRecord>>> {
        // A server-side Table first (see the `table` module): much less for the API server to
        // encode. A cluster whose CRD lacks the columns gets the objects listed instead.
        if let Some((data, now)) = self.pheromone_rows(filter).await? {
            return Ok(Observed {
                data,
                source: Source::live(LAYER, now),
            });
        }
        let pheromones: Vec<Pheromone> = self.list(filter).await?;
        let now = jiff::Timestamp::now();
        Ok(Observed {
            data: pheromones
                .iter()
                .filter_map(|p| summary::pheromone_record(p, now))
                .collect(),
            source: Source::live(LAYER, now),
        })
    }

    async fn proposals(&self, filter: &Filter) -> Result<Observed<Vec<ProposalRecord>>> {
        let proposals: Vec<Proposal> = self.list(filter).await?;
        Ok(Observed {
            data: proposals.iter().map(summary::proposal_record).collect(),
            source: self.source(),
        })
    }

    async fn memories(&self, filter: &Filter) -> Result<Observed<Vec<MemorySummary>>> {
        let memories: Vec<Memory> = self.list(filter).await?;
        Ok(Observed {
            data: memories.iter().map(summary::memory_summary).collect(),
            source: self.source(),
        })
    }

    async fn umwelts(&self, filter: &Filter) -> Result<Observed<Vec<UmweltSummary>>> {
        let umwelts: Vec<Umwelt> = self.list(filter).await?;
        Ok(Observed {
            data: umwelts.iter().map(summary::umwelt_summary).collect(),
            source: self.source(),
        })
    }

    async fn cluster(&self) -> Result<Observed<ClusterStatus>> {
        let version = deadline(
            "reading the API server's version",
            self.deadline,
            self.client.apiserver_version(),
        )
        .await?;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let (nodes_ready, nodes_total) = match deadline(
            "listing nodes",
            self.deadline,
            nodes.list(&ListParams::default()),
        )
        .await
        {
            Ok(list) => {
                let ready = list
                    .items
                    .iter()
                    .filter(|n| {
                        n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count();
                (count(ready), count(list.items.len()))
            }
            Err(_) => (0, 0),
        };
        let (ns, name) = OPERATOR_DEPLOYMENT;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let operator = match deadline(
            "reading the operator",
            self.deadline,
            deployments.get_opt(name),
        )
        .await
        {
            Ok(Some(d)) => {
                let status = d.status.unwrap_or_default();
                let ready = status.ready_replicas.unwrap_or(0);
                let wanted = d.spec.replicas.unwrap_or(1);
                ComponentStatus {
                    name: "operator".into(),
                    healthy: ready >= 1,
                    message: format!("Deployment {ns}/{name}: {ready}/{wanted} ready"),
                }
            }
            Ok(None) => ComponentStatus {
                name: "operator".into(),
                healthy: false,
                message: format!(
                    "Deployment {ns}/{name} not found (kgents infra init installs it)"
                ),
            },
            Err(e) => ComponentStatus {
                name: "operator".into(),
                healthy: false,
                message: e.to_string(),
            },
        };
        let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        let webhook = match deadline(
            "reading the webhook configuration",
            self.deadline,
            webhooks.get_opt(WEBHOOK_CONFIGURATION),
        )
        .await
        {
            Ok(Some(_)) => ComponentStatus {
                name: "webhook".into(),
                healthy: true,
                message: format!(
                    "ValidatingWebhookConfiguration {WEBHOOK_CONFIGURATION} registered"
                ),
            },
            Ok(None) => ComponentStatus {
                name: "webhook".into(),
                healthy: false,
                message: format!(
                    "ValidatingWebhookConfiguration {WEBHOOK_CONFIGURATION} not registered: proposals are not gated at admission"
                ),
            },
            Err(e) => ComponentStatus {
                name: "webhook".into(),
                healthy: false,
                message: e.to_string(),
            },
        };
        Ok(Observed {
            data: ClusterStatus {
                context: None,
                server_version: Some(version.git_version),
                nodes_ready,
                nodes_total,
                components: vec![operator, webhook],
            },
            source: self.source(),
        })
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Writes as the client's identity (see the module docs).
#[derive(Clone)]
pub struct KubeActor {
    client: Client,
    deadline: Duration,
    policy_config_map: (String, String),
}

/// Where the operator reads its admission policy by default: `kgents-system/kgents-admission-policy`
/// (the operator's namespace).
pub const DEFAULT_POLICY_CONFIG_MAP: (&str, &str) = ("kgents-system", "kgents-admission-policy");

impl KubeActor {
    /// An actor over `client`, each call within `deadline`, reading the policy from
    /// [`DEFAULT_POLICY_CONFIG_MAP`].
    pub fn new(client: Client, deadline: Duration) -> KubeActor {
        KubeActor {
            client,
            deadline,
            policy_config_map: (
                DEFAULT_POLICY_CONFIG_MAP.0.to_owned(),
                DEFAULT_POLICY_CONFIG_MAP.1.to_owned(),
            ),
        }
    }

    /// Reads the admission policy from another ConfigMap.
    #[must_use]
    pub fn with_policy_config_map(mut self, namespace: &str, name: &str) -> KubeActor {
        self.policy_config_map = (namespace.to_owned(), name.to_owned());
        self
    }

    async fn get<K>(&self, kind: &'static str, namespace: &str, name: &str) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        deadline(
            format!("reading {kind} {namespace}/{name}"),
            self.deadline,
            api.get_opt(name),
        )
        .await?
        .ok_or_else(|| Error::NotFound {
            kind,
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        })
    }
}

#[async_trait]
impl ClusterActor for KubeActor {
    async fn whoami(&self) -> Result<String> {
        within(
            self.deadline,
            "asking who you are",
            approval::whoami(&self.client),
        )
        .await
    }

    async fn apply_workflow(&self, workflow: &Workflow, dry_run: bool) -> Result<(Workflow, bool)> {
        let namespace = workflow.metadata.namespace.clone().unwrap_or_default();
        let name = workflow.metadata.name.clone().unwrap_or_default();
        let api: Api<Workflow> = Api::namespaced(self.client.clone(), &namespace);
        let existing = deadline(
            format!("reading Workflow {namespace}/{name}"),
            self.deadline,
            api.get_opt(&name),
        )
        .await?;
        let params = PostParams {
            dry_run,
            ..PostParams::default()
        };
        match existing {
            None => deadline(
                format!("creating Workflow {namespace}/{name}"),
                self.deadline,
                api.create(&params, workflow),
            )
            .await
            .map(|stored| (stored, true)),
            Some(mut current) => {
                // The spec is replaced; the journal (status) is the operator's and stays. The
                // resourceVersion read makes a concurrent change a conflict, not a lost write.
                current.spec = workflow.spec.clone();
                deadline(
                    format!("updating Workflow {namespace}/{name}"),
                    self.deadline,
                    api.replace(&name, &params, &current),
                )
                .await
                .map(|stored| (stored, false))
            }
        }
    }

    async fn create_pheromone(&self, pheromone: &Pheromone) -> Result<Pheromone> {
        let namespace = pheromone.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pheromone> = Api::namespaced(self.client.clone(), &namespace);
        deadline(
            format!("creating a Pheromone in {namespace}"),
            self.deadline,
            api.create(&PostParams::default(), pheromone),
        )
        .await
    }

    async fn namespace_proposals(&self, namespace: &str) -> Result<Vec<Proposal>> {
        LiveView::new(self.client.clone(), self.deadline)
            .list(&Filter::scope(Scope::Namespace(namespace.to_owned())))
            .await
    }

    async fn admission_policy(&self) -> (AdmissionPolicy, String) {
        let (namespace, name) = &self.policy_config_map;
        match self.get::<ConfigMap>("ConfigMap", namespace, name).await {
            Ok(map) => match AdmissionPolicy::from_config_map_data(&map.data.unwrap_or_default()) {
                Ok(policy) => (policy, format!("ConfigMap {namespace}/{name}")),
                Err(e) => (
                    AdmissionPolicy::default(),
                    format!("the default policy (ConfigMap {namespace}/{name} is invalid: {e})"),
                ),
            },
            Err(e) => (
                AdmissionPolicy::default(),
                format!("the default policy ({e})"),
            ),
        }
    }

    async fn create_proposal(&self, proposal: &Proposal, dry_run: bool) -> Result<Proposal> {
        let namespace = proposal.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Proposal> = Api::namespaced(self.client.clone(), &namespace);
        let params = PostParams {
            dry_run,
            ..PostParams::default()
        };
        deadline(
            format!(
                "{} a Proposal in {namespace}",
                if dry_run { "dry-running" } else { "creating" }
            ),
            self.deadline,
            api.create(&params, proposal),
        )
        .await
    }

    async fn approve(&self, namespace: &str, name: &str, comment: Option<&str>) -> Result<String> {
        within(
            self.deadline,
            "approving",
            approval::approve(&self.client, namespace, name, comment),
        )
        .await
    }

    async fn reject(&self, namespace: &str, name: &str, reason: Option<&str>) -> Result<String> {
        within(
            self.deadline,
            "rejecting",
            approval::reject(&self.client, namespace, name, reason),
        )
        .await
    }

    async fn tether_target(&self, namespace: &str, agent: &str) -> Result<TetherTarget> {
        let found: Agent = self.get("Agent", namespace, agent).await?;
        let selector = found
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_else(|| {
                format!("app.kubernetes.io/name=kgents-agent,app.kubernetes.io/instance={agent}")
            });
        let pods: Vec<Pod> = LiveView::new(self.client.clone(), self.deadline)
            .list(&Filter {
                scope: Scope::Namespace(namespace.to_owned()),
                selector: Some(selector),
            })
            .await?;
        let ready = pods.iter().find(|pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        let pod = ready.ok_or_else(|| Error::Unavailable {
            what: format!("tethering to agent {namespace}/{agent}"),
            reason: format!("none of its {} pod(s) is Ready", pods.len()),
        })?;
        let port = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.ports.as_ref())
            .and_then(|ports| ports.first())
            .and_then(|p| u16::try_from(p.container_port).ok());
        Ok(TetherTarget {
            namespace: namespace.to_owned(),
            agent: agent.to_owned(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            port,
        })
    }

    async fn umwelt(&self, namespace: &str, name: &str) -> Result<Umwelt> {
        self.get("Umwelt", namespace, name).await
    }

    async fn agent_umwelt(&self, namespace: &str, agent: &str) -> Result<Umwelt> {
        let found: Agent = self.get("Agent", namespace, agent).await?;
        let name = found
            .spec
            .umwelt
            .clone()
            .or_else(|| found.status.as_ref().and_then(|s| s.umwelt.clone()));
        match name {
            Some(name) => self.get("Umwelt", namespace, &name).await,
            None => {
                let umwelts: Vec<Umwelt> = LiveView::new(self.client.clone(), self.deadline)
                    .list(&Filter::scope(Scope::Namespace(namespace.to_owned())))
                    .await?;
                umwelts
                    .into_iter()
                    .find(|u| u.spec.agent == agent)
                    .ok_or_else(|| Error::NotFound {
                        kind: "Umwelt",
                        name: format!("(of agent {agent})"),
                        namespace: Some(namespace.to_owned()),
                    })
            }
        }
    }
}

async fn within<T>(
    deadline: Duration,
    what: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(deadline * 2, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout {
                what: what.to_owned(),
                deadline: deadline * 2,
            })
        })
}

/// The caller an Umwelt describes (`--umwelt NAME`), read through `actor`.
pub async fn umwelt_caller(
    actor: &dyn ClusterActor,
    namespace: &str,
    name: &str,
) -> Result<Caller> {
    Caller::from_umwelt(&actor.umwelt(namespace, name).await?)
}

/// The caller an agent is (`--as-agent AGENT`): its Umwelt's affordances.
pub async fn agent_caller(
    actor: &dyn ClusterActor,
    namespace: &str,
    agent: &str,
) -> Result<Caller> {
    Caller::from_umwelt(&actor.agent_umwelt(namespace, agent).await?)
}
