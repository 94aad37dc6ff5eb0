//! The HTTP server: an axum [`router`] over [`Symbiont`], the state every request shares.
//!
//! Every error answers JSON `{"error": {"status": N, "message": "..."}}`, the message saying
//! what was wrong and what to do; a 503 also carries `Retry-After`. Writes to the store run on
//! the blocking pool (a commit waits for fsync); reads run inline (a redb read is microseconds).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kgents_core::field::PheromoneType;
use kgents_logos::logos::{EmitInput, SenseInput};
use kgents_logos::{Args, Caller, Logos, Scope};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::journal::JournalEntry;
use crate::podinfo;
use crate::store::MemoryStore;
use crate::umwelt::UmweltSource;
use crate::{Error, Result};

/// Seconds a client is told to wait when the API server is away.
pub const RETRY_AFTER_SECONDS: u64 = 5;
/// The most keys or journal records one listing returns.
pub const MAX_PAGE: usize = 1000;

/// The symbiont's link to the cluster: the Logos (reads and writes as the pod's
/// ServiceAccount) and who the agent is.
pub struct ClusterLink {
    /// The resolver: reads through the pheromone watch cache (over the live view), writes
    /// through the actor.
    pub logos: Logos,
    /// The watch cache of the namespace's pheromones the Logos senses from.
    pub pheromones: Arc<crate::sensing::PheromoneWatch>,
    /// The actor the caller's Umwelt is read through.
    pub actor: Arc<dyn kgents_logos::ClusterActor>,
    /// The agent's namespace.
    pub namespace: String,
    /// The agent's name (the default `source` of emitted pheromones).
    pub agent: String,
    /// The Umwelt whose affordances the agent has.
    pub umwelt: String,
}

/// The state every request shares.
pub struct Symbiont {
    store: Arc<dyn MemoryStore>,
    annotations_file: Option<PathBuf>,
    umwelt: UmweltSource,
    cluster: Option<ClusterLink>,
    caller: OnceCell<Caller>,
    max_value: usize,
    last_access_ms: AtomicI64,
}

impl Symbiont {
    /// A symbiont over `store`. `max_value` bounds request bodies of `PUT /memory/{key}`.
    pub fn new(store: Arc<dyn MemoryStore>, max_value: usize) -> Symbiont {
        Symbiont {
            store,
            annotations_file: None,
            umwelt: UmweltSource::None,
            cluster: None,
            caller: OnceCell::new(),
            max_value,
            last_access_ms: AtomicI64::new(0),
        }
    }

    /// Reads safe mode from this downward-API annotations file.
    #[must_use]
    pub fn with_annotations_file(mut self, path: PathBuf) -> Symbiont {
        self.annotations_file = Some(path);
        self
    }

    /// Reads the Umwelt from `source`.
    #[must_use]
    pub fn with_umwelt(mut self, source: UmweltSource) -> Symbiont {
        self.umwelt = source;
        self
    }

    /// Talks to the cluster through `link`.
    #[must_use]
    pub fn with_cluster(mut self, link: ClusterLink) -> Symbiont {
        self.cluster = Some(link);
        self
    }

    /// The pheromone watch cache, when the symbiont talks to a cluster.
    pub fn pheromone_watch(&self) -> Option<&Arc<crate::sensing::PheromoneWatch>> {
        self.cluster.as_ref().map(|link| &link.pheromones)
    }

    /// When the memory was last read or written (`None`: not since start).
    pub fn last_access(&self) -> Option<jiff::Timestamp> {
        match self.last_access_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => jiff::Timestamp::from_millisecond(ms).ok(),
        }
    }

    /// The Memory's usage.
    pub fn usage(&self) -> Result<crate::limits::Usage> {
        self.store.usage()
    }

    fn touch(&self) {
        self.last_access_ms
            .store(jiff::Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }

    fn cluster(&self, what: &'static str) -> Result<&ClusterLink> {
        self.cluster.as_ref().ok_or(Error::NoCluster(what))
    }

    async fn caller(&self, link: &ClusterLink) -> Result<&Caller> {
        self.caller
            .get_or_try_init(|| async {
                kgents_logos::live::umwelt_caller(&*link.actor, &link.namespace, &link.umwelt)
                    .await
                    .map_err(Error::from)
            })
            .await
    }
}

/// An [`Error`] as an HTTP answer.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<kgents_logos::Error> for ApiError {
    fn from(e: kgents_logos::Error) -> Self {
        ApiError(Error::Logos(e))
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The HTTP status.
    pub status: u16,
    /// What was wrong and what to do.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let mut message = self.0.to_string();
        if status == 403 {
            message.push_str(
                " (the API server enforces the agent's Umwelt through its ServiceAccount's RBAC: add the path to the Umwelt's affordances if the agent should be allowed)",
            );
        }
        if status == 503 {
            message.push_str(&format!(
                " (the API server is unreachable: retry after {RETRY_AFTER_SECONDS} s)"
            ));
        }
        let body = ErrorBody {
            error: ErrorDetail { status, message },
        };
        let mut response = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(body),
        )
            .into_response();
        if status == 503 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

