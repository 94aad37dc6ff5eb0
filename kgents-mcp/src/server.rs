//! [`KgentsMcp`]: the tools and resources, each an AGENTESE invocation through the Logos,
//! shaped for a model (compact, paged, capped, redacted), and the rmcp [`ServerHandler`].
//!
//! The protocol-facing methods ([`KgentsMcp::call`], [`KgentsMcp::read`], ...) are plain async
//! functions, so an embedder or a benchmark drives them without a transport.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kgents_core::agentese::{K8sOperation, Path};
use kgents_logos::logos::{DefineInput, EmitInput, SenseInput};
use kgents_logos::outcome::{FieldReport, Filed, ProposalRecord, ServerVerdict};
use kgents_logos::{Args, Caller, Error as LogosError, ErrorKind, Logos, Outcome, Scope};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
    Implementation, JsonObject, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool,
    ToolAnnotations, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::args::{self, ArgError, EmitArgs, InvokeArgs, ProposeArgs, SenseArgs, StatusArgs};
use crate::page::{self, Bounds, Page};
use crate::redact;
use crate::render;
use crate::uri::{self, Detail, ListQuery, ResourceRef};
use crate::watch::Changes;

/// How the server behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct McpConfig {
    /// List and serve the write tools (`emit`, `propose`, and writing paths through `invoke`).
    pub allow_writes: bool,
    /// The byte cap of each rendering of a result (structured JSON, text).
    pub max_bytes: usize,
    /// Items per page when the caller names no limit.
    pub page_size: usize,
    /// The namespaces a read covers when the caller names none.
    pub scope: Scope,
    /// How often the pheromones and proposals are polled for change notifications (`None`:
    /// no notifications).
    pub watch_interval: Option<Duration>,
    /// The largest JSON-RPC message accepted (stdio line, HTTP body).
    pub max_request_bytes: usize,
}

/// The default byte cap: 64 KiB per rendering.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            allow_writes: false,
            max_bytes: DEFAULT_MAX_BYTES,
            page_size: 100,
            scope: Scope::Namespace("default".into()),
            watch_interval: Some(Duration::from_secs(2)),
            max_request_bytes: 1024 * 1024,
        }
    }
}

/// The tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `status`.
    Status,
    /// `sense`.
    Sense,
    /// `emit`.
    Emit,
    /// `propose`.
    Propose,
    /// `invoke`.
    Invoke,
}

impl ToolKind {
    /// Every tool, in listing order.
    pub const ALL: [ToolKind; 5] = [
        ToolKind::Status,
        ToolKind::Sense,
        ToolKind::Emit,
        ToolKind::Propose,
        ToolKind::Invoke,
    ];

    /// The tool's name.
    pub fn name(self) -> &'static str {
        match self {
            ToolKind::Status => "status",
            ToolKind::Sense => "sense",
            ToolKind::Emit => "emit",
            ToolKind::Propose => "propose",
            ToolKind::Invoke => "invoke",
        }
    }

    /// The tool of a name.
    pub fn from_name(name: &str) -> Option<ToolKind> {
        ToolKind::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the tool writes to the cluster.
    pub fn writes(self) -> bool {
        matches!(self, ToolKind::Emit | ToolKind::Propose)
    }
}

/// Whether an operation writes (unknown operations count as writes: deny by default).
pub fn operation_writes(operation: K8sOperation) -> bool {
    !matches!(
        operation,
        K8sOperation::ListAgents
            | K8sOperation::GetAgent
            | K8sOperation::WatchPheromones
            | K8sOperation::ListProposals
            | K8sOperation::ListMemories
            | K8sOperation::ListUmwelts
            | K8sOperation::PortForward
            | K8sOperation::ReconstructHistory
            | K8sOperation::DefineConcept
            | K8sOperation::BlendConcepts
            | K8sOperation::RefineText
    )
}

const AGENTS: &str = "world.cluster.agents.manifest";
const SENSE: &str = "void.pheromone.sense";
const EMIT: &str = "void.pheromone.emit";
const DEFINE: &str = "self.deployment.define";
const PROPOSALS: &str = "world.cluster.proposals.manifest";

struct Shared {
    logos: Logos,
    caller: Caller,
    config: McpConfig,
    changes: broadcast::Sender<Arc<Changes>>,
}

#[derive(Default)]
struct Session {
    subscribed: Mutex<BTreeSet<String>>,
    forwarding: AtomicBool,
}

/// The MCP server over one Logos and one caller. Cheap to clone; [`KgentsMcp::session`] makes
/// the per-connection handler an HTTP transport asks for.
#[derive(Clone)]
pub struct KgentsMcp {
    shared: Arc<Shared>,
    session: Arc<Session>,
}

/// A tool's failure, shown to the model as a tool result with `isError`.
enum Failure {
    Tool(String),
}

impl From<ArgError> for Failure {
    fn from(e: ArgError) -> Self {
        Failure::Tool(e.to_string())
    }
}

impl From<LogosError> for Failure {
    fn from(e: LogosError) -> Self {
        Failure::Tool(logos_text(&e))
    }
}

impl From<page::CursorError> for Failure {
    fn from(e: page::CursorError) -> Self {
        Failure::Tool(format!("invalid arguments: field \"cursor\": {e}"))
    }
}

fn logos_text(e: &LogosError) -> String {
    let kind = match e.kind() {
        ErrorKind::Usage => "bad input",
        ErrorKind::Denied => "denied",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::NotFound => "not found",
        ErrorKind::Failed => "failed",
    };
    redact::redact_text(&format!("{kind}: {e}")).0
}

fn logos_error(e: &LogosError) -> ErrorData {
    let text = logos_text(e);
    match e.kind() {
        ErrorKind::NotFound => ErrorData::resource_not_found(text, None),
        ErrorKind::Usage => ErrorData::invalid_params(text, None),
        ErrorKind::Denied => ErrorData::invalid_request(text, None),
        ErrorKind::Unavailable | ErrorKind::Failed => ErrorData::internal_error(text, None),
    }
}

