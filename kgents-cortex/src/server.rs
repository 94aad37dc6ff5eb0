//! The gRPC service: [`CortexService`] implements `kgents.cortex.v1.Cortex` over one
//! [`Logos`] (the daemon serves the same resolver as every front-end, it does not grow a second
//! API), and [`router`] adds gRPC health and reflection (v1 and v1alpha, so grpcurl, grpcui,
//! evans and Postman all find the services).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::Stream;
use kgents_core::agentese::Path;
use kgents_core::clock::Clock;
use kgents_ghost::{Layer, LayerError};
use kgents_logos::live;
use kgents_logos::{Caller, ClusterActor, ClusterView, LiveLayer, Logos, Outcome, Source};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::ServerTlsConfig;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

use crate::auth::TokenCheck;
use crate::cache::{Touched, WatchCache};
use crate::fanout::Hub;
use crate::metrics::Metrics;
use crate::pb;
use crate::pb::cortex_server::{Cortex, CortexServer};
use crate::request::{self, AGENTS_PATH, PHEROMONES_PATH, PROPOSALS_PATH};

/// The largest request accepted (decoded), in bytes: larger ones are refused with
/// `RESOURCE_EXHAUSTED` before any work.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// The largest response sent, in bytes (10,000 pheromones as JSON are about 3 MiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The identity of unrestricted callers: the daemon acts with its own credentials, and the
/// socket (mode 0600) admits only the user who started it.
pub const DAEMON_IDENTITY: &str = "cortex (the daemon's kubeconfig)";

/// How long an encoded snapshot is reused while its kind has not changed. The snapshot says
/// when it was taken, and readers decay pheromones from then, so reusing it is exact; the bound
/// only keeps its age small.
pub const SNAPSHOT_REUSE: Duration = Duration::from_secs(5);

/// A snapshot encoded once and sent to every reader until its kind changes.
struct Encoded {
    generation: u64,
    built: Instant,
    bytes: Vec<u8>,
}

/// The `kgents.cortex.v1.Cortex` service (cheap to clone: shared state behind `Arc`s).
#[derive(Clone)]
pub struct CortexService {
    logos: Arc<Logos>,
    view: Arc<WatchCache>,
    snapshots: Arc<Mutex<HashMap<String, Encoded>>>,
    metrics: Arc<Metrics>,
    actor: Option<Arc<dyn ClusterActor>>,
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
}

impl CortexService {
    /// A service resolving through `logos` (whose reads are `view`), reading Umwelts for
    /// restricted callers through `actor`, with `Observe` fed by `hub`.
    pub fn new(
        logos: Logos,
        view: Arc<WatchCache>,
        actor: Option<Arc<dyn ClusterActor>>,
        hub: Arc<Hub>,
        clock: Arc<dyn Clock>,
    ) -> CortexService {
        CortexService {
            logos: Arc::new(logos),
            view,
            snapshots: Arc::new(Mutex::new(HashMap::new())),
            metrics: Arc::new(Metrics::new()),
            actor,
            hub,
            clock,
        }
    }

    /// With `metrics` recording every request (default: metrics of its own).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> CortexService {
        self.metrics = metrics;
        self
    }

    /// The metrics as text, with the gauges read now.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(&self.hub, &self.view)
    }

    /// The path label of an invocation: its registry template, `unregistered` or `malformed`.
    fn path_label(&self, path: &str) -> String {
        match Path::parse(path) {
            Ok(parsed) => self.logos.registry().by_path(&parsed).map_or_else(
                || "unregistered".to_owned(),
                |f| f.entry.template().to_string(),
            ),
            Err(_) => "malformed".to_owned(),
        }
    }

    fn record<T>(&self, method: &str, path: &str, started: Instant, result: &Result<T, Status>) {
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        self.metrics.record(method, path, code, started.elapsed());
    }

    /// The caller a request names: an Umwelt's or an agent's affordances, else unrestricted.
    async fn caller(&self, caller: Option<&pb::Caller>) -> Result<Caller, Status> {
        let Some(caller) = caller else {
            return Ok(Caller::unrestricted(DAEMON_IDENTITY));
        };
        if caller.umwelt.is_empty() && caller.as_agent.is_empty() {
            return Ok(Caller::unrestricted(DAEMON_IDENTITY));
        }
        if !caller.umwelt.is_empty() && !caller.as_agent.is_empty() {
            return Err(Status::invalid_argument(
                "caller: name an umwelt or an as_agent, not both",
            ));
        }
        let namespace = if caller.namespace.is_empty() {
            "default"
        } else {
            caller.namespace.as_str()
        };
        let actor = self.actor.as_deref().ok_or_else(|| {
            Status::unavailable("caller: this daemon has no API connection to read Umwelts with")
        })?;
        let resolved = if caller.umwelt.is_empty() {
            live::agent_caller(actor, namespace, &caller.as_agent).await
        } else {
            live::umwelt_caller(actor, namespace, &caller.umwelt).await
        };
        resolved.map_err(|e| {
            let status = request::status_of(&e);
            Status::new(status.code(), format!("caller: {}", status.message()))
        })
    }
}

