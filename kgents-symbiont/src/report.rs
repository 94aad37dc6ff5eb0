//! Reporting the Memory's use: `status.sizeUsed` and `status.lastAccess` of the agent's Memory,
//! written by the symbiont — the one process that knows them — under its own field manager
//! ([`FIELD_MANAGER`]) with server-side apply, so the Memory controller's fields stay its own.
//! The agent's Umwelt Role allows exactly this: `patch` on `memories/status` of the Memory named
//! after the agent.

use std::sync::Arc;
use std::time::Duration;

use kgents_crds::Memory;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::server::Symbiont;

/// The field manager of the symbiont's status writes.
pub const FIELD_MANAGER: &str = "kgents-symbiont";

/// The server-side apply patch of a Memory's status: bytes used (a plain quantity) and, when
/// known, the last access.
pub fn status_patch(used: u64, last_access: Option<jiff::Timestamp>) -> serde_json::Value {
    let mut status = serde_json::json!({ "sizeUsed": used.to_string() });
    if let Some(at) = last_access {
        status["lastAccess"] = serde_json::json!(at);
    }
    serde_json::json!({
        "apiVersion": "kgents.io/v1",
        "kind": "Memory",
        "status": status,
    })
}

/// Reports the use of Memory `namespace/name` every `every`, when it changed since the last
/// successful report. Failures are logged and retried at the next tick.
pub fn spawn_reporter(
    client: kube::Client,
    namespace: &str,
    name: &str,
    state: Arc<Symbiont>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let api: Api<Memory> = Api::namespaced(client, namespace);
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut reported: Option<(u64, Option<jiff::Timestamp>)> = None;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let used = match state.usage() {
                Ok(usage) => usage.used,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the memory's usage");
                    continue;
                }
            };
            let now = (used, state.last_access());
            if reported == Some(now) {
                continue;
            }
            let patch = status_patch(now.0, now.1);
            match api
                .patch_status(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(_) => reported = Some(now),
                Err(e) => tracing::warn!(memory = %name, error = %e, "reporting the memory's use"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_carries_size_and_last_access() {
        let at: jiff::Timestamp = "2026-12-03T04:00:00Z".parse().unwrap();
        let patch = status_patch(1234, Some(at));
        assert_eq!(patch["status"]["sizeUsed"], "1234");
        assert_eq!(patch["status"]["lastAccess"], "2026-12-03T04:00:00Z");
        let memory: Memory = serde_json::from_value(serde_json::json!({
            "apiVersion": "kgents.io/v1", "kind": "Memory",
            "metadata": {"name": "m"},
            "spec": {"owner": "a"},
            "status": patch["status"],
        }))
        .expect("a Memory status");
        assert_eq!(memory.status.unwrap().size_used.unwrap().0, "1234");
        assert!(status_patch(0, None)["status"].get("lastAccess").is_none());
    }
}