/// The listing id of a sense (its cursors are valid only for the same scope and query).
fn sense_listing(scope: &Scope, input: &SenseInput) -> String {
    listing_id(&[
        "sense",
        &scope_key(scope),
        &serde_json::to_string(input).unwrap_or_default(),
    ])
}

fn scope_key(scope: &Scope) -> String {
    match scope {
        Scope::Namespace(ns) => ns.clone(),
        Scope::All => "*".into(),
    }
}

/// A short, stable hash (FNV-1a) naming a listing inside cursors.
fn listing_id(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn object_schema(properties: Value) -> Arc<JsonObject> {
    let mut map = Map::new();
    map.insert("type".into(), json!("object"));
    map.insert("properties".into(), properties);
    Arc::new(map)
}

fn listing_schema(extra: Value) -> Arc<JsonObject> {
    let mut properties = json!({
        "total": {"type": "integer", "description": "items in the whole listing"},
        "returned": {"type": "integer", "description": "items on this page"},
        "items": {"type": "array", "items": {"type": "object"}},
        "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page"},
        "note": {"type": ["string", "null"], "description": "why the page stops, and how to read on"},
    });
    if let (Some(p), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        p.extend(extra);
    }
    object_schema(properties)
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false)
}

impl KgentsMcp {
    /// A server resolving through `logos` as `caller`.
    pub fn new(logos: Logos, caller: Caller, config: McpConfig) -> KgentsMcp {
        let (changes, _) = broadcast::channel(64);
        KgentsMcp {
            shared: Arc::new(Shared {
                logos,
                caller,
                config,
                changes,
            }),
            session: Arc::new(Session::default()),
        }
    }

