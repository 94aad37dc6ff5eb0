//! Test fixtures: a mocked API server in the controller-rs style.
//!
//! [`ApiServerVerifier`] sits on the far side of a real `kube::Client` built over a
//! `tower_test` mock service. A test starts the reconcile, and the verifier answers each
//! request the reconcile makes in turn, checking method, path and body; a request the test did
//! not expect fails it, and so does one it expected that never came.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kgents_crds::{Agent, Memory};
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::{Client, Resource};

use crate::agent::controller::{ChildStores, State};
use crate::agent::observed::{ObservedDeployment, ObservedMeta};
use crate::{Context, OperatorConfig};

pub(crate) type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request as the mocked API server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// JSON body (`Null` when empty).
    pub body: serde_json::Value,
}

impl Seen {
    /// Whether the request is `method` on a path containing `path`.
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.uri.contains(path)
    }

    /// Whether the request is `method` on exactly `path` (query ignored).
    pub fn is_exactly(&self, method: &str, path: &str) -> bool {
        let only_path = self.uri.split('?').next().unwrap_or_default();
        self.method == method && only_path == path
    }
}

/// Answers the reconcile's requests.
pub struct ApiServerVerifier(ApiServerHandle);

impl ApiServerVerifier {
    /// Waits (up to a second) for the next request and answers it with `reply(request)`:
    /// `(status code, JSON body)`.
    pub async fn answer(&mut self, reply: impl FnOnce(&Seen) -> (u16, serde_json::Value)) -> Seen {
        answer_next(&mut self.0, reply).await
    }

    /// Answers the next request by echoing its body with status 200 (what an apply returns).
    pub async fn echo(&mut self) -> Seen {
        self.answer(|seen| (200, seen.body.clone())).await
    }

    /// Asserts that no request arrives within a short while.
    pub async fn expect_silence(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    }
}

/// Waits (up to a second) for the next request on `handle` and answers it with
/// `reply(request)`: `(status code, JSON body)`. Shared by every mocked-apiserver fixture.
pub(crate) async fn answer_next(
    handle: &mut ApiServerHandle,
    reply: impl FnOnce(&Seen) -> (u16, serde_json::Value),
) -> Seen {
    let (request, send) = tokio::time::timeout(Duration::from_secs(1), handle.next_request())
        .await
        .expect("the reconcile made the expected request within a second")
        .expect("the client is still alive");
    let method = request.method().to_string();
    let uri = request.uri().to_string();
    let bytes = http_body_util::BodyExt::collect(request.into_body())
        .await
        .expect("request body")
        .to_bytes();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON request body")
    };
    let seen = Seen { method, uri, body };
    let (code, json) = reply(&seen);
    let response = Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&json).expect("JSON")))
        .expect("response");
    send.send_response(response);
    seen
}

/// A `metav1.Status` failure body.
pub fn failure(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    })
}

/// The writers behind a test [`State`]'s caches, to put children in them.
pub struct Caches {
    /// Deployments.
    pub deployments: Writer<ObservedDeployment>,
    /// Services.
    pub services: Writer<ObservedMeta<Service>>,
    /// ServiceAccounts.
    pub service_accounts: Writer<ServiceAccount>,
    /// NetworkPolicies.
    pub network_policies: Writer<ObservedMeta<NetworkPolicy>>,
    /// Memories.
    pub memories: Writer<Memory>,
}

fn ready_writer<K>() -> (reflector::Store<K>, Writer<K>)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (reader, writer)
}

/// Puts `object` into a cache as a watch would.
pub fn cache<K>(writer: &mut Writer<K>, object: K)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    writer.apply_watcher_event(&watcher::Event::Apply(object));
}

/// A controller state over a mocked API server, with empty, loaded caches.
pub fn test_state() -> (Arc<State>, Caches, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Arc::new(Context::new(client, OperatorConfig::default()));
    let (deployments, deployment_writer) = ready_writer();
    let (services, service_writer) = ready_writer();
    let (service_accounts, service_account_writer) = ready_writer();
    let (network_policies, network_policy_writer) = ready_writer();
    let (memories, memory_writer) = ready_writer();
    let state = Arc::new(State {
        ctx,
        stores: ChildStores {
            deployments,
            services,
            service_accounts,
            network_policies,
            memories,
            api_server_slices: None,
            shared_ready: Vec::new(),
        },
        written: Default::default(),
        settled: Default::default(),
    });
    let caches = Caches {
        deployments: deployment_writer,
        services: service_writer,
        service_accounts: service_account_writer,
        network_policies: network_policy_writer,
        memories: memory_writer,
    };
    (state, caches, ApiServerVerifier(handle))
}

/// An Agent as read from the API server: `hive/scout`, genus B, generation 1.
pub fn test_agent(spec: serde_json::Value) -> Agent {
    let mut spec = spec;
    if spec.get("genus").is_none() {
        spec["genus"] = serde_json::json!("B");
    }
    let mut agent = Agent::new(
        "scout",
        serde_json::from_value(spec).expect("a valid AgentSpec"),
    );
    agent.metadata.namespace = Some("hive".to_owned());
    agent.metadata.uid = Some("uid-scout".to_owned());
    agent.metadata.generation = Some(1);
    agent.metadata.resource_version = Some("7".to_owned());
    agent
}
