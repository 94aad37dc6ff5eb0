//! The server's tools and resources over the in-memory cluster (no transport): read-only mode,
//! Umwelt scoping, paging to the end, the byte cap, redaction, bad input, and the propose flow
//! (preview, dry run, filed). The real-client tests against the testbed are `tests/mcp.rs` at
//! the workspace root.

use std::sync::Arc;

use kgents_core::agentese::Affordances;
use kgents_core::clock::SystemClock;
use kgents_logos::{Caller, ClusterActor, Logos, MemoryCluster, Scope};
use kgents_mcp::{KgentsMcp, McpConfig};
use rmcp::model::{CallToolResult, JsonObject, ResourceContents};
use serde_json::{Value, json};

const SECRET: &str = "hunter2-very-secret-value";

fn cluster(agents: usize) -> Arc<MemoryCluster> {
    let cluster = Arc::new(MemoryCluster::new("alice", Arc::new(SystemClock)));
    for i in 0..agents {
        cluster.add_agent(
            serde_json::from_value(json!({
                "apiVersion": "kgents.io/v1", "kind": "Agent",
                "metadata": {"name": format!("agent-{i:04}"), "namespace": "team"},
                "spec": {"genus": "B", "replicas": 1},
                "status": {"phase": "Running", "conditions": [{
                    "type": "Ready", "status": "False", "reason": "ProbeFailed",
                    "message": format!("login failed with password={SECRET}"),
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }]},
            }))
            .unwrap(),
        );
    }
    for (i, kind) in ["WARNING", "DREAM", "WARNING"].into_iter().enumerate() {
        cluster.add_pheromone(
            serde_json::from_value(json!({
                "apiVersion": "kgents.io/v1", "kind": "Pheromone",
                "metadata": {"name": format!("signal-{i}"), "namespace": "team", "creationTimestamp": jiff::Timestamp::now().to_string()},
                "spec": {"type": kind, "source": "agent-0000", "initialIntensity": 0.9 - i as f64 / 10.0, "halfLifeMinutes": 30.0},
            }))
            .unwrap(),
        );
    }
    cluster
}

fn server(cluster: Arc<MemoryCluster>, caller: Caller, config: McpConfig) -> KgentsMcp {
    let writer = config
        .allow_writes
        .then(|| Arc::clone(&cluster) as Arc<dyn ClusterActor>);
    KgentsMcp::new(Logos::new(cluster, writer), caller, config)
}

fn config() -> McpConfig {
    McpConfig {
        scope: Scope::Namespace("team".into()),
        watch_interval: None,
        ..McpConfig::default()
    }
}

fn args(v: Value) -> JsonObject {
    match v {
        Value::Object(m) => m,
        _ => JsonObject::new(),
    }
}

fn text_of(result: &CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap()[0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn read(server: &KgentsMcp, uri: &str) -> (String, Value) {
    let result = server
        .read(uri)
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e:?}"));
    let ResourceContents::TextResourceContents { text, .. } = &result.contents[0] else {
        panic!("text contents")
    };
    (text.clone(), serde_json::from_str(text).unwrap())
}

fn names(tools: &[rmcp::model::Tool]) -> Vec<&str> {
    tools.iter().map(|t| t.name.as_ref()).collect()
}

#[tokio::test]
async fn read_only_lists_no_write_tool_and_refuses_forced_writes() {
    let s = server(cluster(2), Caller::unrestricted("alice"), config());
    assert_eq!(names(&s.tools()), ["status", "sense", "invoke"]);
    let err = s
        .call(
            "emit",
            Some(&args(json!({"pheromone_type": "WARNING", "source": "a"}))),
        )
        .await
        .unwrap_err();
    assert!(
        err.message.contains("read-only") && err.message.contains("--allow-writes"),
        "{err:?}"
    );
    let refused = s
        .call(
            "invoke",
            Some(&args(
                json!({"path": "self.deployment.define", "input": {}}),
            )),
        )
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("read-only"),
        "{}",
        text_of(&refused)
    );
    let unknown = s.call("delete_everything", None).await.unwrap_err();
    assert!(
        unknown.message.contains("status, sense, invoke"),
        "{unknown:?}"
    );

    let writable = server(
        cluster(2),
        Caller::unrestricted("alice"),
        McpConfig {
            allow_writes: true,
            ..config()
        },
    );
    assert_eq!(
        names(&writable.tools()),
        ["status", "sense", "emit", "propose", "invoke"]
    );
}

#[tokio::test]
async fn an_umwelt_scopes_tools_resources_and_templates() {
    let affordances = Affordances::parse_all(["void.pheromone.*"]).unwrap();
    let caller = Caller::restricted("agent b-gent", "team/b-view", affordances);
    let s = server(
        cluster(2),
        caller,
        McpConfig {
            allow_writes: true,
            ..config()
        },
    );
    assert_eq!(names(&s.tools()), ["status", "sense", "emit", "invoke"]);
    let listed = s.resources(None).await.unwrap();
    let uris: Vec<&str> = listed.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["kgents://pheromones", "kgents://cluster/status"]);
    let templates: Vec<String> = s.templates().into_iter().map(|t| t.uri_template).collect();
    assert_eq!(templates, ["kgents://pheromones/{type}"]);
    let denied = s.read("kgents://agents").await.unwrap_err();
    assert!(
        denied.message.contains("may not use") && denied.message.contains("team/b-view"),
        "{denied:?}"
    );
    let propose = s
        .call("propose", Some(&args(json!({"spec": {}}))))
        .await
        .unwrap_err();
    assert!(propose.message.contains("not afforded"), "{propose:?}");
}