    /// The same server with fresh per-connection state (subscriptions).
    pub fn session(&self) -> KgentsMcp {
        KgentsMcp {
            shared: Arc::clone(&self.shared),
            session: Arc::new(Session::default()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &McpConfig {
        &self.shared.config
    }

    pub(crate) fn logos(&self) -> &Logos {
        &self.shared.logos
    }

    pub(crate) fn caller(&self) -> &Caller {
        &self.shared.caller
    }

    pub(crate) fn change_sender(&self) -> &broadcast::Sender<Arc<Changes>> {
        &self.shared.changes
    }

    fn afforded(&self, path: &str) -> bool {
        Path::parse(path).is_ok_and(|p| self.shared.caller.check(&p).is_ok())
    }

    /// The registered path templates the caller may use (placeholders shown as `<name>`).
    pub fn afforded_paths(&self) -> Vec<String> {
        self.shared
            .logos
            .registry()
            .entries()
            .iter()
            .filter(|entry| {
                let template = entry.template();
                let bindings: Vec<(&str, &str)> =
                    template.placeholders().map(|p| (p, "x")).collect();
                template
                    .instantiate(&bindings)
                    .is_ok_and(|p| self.shared.caller.check(&p).is_ok())
                    && (self.shared.config.allow_writes || !operation_writes(entry.operation()))
            })
            .map(|entry| entry.template().to_string())
            .collect()
    }

    fn tool_visible(&self, tool: ToolKind) -> bool {
        if tool.writes() && !self.shared.config.allow_writes {
            return false;
        }
        match tool {
            ToolKind::Status => [AGENTS, SENSE, PROPOSALS].iter().any(|p| self.afforded(p)),
            ToolKind::Sense => self.afforded(SENSE),
            ToolKind::Emit => self.afforded(EMIT),
            ToolKind::Propose => self.afforded(DEFINE),
            ToolKind::Invoke => !self.afforded_paths().is_empty(),
        }
    }

    /// The tools this caller sees: read tools, write tools with `allow_writes`, each only if
    /// the caller's affordances grant its paths.
    pub fn tools(&self) -> Vec<Tool> {
        ToolKind::ALL
            .into_iter()
            .filter(|t| self.tool_visible(*t))
            .map(|t| self.tool(t))
            .collect()
    }

    fn tool(&self, kind: ToolKind) -> Tool {
        let cap = self.shared.config.max_bytes;
        match kind {
            ToolKind::Status => Tool::new(
                "status",
                format!("One screen of the society: cluster health, agents by phase and health, pheromone heat, pending proposals (world.cluster.agents.manifest, void.pheromone.sense, world.cluster.proposals.manifest). detail=full adds the items themselves, within the {cap}-byte cap."),
                args::schema_of::<StatusArgs>(),
            )
            .with_title("Society status")
            .with_raw_output_schema(object_schema(json!({
                "scope": {"type": "string"},
                "cluster": {"type": ["object", "null"]},
                "agents": {"type": ["object", "null"]},
                "pheromones": {"type": ["object", "null"]},
                "pending_proposals": {"type": ["object", "null"]},
                "problems": {"type": "array", "items": {"type": "string"}},
            })))
            .with_annotations(read_only()),
            ToolKind::Sense => Tool::new(
                "sense",
                "The live pheromone field (void.pheromone.sense): current, decayed intensities, strongest first, with heat per type. Filter by types, source, or target (what an agent senses). Paged: pass next_cursor back as cursor.",
                args::schema_of::<SenseArgs>(),
            )
            .with_title("Sense the pheromone field")
            .with_raw_output_schema(listing_schema(json!({
                "heat": {"type": "array", "items": {"type": "object"}},
                "evaporated": {"type": "integer"},
            })))
            .with_annotations(read_only()),
            ToolKind::Emit => Tool::new(
                "emit",
                "Emit a pheromone (void.pheromone.emit): a decaying signal to other agents (WARNING, INTENT, DREAM, STATE, ...). Writes a Pheromone resource as this server's identity.",
                args::schema_of::<EmitArgs>(),
            )
            .with_title("Emit a pheromone")
            .with_raw_output_schema(object_schema(json!({
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "pheromone_type": {"type": "string"},
                "intensity": {"type": "number"},
            })))
            .with_annotations(
                ToolAnnotations::new()
                    .read_only(false)
                    .destructive(false)
                    .idempotent(false)
                    .open_world(false),
            ),
            ToolKind::Propose => Tool::new(
                "propose",
                "File a proposal (self.deployment.define). First the local risk preview and the admission verdict of a server-side dry run; then, unless dry_run is set and if the dry run was admitted, the proposal is filed and waits for the T-gent and human review. Nothing is applied directly.",
                args::schema_of::<ProposeArgs>(),
            )
            .with_title("Propose a change")
            .with_raw_output_schema(object_schema(json!({
                "preview": {"type": "object"},
                "dry_run": {"type": "object"},
                "filed": {"type": ["object", "null"]},
            })))
            .with_annotations(
                ToolAnnotations::new()
                    .read_only(false)
                    .destructive(false)
                    .idempotent(false)
                    .open_world(false),
            ),
            ToolKind::Invoke => Tool::new(
                "invoke",
                format!(
                    "Resolve any AGENTESE path this server's caller may use, through the Logos. Paths: {}. List results are paged (cursor) and compact unless detail=full.{}",
                    self.afforded_paths().join(", "),
                    if self.shared.config.allow_writes { "" } else { " This server is read-only: writing paths are refused." }
                ),
                args::schema_of::<InvokeArgs>(),
            )
            .with_title("Invoke an AGENTESE path")
            .with_raw_output_schema(object_schema(json!({
                "path": {"type": "string"},
                "kind": {"type": "string"},
                "total": {"type": "integer"},
                "items": {"type": "array"},
                "next_cursor": {"type": ["string", "null"]},
                "data": {},
            })))
            .with_annotations(
                ToolAnnotations::new()
                    .read_only(!self.shared.config.allow_writes)
                    .destructive(false)
                    .open_world(false),
            ),
        }
    }

    /// Calls a tool. Unknown tools, and write tools on a read-only server, are protocol
    /// errors (they are not listed); bad arguments and the Logos's refusals are tool errors
    /// the model reads.
    ///
    /// # Errors
    /// [`ErrorData`] for an unknown, hidden or refused tool.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<&JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let tools = || {
            ToolKind::ALL
                .into_iter()
                .filter(|t| self.tool_visible(*t))
                .map(ToolKind::name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(kind) = ToolKind::from_name(name) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; the tools are {}",
                    name.chars().take(80).collect::<String>(),
                    tools()
                ),
                None,
            ));
        };
        if kind.writes() && !self.shared.config.allow_writes {
            return Err(ErrorData::invalid_params(
                format!(
                    "{name} writes to the cluster and this server is read-only (start it with --allow-writes); the tools are {}",
                    tools()
                ),
                None,
            ));
        }
        if !self.tool_visible(kind) {
            return Err(ErrorData::invalid_params(
                format!(
                    "{name} is not afforded to {}; the tools are {}",
                    self.shared.caller.identity(),
                    tools()
                ),
                None,
            ));
        }
        let outcome = match kind {
            ToolKind::Status => self.status_tool(arguments).await,
            ToolKind::Sense => self.sense_tool(arguments).await,
            ToolKind::Emit => self.emit_tool(arguments).await,
            ToolKind::Propose => self.propose_tool(arguments).await,
            ToolKind::Invoke => self.invoke_tool(arguments).await,
        };
        match outcome {
            Ok((value, text)) => Ok(self.finish(value, text)),
            Err(Failure::Tool(text)) => Ok(CallToolResult::error(vec![ContentBlock::text(
                page::cap_text(redact::redact_text(&text).0, self.shared.config.max_bytes).0,
            )])),
        }
    }

    /// Redacts and caps both renderings.
    fn finish(&self, mut value: Value, text: String) -> CallToolResult {
        let cap = self.shared.config.max_bytes;
        redact::redact_value(&mut value);
        let (value, _) = page::cap_value(value, cap);
        let (text, _) = page::cap_text(redact::redact_text(&text).0, cap);
        // `success` then the structured content: `structured` would serialise the value once
        // more for a text block that the rendering replaces.
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(value);
        result
    }

    /// Builds a listing document whose whole serialisation fits the byte cap: the item
    /// budget is an estimate (the envelope's size is only known once built), so an overshoot
    /// is taken off the budget and the page built again from the same, already read, data.
    fn fit(
        &self,
        limit: Option<usize>,
        mut build: impl FnMut(Bounds) -> Result<Value, page::CursorError>,
    ) -> Result<Value, page::CursorError> {
        let cap = self.shared.config.max_bytes;
        let mut bounds = self.bounds(limit);
        loop {
            let doc = build(bounds)?;
            let size = doc.to_string().len();
            let single = doc["returned"].as_u64().is_none_or(|n| n <= 1);
            if size <= cap || single || bounds.item_bytes <= 256 {
                return Ok(doc);
            }
            bounds.item_bytes = bounds.item_bytes.saturating_sub(size - cap + 64).max(256);
        }
    }

    fn bounds(&self, limit: Option<usize>) -> Bounds {
        Bounds {
            limit: limit.unwrap_or(self.shared.config.page_size),
            item_bytes: page::item_budget(self.shared.config.max_bytes),
        }
    }

    async fn invoke(&self, path: &str, args: Args) -> Result<Outcome, LogosError> {
        self.shared
            .logos
            .invoke(&self.shared.caller, path, args)
            .await
    }

    fn write_scope(&self, namespace: Option<&str>) -> Result<Scope, ArgError> {
        match args::scope(namespace, false, &self.shared.config.scope)? {
            Scope::All => Err(ArgError::field(
                "namespace",
                "this tool writes to one namespace; name it (the server serves all namespaces)",
            )),
            scope => Ok(scope),
        }
    }

    // -----------------------------------------------------------------------------------------
    // status

    async fn status_doc(&self, scope: Scope, detail: Detail) -> Value {
        let report = self
            .shared
            .logos
            .status(&self.shared.caller, scope.clone())
            .await;
        let third = Bounds {
            limit: usize::MAX,
            item_bytes: page::item_budget(self.shared.config.max_bytes) / 3,
        };
        let full = detail == Detail::Full;
        let agents = report.agents.as_ref().map(|a| {
            let a = &a.counts;
            let mut v = json!({
                "total": a.total,
                "ready": a.ready,
                "by_phase": a.by_phase,
                "by_health": a.by_health,
                "needing_attention": a.attention_total,
            });
            if full {
                // The agents not Running, not HEALTHY or not fully ready.
                let page = page::page_by_offset(
                    &a.attention,
                    |x| render::item(x, detail, render::agent_row),
                    "status",
                    None,
                    third,
                )
                .unwrap_or_else(|_| empty_page());
                v["items"] = Value::Array(page.items.clone());
                v["note"] = json!(page.note().map(|_| format!(
                    "{} of {} agents needing attention shown; read kgents://agents for pages",
                    page.items.len(),
                    a.attention_total
                )));
            }
            v
        });
        // The status counts signals and their heat; `sense` lists them.
        let pheromones = report.field.as_ref().map(|f| {
            json!({
                "signals": f.heat.live,
                "evaporated": f.heat.evaporated,
                "heat": render::heat(&f.heat.heat),
            })
        });
        let pending = report.pending.as_ref().map(|p| {
            let shown = if full { usize::MAX } else { 10 };
            let bounds = Bounds { limit: shown, ..third };
            let page = page::page_by_offset(&p.proposals, |x| render::item(x, detail, render::proposal_summary_row), "status", None, bounds)
                .unwrap_or_else(|_| empty_page());
            json!({
                "count": p.proposals.len(),
                "items": page.items,
                "note": page.note().map(|_| format!("{} of {} shown; read kgents://proposals for pages", page.items.len(), page.total)),
            })
        });
        json!({
            "scope": scope_key(&scope),
            "cluster": report.cluster,
            "agents": agents,
            "pheromones": pheromones,
            "pending_proposals": pending,
            "problems": report.problems,
        })
    }

    async fn status_tool(
        &self,
        arguments: Option<&JsonObject>,
    ) -> Result<(Value, String), Failure> {
        let a: StatusArgs = args::parse(arguments)?;
        let scope = args::scope(
            a.namespace.as_deref(),
            a.all_namespaces,
            &self.shared.config.scope,
        )?;
        let doc = self.status_doc(scope, a.detail).await;
        let text = status_text(&doc);
        Ok((doc, text))
    }

    // -----------------------------------------------------------------------------------------
    // sense

    /// The field for one page of a ranked listing starting at `start`: only the signals up to
    /// the page's end (and one more, to know a next page exists) are listed; `admitted`
    /// counts them all.
    async fn sense_page(
        &self,
        scope: Scope,
        mut input: SenseInput,
        start: usize,
        limit: Option<usize>,
    ) -> Result<FieldReport, LogosError> {
        input.limit = Some(
            start
                .saturating_add(self.bounds(limit).limit)
                .saturating_add(1),
        );
        let outcome = self
            .invoke(SENSE, Args::new(scope).with_input(&input))
            .await?;
        let Outcome::Sensed(report) = outcome else {
            return Err(LogosError::BadInput {
                path: SENSE.into(),
                reason: "an unexpected result".into(),
            });
        };
        Ok(report)
    }

    async fn sense_tool(&self, arguments: Option<&JsonObject>) -> Result<(Value, String), Failure> {
        let a: SenseArgs = args::parse(arguments)?;
        let scope = args::scope(
            a.namespace.as_deref(),
            a.all_namespaces,
            &self.shared.config.scope,
        )?;
        let limit = args::limit(a.limit)?;
        let input = SenseInput {
            types: a.pheromone_types()?,
            source: a.source.clone(),
            target: a.target.clone(),
            limit: None,
        };
        let listing = sense_listing(&scope, &input);
        let start = page::offset_of(a.cursor.as_deref(), &listing)?;
        let report = self.sense_page(scope, input, start, limit).await?;
        let doc = self.fit(limit, |bounds| {
            let mut page = page::page_by_offset(
                &report.pheromones,
                |p| render::item(p, a.detail, render::pheromone_row),
                &listing,
                a.cursor.as_deref(),
                bounds,
            )?;
            page.total = report.admitted;
            Ok(json!({
                "at": report.at,
                "total": page.total,
                "returned": page.items.len(),
                "note": page.note(),
                "items": page.items,
                "heat": render::heat(&report.heat),
                "evaporated": report.evaporated,
                "next_cursor": page.next_cursor,
            }))
        })?;
        let text = listing_text_of("pheromones", &doc);
        Ok((doc, text))
    }

    // -----------------------------------------------------------------------------------------
    // emit, propose

    async fn emit_tool(&self, arguments: Option<&JsonObject>) -> Result<(Value, String), Failure> {
        let a: EmitArgs = args::parse(arguments)?;
        let scope = self.write_scope(a.namespace.as_deref())?;
        let pheromone_type = a
            .pheromone_type
            .parse()
            .map_err(|e: kgents_core::Error| ArgError::field("pheromone_type", e.to_string()))?;
        let defaults = EmitInput::default();
        let input = EmitInput {
            pheromone_type: Some(pheromone_type),
            source: a.source,
            target: a.target,
            intensity: a.intensity.unwrap_or(defaults.intensity),
            half_life_minutes: a.half_life_minutes.unwrap_or(defaults.half_life_minutes),
            ttl_seconds: a.ttl_seconds,
            payload: a.payload,
            name: a.name,
        };
        let Outcome::Emitted(emitted) = self
            .invoke(EMIT, Args::new(scope).with_input(&input))
            .await?
        else {
            return Err(Failure::Tool(format!(
                "{EMIT} answered an unexpected result"
            )));
        };
        let text = render::emitted_text(&emitted);
        let value = serde_json::to_value(&emitted).unwrap_or(Value::Null);
        Ok((value, text))
    }

    async fn propose_tool(
        &self,
        arguments: Option<&JsonObject>,
    ) -> Result<(Value, String), Failure> {
        let a: ProposeArgs = args::parse(arguments)?;
        let scope = self.write_scope(a.namespace.as_deref())?;
        let spec = a.proposal_spec()?;
        let filed = |outcome: Outcome| match outcome {
            Outcome::Filed(filed) => Ok(filed),
            _ => Err(Failure::Tool(format!(
                "{DEFINE} answered an unexpected result"
            ))),
        };
        // The dry run first: the preview and the webhook's verdict, nothing stored.
        let dry = filed(
            self.invoke(
                DEFINE,
                Args::new(scope.clone()).with_input(&DefineInput {
                    name: a.name.clone(),
                    spec: Some(spec.clone()),
                    dry_run: true,
                    force: false,
                }),
            )
            .await?,
        )?;
        let admitted = matches!(dry.server, ServerVerdict::Admitted { .. });
        let stored: Option<Filed> = if a.dry_run || !admitted {
            None
        } else {
            Some(filed(
                self.invoke(
                    DEFINE,
                    Args::new(scope).with_input(&DefineInput {
                        name: a.name.clone(),
                        spec: Some(spec),
                        dry_run: false,
                        force: false,
                    }),
                )
                .await?,
            )?)
        };
        let mut text = render::preview_text(&dry.preview);
        let _ = writeln!(text, "dry run: {}", render::verdict_text(&dry.server));
        match &stored {
            Some(f) => {
                let _ = writeln!(
                    text,
                    "filed {}/{}: {}",
                    f.namespace,
                    f.name,
                    render::verdict_text(&f.server)
                );
            }
            None if a.dry_run => text.push_str("not filed (dry_run)\n"),
            None => text.push_str("not filed: the dry run was not admitted\n"),
        }
        let doc = json!({
            "preview": dry.preview,
            "dry_run": dry.server,
            "filed": stored.map(|f| json!({"name": f.name, "namespace": f.namespace, "server": f.server})),
        });
        Ok((doc, text))
    }

    // -----------------------------------------------------------------------------------------
    // invoke

    async fn invoke_tool(
        &self,
        arguments: Option<&JsonObject>,
    ) -> Result<(Value, String), Failure> {
        let a: InvokeArgs = args::parse(arguments)?;
        let limit = args::limit(a.limit)?;
        let scope = args::scope(
            a.namespace.as_deref(),
            a.all_namespaces,
            &self.shared.config.scope,
        )?;
        if !self.shared.config.allow_writes
            && let Ok(parsed) = Path::parse(&a.path)
            && let Some(found) = self.shared.logos.registry().by_path(&parsed)
            && operation_writes(found.entry.operation())
        {
            return Err(Failure::Tool(format!(
                "refused: {} writes ({}) and this server is read-only (start it with --allow-writes)",
                parsed,
                found.entry.operation()
            )));
        }
        let listing = listing_id(&[
            "invoke",
            &a.path,
            &scope_key(&scope),
            a.selector.as_deref().unwrap_or_default(),
            &a.input.as_ref().map(Value::to_string).unwrap_or_default(),
        ]);
        let call = Args {
            scope,
            selector: a.selector.clone(),
            input: a.input.clone().unwrap_or(Value::Null),
        };
        let outcome = self.invoke(&a.path, call).await?;
        let cursor = a.cursor.as_deref();
        let detail = a.detail;
        let key = |ns: &str, name: &str| format!("{ns}/{name}");
        let kind = match &outcome {
            Outcome::Agents(_) => "agents",
            Outcome::Sensed(_) => "pheromones",
            Outcome::Proposals(_) => "proposals",
            Outcome::Memories(_) => "memories",
            Outcome::Umwelts(_) => "umwelts",
            other => {
                let value = serde_json::to_value(other).unwrap_or(Value::Null);
                let kind = value.get("kind").cloned().unwrap_or(Value::Null);
                let data = value.get("data").cloned().unwrap_or(Value::Null);
                let text = serde_json::to_string_pretty(&data).unwrap_or_default();
                return Ok((json!({"path": a.path, "kind": kind, "data": data}), text));
            }
        };
        let doc = self.fit(limit, |bounds| {
            let (page, extra) = match &outcome {
                Outcome::Agents(m) => (
                    page::page_by_key(
                        &m.agents,
                        |x| key(&x.namespace, x.name.as_str()),
                        |x| render::item(x, detail, render::agent_row),
                        &listing,
                        cursor,
                        bounds,
                    )?,
                    json!({"ready": m.ready, "by_phase": m.by_phase, "by_health": m.by_health}),
                ),
                Outcome::Sensed(r) => (
                    page::page_by_offset(
                        &r.pheromones,
                        |x| render::item(x, detail, render::pheromone_row),
                        &listing,
                        cursor,
                        bounds,
                    )?,
                    json!({"heat": render::heat(&r.heat), "evaporated": r.evaporated}),
                ),
                Outcome::Proposals(m) => (
                    page::page_by_key(
                        &m.proposals,
                        |x: &ProposalRecord| key(&x.summary.namespace, &x.summary.name),
                        |x| render::item(x, detail, render::proposal_row),
                        &listing,
                        cursor,
                        bounds,
                    )?,
                    json!({}),
                ),
                Outcome::Memories(m) => (
                    page::page_by_key(
                        &m.memories,
                        |x| key(&x.namespace, &x.name),
                        |x| serde_json::to_value(x).unwrap_or(Value::Null),
                        &listing,
                        cursor,
                        bounds,
                    )?,
                    json!({}),
                ),
                Outcome::Umwelts(m) => (
                    page::page_by_key(
                        &m.umwelts,
                        |x| key(&x.namespace, &x.name),
                        |x| serde_json::to_value(x).unwrap_or(Value::Null),
                        &listing,
                        cursor,
                        bounds,
                    )?,
                    json!({}),
                ),
                _ => (empty_page(), json!({})),
            };
            let mut doc = json!({
                "path": a.path,
                "kind": kind,
                "total": page.total,
                "returned": page.items.len(),
                "note": page.note(),
                "items": page.items,
                "next_cursor": page.next_cursor,
            });
            if let (Some(d), Value::Object(extra)) = (doc.as_object_mut(), extra) {
                d.extend(extra);
            }
            Ok(doc)
        })?;
        let text = listing_text_of(kind, &doc);
        Ok((doc, text))
    }

    // -----------------------------------------------------------------------------------------
    // resources

    /// The fixed resources, agents and proposals this caller may read, paged by `cursor`.
    ///
    /// # Errors
    /// [`ErrorData`] for a cursor this server did not issue.
    pub async fn resources(&self, cursor: Option<&str>) -> Result<ListResourcesResult, ErrorData> {
        let mut all: Vec<Resource> = Vec::new();
        for r in uri::RESOURCES {
            let path = match r.name {
                "agents" => AGENTS,
                "pheromones" => SENSE,
                "proposals" => PROPOSALS,
                _ => "",
            };
            let visible = if path.is_empty() {
                self.tool_visible(ToolKind::Status)
            } else {
                self.afforded(path)
            };
            if visible {
                all.push(
                    Resource::new(r.uri, r.name)
                        .with_description(r.description)
                        .with_mime_type("application/json"),
                );
            }
        }
        let scope = self.shared.config.scope.clone();
        if self.afforded(AGENTS) {
            match self.invoke(AGENTS, Args::new(scope.clone())).await {
                Ok(Outcome::Agents(m)) => {
                    for a in &m.agents {
                        let name = a.name.to_string();
                        if self.afforded(&format!("world.cluster.agents.{name}.manifest")) {
                            all.push(
                                Resource::new(
                                    uri::agent_uri(&a.namespace, &name),
                                    format!("agent {}/{name}", a.namespace),
                                )
                                .with_description(format!(
                                    "{} agent, {} ({})",
                                    a.genus, a.phase, a.cognitive_health
                                ))
                                .with_mime_type("application/json"),
                            );
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "listing agents for resources/list"),
            }
        }
        if self.afforded(PROPOSALS) {
            match self.invoke(PROPOSALS, Args::new(scope)).await {
                Ok(Outcome::Proposals(m)) => {
                    for p in &m.proposals {
                        let s = &p.summary;
                        all.push(
                            Resource::new(
                                uri::proposal_uri(&s.namespace, &s.name),
                                format!("proposal {}/{}", s.namespace, s.name),
                            )
                            .with_description(format!(
                                "{} of {} ({}, risk {})",
                                s.change_type, s.target, s.phase, s.risk_level
                            ))
                            .with_mime_type("application/json"),
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "listing proposals for resources/list"),
            }
        }
        let page = page::page_by_offset(
            &all,
            |r| serde_json::to_value(r).unwrap_or(Value::Null),
            "resources",
            cursor,
            self.bounds(None),
        )
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let mut result = ListResourcesResult::with_all_items(
            page.items
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
        );
        result.next_cursor = page.next_cursor;
        Ok(result)
    }

    /// The templates this caller may read.
    pub fn templates(&self) -> Vec<ResourceTemplate> {
        uri::TEMPLATES
            .iter()
            .filter(|t| match t.name {
                "agent" => self.afforded("world.cluster.agents.x.manifest"),
                "pheromones-of-type" => self.afforded(SENSE),
                _ => self.afforded(PROPOSALS),
            })
            .map(|t| {
                ResourceTemplate::new(t.uri, t.name)
                    .with_description(t.description)
                    .with_mime_type("application/json")
            })
            .collect()
    }

    /// Reads a resource: its JSON document, redacted and capped.
    ///
    /// # Errors
    /// Resource-not-found for an unknown URI (listing the templates) or a missing object,
    /// invalid-params for a bad query or cursor, and the Logos's refusals.
    pub async fn read(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        let parsed = ResourceRef::parse(uri).map_err(|e| {
            ErrorData::resource_not_found(
                e.to_string(),
                Some(json!({"uri": e.uri, "templates": uri::template_uris(), "resources": uri::RESOURCES.iter().map(|r| r.uri).collect::<Vec<_>>()})),
            )
        })?;
        let mut doc = self.resource_doc(&parsed).await?;
        redact::redact_value(&mut doc);
        let (doc, _) = page::cap_value(doc, self.shared.config.max_bytes);
        let mut result = ReadResourceResult::new(vec![
            ResourceContents::text(doc.to_string(), uri).with_mime_type("application/json"),
        ]);
        result.ttl_ms = Some(0);
        Ok(result)
    }

    fn query_scope(&self, q: &ListQuery) -> Result<Scope, ErrorData> {
        args::scope(
            q.namespace.as_deref(),
            q.all_namespaces,
            &self.shared.config.scope,
        )
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
    }

    async fn resource_doc(&self, r: &ResourceRef) -> Result<Value, ErrorData> {
        let base = r.base();
        let cursor_error = |e: page::CursorError| ErrorData::invalid_params(e.to_string(), None);
        let listing_doc = |page: Page, q: &ListQuery, extra: &Value| {
            let next_uri = page
                .next_cursor
                .as_ref()
                .map(|c| uri::next_page_uri(&base, q, c));
            let mut doc = json!({
                "uri": base,
                "total": page.total,
                "returned": page.items.len(),
                "note": page.note().map(|n| format!("{n}, or read next_uri")),
                "items": page.items,
                "next_cursor": page.next_cursor,
                "next_uri": next_uri,
            });
            if let (Some(d), Value::Object(extra)) = (doc.as_object_mut(), extra) {
                d.extend(extra.clone());
            }
            doc
        };
        match r {
            ResourceRef::Agents(q) => {
                let scope = self.query_scope(q)?;
                let listing = listing_id(&["agents", &scope_key(&scope)]);
                let outcome = self
                    .invoke(AGENTS, Args::new(scope))
                    .await
                    .map_err(|e| logos_error(&e))?;
                let Outcome::Agents(m) = outcome else {
                    return Err(ErrorData::internal_error("unexpected result", None));
                };
                let extra =
                    json!({"ready": m.ready, "by_phase": m.by_phase, "by_health": m.by_health});
                self.fit(q.limit, |bounds| {
                    let page = page::page_by_key(
                        &m.agents,
                        |a| format!("{}/{}", a.namespace, a.name),
                        |a| render::item(a, q.detail, render::agent_row),
                        &listing,
                        q.cursor.as_deref(),
                        bounds,
                    )?;
                    Ok(listing_doc(page, q, &extra))
                })
                .map_err(cursor_error)
            }
            ResourceRef::Agent { namespace, name } => {
                let outcome = self
                    .invoke(
                        &format!("world.cluster.agents.{name}.manifest"),
                        Args::new(Scope::Namespace(namespace.clone())),
                    )
                    .await
                    .map_err(|e| logos_error(&e))?;
                Ok(match outcome {
                    Outcome::Agent(a) => json!({"uri": base, "agent": a.agent, "source": a.source}),
                    other => serde_json::to_value(other).unwrap_or(Value::Null),
                })
            }
            ResourceRef::Pheromones {
                pheromone_type,
                query: q,
            } => {
                let scope = self.query_scope(q)?;
                let input = SenseInput {
                    types: pheromone_type.iter().copied().collect(),
                    ..SenseInput::default()
                };
                let listing = sense_listing(&scope, &input);
                let start = page::offset_of(q.cursor.as_deref(), &listing).map_err(cursor_error)?;
                let report = self
                    .sense_page(scope, input, start, q.limit)
                    .await
                    .map_err(|e| logos_error(&e))?;
                let extra = json!({"at": report.at, "heat": render::heat(&report.heat), "evaporated": report.evaporated});
                self.fit(q.limit, |bounds| {
                    let mut page = page::page_by_offset(
                        &report.pheromones,
                        |p| render::item(p, q.detail, render::pheromone_row),
                        &listing,
                        q.cursor.as_deref(),
                        bounds,
                    )?;
                    page.total = report.admitted;
                    Ok(listing_doc(page, q, &extra))
                })
                .map_err(cursor_error)
            }
            ResourceRef::Proposals(q) => {
                let scope = self.query_scope(q)?;
                let listing = listing_id(&["proposals", &scope_key(&scope)]);
                let outcome = self
                    .invoke(PROPOSALS, Args::new(scope))
                    .await
                    .map_err(|e| logos_error(&e))?;
                let Outcome::Proposals(m) = outcome else {
                    return Err(ErrorData::internal_error("unexpected result", None));
                };
                self.fit(q.limit, |bounds| {
                    let page = page::page_by_key(
                        &m.proposals,
                        |p| format!("{}/{}", p.summary.namespace, p.summary.name),
                        |p| render::item(p, q.detail, render::proposal_row),
                        &listing,
                        q.cursor.as_deref(),
                        bounds,
                    )?;
                    Ok(listing_doc(page, q, &json!({})))
                })
                .map_err(cursor_error)
            }
            ResourceRef::Proposal { namespace, name } => {
                let outcome = self
                    .invoke(PROPOSALS, Args::new(Scope::Namespace(namespace.clone())))
                    .await
                    .map_err(|e| logos_error(&e))?;
                let Outcome::Proposals(m) = outcome else {
                    return Err(ErrorData::internal_error("unexpected result", None));
                };
                let found = m.proposals.into_iter().find(|p| &p.summary.name == name).ok_or_else(|| {
                    ErrorData::resource_not_found(
                        format!("proposal {name:?} not found in namespace {namespace}; read kgents://proposals?namespace={namespace} for the list"),
                        Some(json!({"uri": base})),
                    )
                })?;
                Ok(json!({"uri": base, "proposal": found, "source": m.source}))
            }
            ResourceRef::ClusterStatus(q) => {
                let scope = self.query_scope(q)?;
                if !self.tool_visible(ToolKind::Status) {
                    return Err(ErrorData::invalid_request(
                        format!(
                            "{} may use none of {AGENTS}, {SENSE}, {PROPOSALS}",
                            self.shared.caller.identity()
                        ),
                        None,
                    ));
                }
                Ok(self.status_doc(scope, q.detail).await)
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // notifications

    fn subscribable(uri: &str) -> bool {
        ResourceRef::parse(uri).is_ok_and(|r| r.base() == uri)
    }

    fn start_forwarding(&self, peer: rmcp::Peer<RoleServer>) {
        if self.session.forwarding.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut rx = self.shared.changes.subscribe();
        let session = Arc::clone(&self.session);
        tokio::spawn(async move {
            loop {
                let changes = match rx.recv().await {
                    Ok(changes) => changes,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if peer.is_transport_closed() {
                    break;
                }
                if changes.list_changed && peer.notify_resource_list_changed().await.is_err() {
                    break;
                }
                let wanted: Vec<String> = {
                    let subscribed = session.subscribed.lock().unwrap_or_else(|p| p.into_inner());
                    changes
                        .updated
                        .iter()
                        .filter(|u| subscribed.contains(*u))
                        .cloned()
                        .collect()
                };
                for uri in wanted {
                    if peer
                        .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            session.forwarding.store(false, Ordering::SeqCst);
        });
    }
}

/// The text rendering of a listing document.
fn listing_text_of(kind: &str, doc: &Value) -> String {
    let items = doc["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let total = doc["total"].as_u64().unwrap_or_default();
    render::listing_text(
        kind,
        usize::try_from(total).unwrap_or(usize::MAX),
        items,
        doc["note"].as_str(),
    )
}

fn empty_page() -> Page {
    Page {
        items: Vec::new(),
        total: 0,
        next_cursor: None,
        cut_by_bytes: false,
    }
}

fn status_text(doc: &Value) -> String {
    let mut out = format!("scope: {}\n", doc["scope"].as_str().unwrap_or("-"));
    if let Some(c) = doc["cluster"].as_object() {
        let _ = writeln!(
            out,
            "cluster: {} nodes ready of {}, server {}",
            c.get("nodes_ready").unwrap_or(&Value::Null),
            c.get("nodes_total").unwrap_or(&Value::Null),
            c.get("server_version")
                .and_then(Value::as_str)
                .unwrap_or("-")
        );
        for comp in c
            .get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let _ = writeln!(
                out,
                "  {}: {} {}",
                comp["name"].as_str().unwrap_or("-"),
                if comp["healthy"].as_bool() == Some(true) {
                    "healthy"
                } else {
                    "UNHEALTHY"
                },
                comp["message"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(a) = doc["agents"].as_object() {
        let _ = writeln!(
            out,
            "agents: {} ({} ready); by phase {}; by health {}",
            a["total"], a["ready"], a["by_phase"], a["by_health"]
        );
        if let Some(items) = a.get("items").and_then(Value::as_array) {
            out.push_str(&render::item_lines("agents", items));
        }
    }
    if let Some(p) = doc["pheromones"].as_object() {
        let _ = writeln!(
            out,
            "pheromones: {} live, {} evaporated",
            p["signals"], p["evaporated"]
        );
        for h in p["heat"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {} count {} sum {} max {}",
                h["type"].as_str().unwrap_or("-"),
                h["count"],
                h["sum"],
                h["max"]
            );
        }
        if let Some(items) = p.get("items").and_then(Value::as_array) {
            out.push_str(&render::item_lines("pheromones", items));
        }
    }
    if let Some(p) = doc["pending_proposals"].as_object() {
        let _ = writeln!(out, "pending proposals: {}", p["count"]);
        if let Some(items) = p.get("items").and_then(Value::as_array) {
            out.push_str(&render::item_lines("proposals", items));
        }
    }
    for problem in doc["problems"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "problem: {}", problem.as_str().unwrap_or_default());
    }
    out
}

impl ServerHandler for KgentsMcp {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_resources_subscribe()
            .build();
        ServerConfig::new(caps)
            .with_server_info(
                Implementation::new("kgents-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("K8-gents")
                    .with_description("A society of LLM agents on Kubernetes: agents, pheromones, proposals"),
            )
            .with_instructions(format!(
                "K8-gents as {}{}. Read kgents://cluster/status for an overview; sense for the pheromone field; results are compact and paged (pass next_cursor back), each rendering at most {} bytes.{}",
                self.shared.caller.identity(),
                self.shared.caller.info().umwelt.map(|u| format!(" (Umwelt {u})")).unwrap_or_default(),
                self.shared.config.max_bytes,
                if self.shared.config.allow_writes { "" } else { " Read-only: nothing here writes to the cluster." }
            ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        ToolKind::from_name(name)
            .filter(|t| self.tool_visible(*t))
            .map(|t| self.tool(t))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // A cancelled request (or a client gone mid-call) stops the work here.
        tokio::select! {
            result = self.call(&request.name, request.arguments.as_ref()) => result.map(Into::into),
            () = context.ct.cancelled() => Err(ErrorData::new(ErrorCode::INTERNAL_ERROR, "cancelled", None)),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.resources(request.as_ref().and_then(|r| r.cursor.as_deref()))
            .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            self.templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        tokio::select! {
            result = self.read(&request.uri) => result.map(Into::into),
            () = context.ct.cancelled() => Err(ErrorData::new(ErrorCode::INTERNAL_ERROR, "cancelled", None)),
        }
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if !KgentsMcp::subscribable(&request.uri) {
            return Err(ErrorData::resource_not_found(
                format!(
                    "{:?} cannot be subscribed to: name a resource without query parameters (kgents://pheromones, kgents://pheromones/{{type}}, kgents://proposals, kgents://proposals/{{namespace}}/{{name}})",
                    request.uri.chars().take(200).collect::<String>()
                ),
                None,
            ));
        }
        self.session
            .subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request.uri);
        self.start_forwarding(context.peer.clone());
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session
            .subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let uris: Vec<String> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|u| KgentsMcp::subscribable(u))
            .cloned()
            .collect();
        let mut filter = SubscriptionFilter::builder().resources_list_changed();
        if !uris.is_empty() {
            filter = filter.resource_subscriptions(uris);
        }
        Some(filter.build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut rx = self.shared.changes.subscribe();
        let accepted = context.accepted().clone();
        loop {
            let changes = tokio::select! {
                () = context.cancelled() => return Ok(()),
                received = rx.recv() => match received {
                    Ok(changes) => changes,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            };
            let sink = context.sink();
            if changes.list_changed
                && accepted.resources_list_changed == Some(true)
                && let Err(rmcp::service::SubscriptionSendError::SubscriptionClosed) =
                    sink.notify_resource_list_changed().await
            {
                return Ok(());
            }
            for uri in &changes.updated {
                if accepted
                    .resource_subscriptions
                    .as_ref()
                    .is_some_and(|u| u.contains(uri))
                    && let Err(rmcp::service::SubscriptionSendError::SubscriptionClosed) =
                        sink.notify_resource_updated(uri.clone()).await
                {
                    return Ok(());
                }
            }
        }
    }
}