type Answer<T> = std::result::Result<T, ApiError>;

/// The router over `state`.
pub fn router(state: Arc<Symbiont>) -> axum::Router {
    axum::Router::new()
        .route(
            "/memory/{key}",
            get(get_key).put(put_key).delete(delete_key),
        )
        .route("/memory", get(list_keys))
        .route("/journal", post(append_journal).get(read_journal))
        .route("/status", get(status))
        .route("/umwelt", get(umwelt))
        .route("/safe-mode", get(safe_mode))
        .route("/pheromones", post(emit).get(sense))
        .route("/invoke", post(invoke))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            status: 404,
            message: "no such endpoint: the symbiont serves /memory/{key}, /memory?prefix=, /journal, /status, /umwelt, /safe-mode, /pheromones and /invoke".into(),
        },
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::BadRequest(format!("the store task failed: {e}")))?
}

async fn get_key(State(s): State<Arc<Symbiont>>, Path(key): Path<String>) -> Answer<Response> {
    let value = s.store.get(&key)?;
    s.touch();
    match value {
        Some(v) => Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Bytes::from(v),
        )
            .into_response()),
        None => Err(Error::NotFound(key).into()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    key: String,
    size: usize,
    usage: crate::limits::Usage,
}

async fn put_key(
    State(s): State<Arc<Symbiont>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Json<Stored>> {
    crate::limits::check_key(&key)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|n| *n > s.max_value) {
        return Err(Error::ValueTooLarge {
            size,
            limit: s.max_value,
        }
        .into());
    }
    let value =
        axum::body::to_bytes(body, s.max_value)
            .await
            .map_err(|_| Error::ValueTooLarge {
                size: s.max_value + 1,
                limit: s.max_value,
            })?;
    let store = s.store.clone();
    let size = value.len();
    let key2 = key.clone();
    let usage = blocking(move || store.put(&key2, &value)).await?;
    s.touch();
    Ok(Json(Stored { key, size, usage }))
}

async fn delete_key(
    State(s): State<Arc<Symbiont>>,
    Path(key): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    let store = s.store.clone();
    let key2 = key.clone();
    let existed = blocking(move || store.delete(&key2)).await?;
    s.touch();
    if !existed {
        return Err(Error::NotFound(key).into());
    }
    Ok(Json(serde_json::json!({"key": key, "deleted": true})))
}

/// Query of `GET /memory`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
}

fn page_limit(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Error::BadRequest(format!(
            "limit={n} is out of range: ask for 1 to {MAX_PAGE} and page on with after="
        ))),
    }
}

fn query<T: serde::de::DeserializeOwned>(q: Option<&str>) -> Result<T> {
    serde_urlencoded_from(q.unwrap_or(""))
}

fn serde_urlencoded_from<T: serde::de::DeserializeOwned>(q: &str) -> Result<T> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|e| Error::BadRequest(format!("bad query string: {e}")))?,
    )
    .map(|Query(t)| t)
    .map_err(|e| Error::BadRequest(format!("bad query string: {}", e.body_text())))
}

async fn list_keys(
    State(s): State<Arc<Symbiont>>,
    uri: axum::http::Uri,
) -> Answer<Json<serde_json::Value>> {
    let q: ListQuery = query(uri.query())?;
    let limit = page_limit(q.limit)?;
    let keys = s.store.list(&q.prefix, q.after.as_deref(), limit)?;
    s.touch();
    let next = (keys.len() == limit).then(|| keys.last().map(|k| k.key.clone()));
    Ok(Json(
        serde_json::json!({"keys": keys, "next": next.flatten()}),
    ))
}