#[tokio::test]
async fn pages_cover_every_agent_once_and_resources_list_pages_too() {
    let s = server(
        cluster(250),
        Caller::unrestricted("alice"),
        McpConfig {
            page_size: 40,
            ..config()
        },
    );
    let mut uri = Some("kgents://agents".to_owned());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(next) = uri {
        let (_, doc) = read(&s, &next).await;
        pages += 1;
        assert_eq!(doc["total"], 250);
        seen.extend(
            doc["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        uri = doc["next_uri"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 7);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (250, 250));

    let mut cursor: Option<String> = None;
    let mut listed = 0;
    loop {
        let page = s.resources(cursor.as_deref()).await.unwrap();
        listed += page.resources.len();
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(listed, 4 + 250);

    // A cursor from another listing, and a made-up one, are refused with the reason.
    let first = s
        .call("sense", Some(&args(json!({"limit": 1}))))
        .await
        .unwrap();
    let cursor = first.structured_content.as_ref().unwrap()["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = s
        .read(&format!("kgents://agents?cursor={cursor}"))
        .await
        .unwrap_err();
    assert!(foreign.message.contains("another listing"), "{foreign:?}");
    let second = s
        .call("sense", Some(&args(json!({"limit": 1, "cursor": cursor}))))
        .await
        .unwrap();
    assert_eq!(
        second.structured_content.as_ref().unwrap()["items"][0]["name"],
        "signal-1"
    );
    let junk = s
        .call("sense", Some(&args(json!({"cursor": "nonsense"}))))
        .await
        .unwrap();
    assert_eq!(junk.is_error, Some(true));
    assert!(
        text_of(&junk).contains("field \"cursor\""),
        "{}",
        text_of(&junk)
    );
}

#[tokio::test]
async fn the_byte_cap_bounds_every_rendering_and_says_so() {
    let s = server(
        cluster(300),
        Caller::unrestricted("alice"),
        McpConfig {
            max_bytes: 4096,
            ..config()
        },
    );
    let (text, doc) = read(&s, "kgents://agents?limit=1000&detail=full").await;
    assert!(text.len() <= 4096, "{}", text.len());
    assert!(doc["note"].as_str().unwrap().contains("byte cap"), "{doc}");
    assert!(doc["returned"].as_u64().unwrap() < 300);
    let status = s
        .call("status", Some(&args(json!({"detail": "full"}))))
        .await
        .unwrap();
    assert!(text_of(&status).len() <= 4096);
    assert!(
        status
            .structured_content
            .as_ref()
            .unwrap()
            .to_string()
            .len()
            <= 4096
    );
}

#[tokio::test]
async fn credentials_are_masked_and_bad_input_is_named() {
    let s = server(cluster(1), Caller::unrestricted("alice"), config());
    let (text, _) = read(&s, "kgents://agents/team/agent-0000").await;
    assert!(
        !text.contains(SECRET) && text.contains("[redacted]"),
        "{text}"
    );
    let full = s
        .call(
            "invoke",
            Some(&args(
                json!({"path": "world.cluster.agents.agent-0000.manifest"}),
            )),
        )
        .await
        .unwrap();
    assert!(!serde_json::to_string(&full).unwrap().contains(SECRET));

    let unknown = s.read("kgents://secrets/team/x").await.unwrap_err();
    assert!(
        unknown
            .message
            .contains("kgents://agents/{namespace}/{name}"),
        "{unknown:?}"
    );
    assert_eq!(
        unknown.data.as_ref().unwrap()["templates"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let missing = s.read("kgents://proposals/team/nope").await.unwrap_err();
    assert!(missing.message.contains("not found"), "{missing:?}");
    for (arguments, field) in [
        (json!({"types": ["LOUD"]}), "types[0]"),
        (json!({"limit": 0}), "limit"),
        (json!({"namespace": "Not_A_Name"}), "namespace"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let result = s.call("sense", Some(&args(arguments))).await.unwrap();
        assert_eq!(result.is_error, Some(true));
        assert!(
            text_of(&result).contains(&format!("field \"{field}\"")),
            "{}",
            text_of(&result)
        );
    }
}

#[tokio::test]
async fn propose_previews_dry_runs_then_files() {
    let memory = cluster(1);
    let s = server(
        Arc::clone(&memory),
        Caller::unrestricted("alice"),
        McpConfig {
            allow_writes: true,
            ..config()
        },
    );
    let spec = json!({"changeType": "AGENT_SCALE", "target": {"kind": "Agent", "name": "agent-0000", "apiVersion": "kgents.io/v1"}});
    let dry = s
        .call(
            "propose",
            Some(&args(json!({"dry_run": true, "spec": spec}))),
        )
        .await
        .unwrap();
    let doc = dry.structured_content.unwrap();
    assert_eq!(doc["dry_run"]["verdict"], "admitted", "{doc}");
    assert!(doc["preview"]["risk"]["score"].is_number(), "{doc}");
    assert!(doc["filed"].is_null());
    assert!(memory.proposals().is_empty(), "a dry run stores nothing");
    let filed = s
        .call(
            "propose",
            Some(&args(json!({"name": "scale-0", "spec": spec}))),
        )
        .await
        .unwrap();
    let doc = filed.structured_content.unwrap();
    assert_eq!(doc["filed"]["name"], "scale-0", "{doc}");
    assert_eq!(memory.proposals().len(), 1);
    let emitted = s
        .call("emit", Some(&args(json!({"pheromone_type": "intent", "source": "agent-0000", "payload": format!("token: {SECRET}")}))))
        .await
        .unwrap();
    assert!(
        text_of(&emitted).starts_with("emitted INTENT"),
        "{}",
        text_of(&emitted)
    );
    assert!(!serde_json::to_string(&emitted).unwrap().contains(SECRET));
}