impl CortexService {
    fn encoded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Encoded>> {
        self.snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where an outcome's data came from (writes have none).
pub fn source_of(outcome: &Outcome) -> Option<&Source> {
    match outcome {
        Outcome::Agents(m) => Some(&m.source),
        Outcome::Agent(m) => Some(&m.source),
        Outcome::Sensed(f) => Some(&f.source),
        Outcome::Proposals(m) => Some(&m.source),
        Outcome::Memories(m) => Some(&m.source),
        Outcome::Umwelts(m) => Some(&m.source),
        _ => None,
    }
}

fn wire_source(source: &Source) -> pb::Source {
    pb::Source {
        layer: source.layer.clone(),
        live: source.live,
        age_seconds: source.age_seconds,
        taken_at: source.taken_at.to_string(),
    }
}

/// The kind of an outcome, as its JSON `kind` tag says.
pub fn kind_of(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Agents(_) => "agents",
        Outcome::Agent(_) => "agent",
        Outcome::Sensed(_) => "sensed",
        Outcome::Emitted(_) => "emitted",
        Outcome::Filed(_) => "filed",
        Outcome::Proposals(_) => "proposals",
        Outcome::Decided(_) => "decided",
        Outcome::Memories(_) => "memories",
        Outcome::Umwelts(_) => "umwelts",
        Outcome::Tether(_) => "tether",
        Outcome::Workflow(_) => "workflow",
        Outcome::Replay(_) => "replay",
        Outcome::Concept(_) => "concept",
    }
}

/// The response of an invocation: the outcome as JSON, its kind and its source.
///
/// # Errors
/// `INTERNAL` if the outcome cannot be serialised (it always can).
pub fn invoke_response(outcome: &Outcome) -> Result<pb::InvokeResponse, Status> {
    // Straight to text: no intermediate JSON tree (the biggest cost at 1,000 agents).
    let result_json = serde_json::to_string(outcome)
        .map_err(|e| Status::internal(format!("serialising the result: {e}")))?;
    Ok(pb::InvokeResponse {
        result_json,
        kind: kind_of(outcome).to_owned(),
        source: source_of(outcome).map(wire_source),
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The `Observe` stream type.
pub type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::ObserveEvent, Status>> + Send>>;

impl CortexService {
    async fn invoke_inner(
        &self,
        request: pb::InvokeRequest,
    ) -> Result<Response<pb::InvokeResponse>, Status> {
        let args = request::args_of(&request)?;
        let caller = self.caller(request.caller.as_ref()).await?;
        let result = self.logos.invoke(&caller, &request.path, args).await;
        self.metrics
            .record_model(&self.path_label(&request.path), &result);
        let outcome = result.map_err(|e| request::status_of(&e))?;
        invoke_response(&outcome).map(Response::new)
    }

    async fn get_status_inner(
        &self,
        request: pb::StatusRequest,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        if !request.namespace.is_empty() {
            kgents_logos::summary::check_name("namespace", &request.namespace)
                .map_err(|reason| Status::invalid_argument(format!("namespace: {reason}")))?;
        }
        let caller = self.caller(request.caller.as_ref()).await?;
        let report = self
            .logos
            .status(&caller, request::scope_of(&request.namespace))
            .await;
        let report_json = serde_json::to_string(&report)
            .map_err(|e| Status::internal(format!("serialising the status: {e}")))?;
        Ok(Response::new(pb::StatusResponse {
            report_json,
            agents: count(report.agents.as_ref().map_or(0, |a| a.counts.total)),
            agents_ready: count(report.agents.as_ref().map_or(0, |a| a.counts.ready)),
            pheromones: count(report.field.as_ref().map_or(0, |f| f.heat.live)),
            pending_proposals: count(report.pending.as_ref().map_or(0, |p| p.proposals.len())),
            problems: report.problems,
        }))
    }

    async fn get_snapshot_inner(
        &self,
        key: String,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let query = request::query_of_key(&key)
            .map_err(|reason| Status::invalid_argument(format!("key: {reason}")))?;
        // A snapshot encoded before the API server was lost is not served as live either.
        self.view
            .check_api()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let touched = Touched::of(&query);
        // Read before building: a change while building makes the next reader rebuild.
        let generation = self.view.generation(touched);
        let key = crate::request::key_of_query(&query);
        let reusable =
            |e: &Encoded| e.generation == generation && e.built.elapsed() < SNAPSHOT_REUSE;
        if let Some(encoded) = self.encoded().get(&key).filter(|e| reusable(e)) {
            return Ok(Response::new(pb::SnapshotResponse {
                envelope_json: encoded.bytes.clone(),
            }));
        }
        let layer = LiveLayer::new(Arc::clone(&self.view) as Arc<dyn ClusterView>);
        let snapshot = layer.fetch(&query).await.map_err(|e| match e {
            LayerError::Unavailable(reason) => Status::unavailable(reason),
            LayerError::Failed(reason) if reason.contains("not found") => Status::not_found(reason),
            other => Status::internal(other.to_string()),
        })?;
        let envelope_json = kgents_ghost::store::codec::encode(&snapshot)
            .map_err(|e| Status::internal(format!("encoding the snapshot: {e}")))?;
        self.encoded().insert(
            key,
            Encoded {
                generation,
                built: Instant::now(),
                bytes: envelope_json.clone(),
            },
        );
        Ok(Response::new(pb::SnapshotResponse { envelope_json }))
    }

    async fn observe_inner(
        &self,
        request: pb::ObserveRequest,
    ) -> Result<Response<ObserveStream>, Status> {
        let mut kinds = request::kinds_of(&request.kinds)?;
        if !request.namespace.is_empty() {
            kgents_logos::summary::check_name("namespace", &request.namespace)
                .map_err(|reason| Status::invalid_argument(format!("namespace: {reason}")))?;
        }
        let caller = self.caller(request.caller.as_ref()).await?;
        // Each kind is shown only to a caller granted the read path that lists it; Events
        // are about the same objects, so they need the agents path.
        let granted = |path: &str| {
            Path::parse(path)
                .map_err(|e| Status::internal(e.to_string()))
                .map(|p| caller.check(&p))
        };
        let mut denials = Vec::new();
        for (wanted, path) in [
            (&mut kinds.pheromones, PHEROMONES_PATH),
            (&mut kinds.agents, AGENTS_PATH),
            (&mut kinds.proposals, PROPOSALS_PATH),
        ] {
            if *wanted && let Err(denied) = granted(path)? {
                *wanted = false;
                denials.push(denied.to_string());
            }
        }
        if kinds.events && !kinds.agents {
            kinds.events = false;
        }
        if kinds.is_empty() {
            return Err(Status::permission_denied(if denials.is_empty() {
                "nothing to observe".to_owned()
            } else {
                denials.join("; ")
            }));
        }
        let subscription = self
            .hub
            .subscribe(kinds, request::scope_of(&request.namespace));
        tracing::debug!(subscriber = subscription.id, "Observe subscribed");
        let clock = Arc::clone(&self.clock);
        Ok(Response::new(Box::pin(
            subscription.into_stream(move || clock.now()),
        )))
    }
}

#[tonic::async_trait]
impl Cortex for CortexService {
    async fn invoke(
        &self,
        request: Request<pb::InvokeRequest>,
    ) -> Result<Response<pb::InvokeResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let path = self.path_label(&request.path);
        let result = self.invoke_inner(request).await;
        self.record("Invoke", &path, started, &result);
        result
    }

    async fn get_status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let started = Instant::now();
        let result = self.get_status_inner(request.into_inner()).await;
        self.record("GetStatus", "", started, &result);
        result
    }

    async fn get_snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let started = Instant::now();
        let result = self.get_snapshot_inner(request.into_inner().key).await;
        self.record("GetSnapshot", "", started, &result);
        result
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<pb::ObserveRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        let started = Instant::now();
        let result = self.observe_inner(request.into_inner()).await;
        self.record("Observe", "", started, &result);
        result
    }
}

/// The encoded descriptor set of `kgents.cortex.v1` (served by reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cortex_descriptor.bin"));

/// The whole server: the Cortex (with the message limits), gRPC health (the Cortex and the
/// overall status reported SERVING) and reflection v1 and v1alpha over every service.
///
/// # Errors
/// A descriptor set that does not decode (a build problem).
pub async fn router(service: CortexService) -> Result<Router, crate::Error> {
    router_with(service, None, TokenCheck::default()).await
}

/// Only gRPC health (the Cortex and the overall status SERVING), for a plain-text listener
/// that kubelet's gRPC probes reach (they speak neither TLS nor a token); it tells nothing
/// about the cluster.
pub async fn health_router() -> Router {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CortexServer<CortexService>>().await;
    tonic::transport::Server::builder().add_service(health_service)
}

/// [`router`] served over TLS when `tls` is given, and with `check` on every service but
/// health (see [`crate::auth`]).
///
/// # Errors
/// A descriptor set that does not decode, or a TLS configuration rustls refuses (a key that
/// does not match the certificate, a file without a key).
pub async fn router_with(
    service: CortexService,
    tls: Option<ServerTlsConfig>,
    check: TokenCheck,
) -> Result<Router, crate::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CortexServer<CortexService>>().await;
    // Each version's service lists the other too, so a client of either sees both.
    let reflection = |other: &'static [u8]| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(other)
    };
    let v1 = reflection(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| crate::Error::Reflection(e.to_string()))?;
    let v1alpha = reflection(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| crate::Error::Reflection(e.to_string()))?;
    let cortex = CortexServer::new(service)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(|e| {
            crate::Error::Auth(format!(
                "the TLS certificate and key were refused: {e} (is the key the certificate's, \
                 both PEM?)"
            ))
        })?;
    }
    Ok(builder
        .add_service(health_service)
        .add_service(InterceptedService::new(v1, check.clone()))
        .add_service(InterceptedService::new(v1alpha, check.clone()))
        .add_service(InterceptedService::new(cortex, check)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kgents_logos::outcome::{AgentsManifest, Decided};

    use super::*;

    #[test]
    fn the_response_kind_is_the_json_tag_and_reads_carry_their_source() {
        let source = Source::live("cortex", "2027-01-15T12:00:00Z".parse().unwrap());
        let read = Outcome::Agents(AgentsManifest {
            agents: Vec::new(),
            by_phase: BTreeMap::new(),
            by_health: BTreeMap::new(),
            ready: 0,
            source,
        });
        let write = Outcome::Decided(Decided {
            proposal: "p".into(),
            namespace: "team".into(),
            approved: true,
            by: "me".into(),
            comment: None,
        });
        for outcome in [&read, &write] {
            let response = invoke_response(outcome).unwrap();
            let json: serde_json::Value = serde_json::from_str(&response.result_json).unwrap();
            assert_eq!(json["kind"], response.kind);
        }
        let response = invoke_response(&read).unwrap();
        let wire = response.source.expect("a read has a source");
        assert_eq!(wire.layer, "cortex");
        assert!(wire.live);
        assert_eq!(wire.taken_at, "2027-01-15T12:00:00Z");
        assert!(invoke_response(&write).unwrap().source.is_none());
    }
}