async fn append_journal(
    State(s): State<Arc<Symbiont>>,
    body: Bytes,
) -> Answer<(StatusCode, Json<crate::journal::JournalRecord>)> {
    let entry: JournalEntry = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!(
            "the journal entry is not {{\"kind\": \"...\", \"data\": <any JSON>}}: {e}"
        ))
    })?;
    let store = s.store.clone();
    let record = blocking(move || store.append(entry, jiff::Timestamp::now())).await?;
    s.touch();
    Ok((StatusCode::CREATED, Json(record)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn read_journal(
    State(s): State<Arc<Symbiont>>,
    uri: axum::http::Uri,
) -> Answer<Json<serde_json::Value>> {
    let q: JournalQuery = query(uri.query())?;
    let limit = page_limit(q.limit)?;
    let records = s.store.journal(q.after, limit)?;
    s.touch();
    let next = records.last().map(|r| r.seq);
    Ok(Json(serde_json::json!({"records": records, "next": next})))
}

async fn status(State(s): State<Arc<Symbiont>>) -> Answer<Json<serde_json::Value>> {
    let usage = s.store.usage()?;
    Ok(Json(serde_json::json!({
        "sizeUsed": usage.used,
        "sizeLimit": usage.limit,
        "lastAccess": s.last_access(),
    })))
}

async fn umwelt(State(s): State<Arc<Symbiont>>) -> Answer<Json<crate::umwelt::UmweltAnswer>> {
    Ok(Json(s.umwelt.current().await?))
}

async fn safe_mode(State(s): State<Arc<Symbiont>>) -> Answer<Json<podinfo::SafeMode>> {
    let path = s.annotations_file.clone().ok_or_else(|| {
        Error::BadRequest(
            "this symbiont was started without a podinfo file: pass --annotations /etc/kgents/podinfo/annotations (the downward-API volume)".into(),
        )
    })?;
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        // No file: no annotations (a pod without the downward-API volume is not in safe mode
        // by annotation).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::Config {
                what: "the pod's annotations file",
                path,
                reason: e.to_string(),
            }
            .into());
        }
    };
    Ok(Json(podinfo::safe_mode(&podinfo::parse_annotations(&text))))
}

async fn emit(State(s): State<Arc<Symbiont>>, body: Bytes) -> Answer<Json<kgents_logos::Outcome>> {
    let link = s.cluster("emitting a pheromone")?;
    let mut input: EmitInput = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!(
            "the pheromone is not {{\"pheromone_type\": \"WARNING\", \"intensity\": 0.8, \"payload\": \"...\", ...}}: {e}"
        ))
    })?;
    if input.source.is_none() {
        input.source = Some(link.agent.clone());
    }
    let caller = s.caller(link).await?;
    let args = Args::new(Scope::Namespace(link.namespace.clone())).with_input(&input);
    Ok(Json(
        link.logos
            .invoke(caller, "void.pheromone.emit", args)
            .await?,
    ))
}

/// Query of `GET /pheromones`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SenseQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
    target: Option<String>,
    limit: Option<usize>,
}

fn pheromone_type(name: &str) -> Result<PheromoneType> {
    serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase())).map_err(|_| {
        Error::BadRequest(format!(
            "type={name} is not a pheromone type: use one of METAPHOR, WARNING, OPPORTUNITY, SCARCITY, ... (as in the Pheromone CRD)"
        ))
    })
}

async fn sense(State(s): State<Arc<Symbiont>>, uri: axum::http::Uri) -> Answer<Response> {
    let link = s.cluster("sensing pheromones")?;
    let q: SenseQuery = query(uri.query())?;
    let types = q
        .kind
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| t.split(',').map(pheromone_type).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    let input = SenseInput {
        types,
        source: q.source,
        target: q.target,
        limit: q.limit,
    };
    let caller = s.caller(link).await?;
    let args = Args::new(Scope::Namespace(link.namespace.clone())).with_input(&input);
    let outcome = link
        .logos
        .invoke(caller, "void.pheromone.sense", args)
        .await?;
    let source = match &outcome {
        kgents_logos::Outcome::Sensed(report) => Some(report.source.clone()),
        _ => None,
    };
    let mut answer = serde_json::json!({
        "sensed": outcome,
        "live": source.as_ref().is_some_and(|s| s.live),
        "stale": source.as_ref().is_some_and(|s| s.stale),
    });
    if let Some(source) = source.filter(|s| s.stale) {
        answer["ageSeconds"] = serde_json::json!(source.age_seconds);
        answer["note"] = serde_json::json!(source.warnings.join("; "));
    }
    Ok(Json(answer).into_response())
}

/// Body of `POST /invoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeBody {
    path: String,
    #[serde(default)]
    args: serde_json::Value,
    #[serde(default)]
    selector: Option<String>,
}

async fn invoke(
    State(s): State<Arc<Symbiont>>,
    body: Bytes,
) -> Answer<Json<kgents_logos::Outcome>> {
    let link = s.cluster("invoking an AGENTESE path")?;
    let body: InvokeBody = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!(
            "the body is not {{\"path\": \"void.pheromone.sense\", \"args\": <the path's input>}}: {e}"
        ))
    })?;
    let caller = s.caller(link).await?;
    let args = Args {
        scope: Scope::Namespace(link.namespace.clone()),
        selector: body.selector,
        input: body.args,
    };
    Ok(Json(link.logos.invoke(caller, &body.path, args).await?))
}
