//! The agent's Umwelt as its runtime reads it: persona, constraints, context, pheromone
//! sensitivity and affordances, the JSON document the operator writes under [`CONFIG_KEY`] in
//! the Umwelt's ConfigMap.
//!
//! Two sources: a file (the ConfigMap mounted as a volume, or any file; read on each request),
//! or the ConfigMap itself, followed through a watch so an edit is seen as soon as the API
//! server sends it (a mounted ConfigMap lags by the kubelet's sync period, up to a minute).

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use tokio::sync::watch;

use crate::{Error, Result};

/// The ConfigMap key the operator writes the runtime view under.
pub const CONFIG_KEY: &str = "umwelt.json";

/// The Umwelt as `GET /umwelt` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UmweltAnswer {
    /// The runtime view (persona, constraints, context, ...).
    pub umwelt: serde_json::Value,
    /// Where it was read from.
    pub source: String,
    /// The ConfigMap's resourceVersion, when read from the API server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Parses the runtime view (a JSON object).
pub fn parse_view(text: &str, source: &str) -> Result<serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(Error::BadRequest(format!(
            "the Umwelt view in {source} is not a JSON object; the operator writes one from the Umwelt resource: check the Umwelt"
        ))),
        Err(e) => Err(Error::BadRequest(format!(
            "the Umwelt view in {source} is not JSON ({e}); the operator writes it from the Umwelt resource: check the Umwelt"
        ))),
    }
}

/// The view inside a ConfigMap, or why there is none.
pub fn view_of(config_map: &ConfigMap, source: &str) -> Result<UmweltAnswer> {
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "the ConfigMap {source} has no key {CONFIG_KEY}: is it the one the operator generates for the Umwelt (<umwelt>-umwelt)?"
            ))
        })?;
    Ok(UmweltAnswer {
        umwelt: parse_view(text, source)?,
        source: source.to_owned(),
        resource_version: config_map.metadata.resource_version.clone(),
    })
}

/// Where the Umwelt comes from.
#[derive(Clone)]
pub enum UmweltSource {
    /// None configured: `GET /umwelt` says how to configure one.
    None,
    /// A file holding the view (a mounted ConfigMap's `umwelt.json`), read on each request.
    File(PathBuf),
    /// A watched ConfigMap: the latest state the watch has seen.
    Watched(watch::Receiver<Arc<WatchedState>>),
}

impl std::fmt::Debug for UmweltSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UmweltSource::None => f.write_str("None"),
            UmweltSource::File(p) => f.debug_tuple("File").field(p).finish(),
            UmweltSource::Watched(_) => f.write_str("Watched"),
        }
    }
}

/// What the ConfigMap watch has seen.
#[derive(Debug, Clone)]
pub enum WatchedState {
    /// Nothing yet (the first list has not answered).
    Pending(String),
    /// The ConfigMap's view.
    Seen(UmweltAnswer),
    /// The ConfigMap is absent or holds no readable view.
    Unusable(String),
}

impl UmweltSource {
    /// The current view.
    pub async fn current(&self) -> Result<UmweltAnswer> {
        match self {
            UmweltSource::None => Err(Error::BadRequest(
                "this symbiont was started without an Umwelt: pass --umwelt-config-map NAME (the <umwelt>-umwelt ConfigMap) or --umwelt-file PATH".into(),
            )),
            UmweltSource::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| Error::Config {
                    what: "the Umwelt view",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let source = path.display().to_string();
                Ok(UmweltAnswer {
                    umwelt: parse_view(&text, &source)?,
                    source,
                    resource_version: None,
                })
            }
            UmweltSource::Watched(rx) => match &**rx.borrow() {
                WatchedState::Seen(answer) => Ok(answer.clone()),
                WatchedState::Pending(source) => Err(Error::BadRequest(format!(
                    "the ConfigMap {source} has not been read yet (the API server has not answered): retry in a moment"
                ))),
                WatchedState::Unusable(reason) => Err(Error::BadRequest(reason.clone())),
            },
        }
    }

    /// Follows the ConfigMap `namespace/name` through a watch (with backoff on errors) and
    /// returns the source reading its latest state. The watch task ends when every receiver
    /// is dropped.
    pub fn watch_config_map(client: kube::Client, namespace: &str, name: &str) -> UmweltSource {
        let source = format!("{namespace}/{name}");
        let (tx, rx) = watch::channel(Arc::new(WatchedState::Pending(source.clone())));
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                let state = match event {
                    Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                        match view_of(&cm, &source) {
                            Ok(answer) => WatchedState::Seen(answer),
                            Err(e) => WatchedState::Unusable(e.to_string()),
                        }
                    }
                    Ok(watcher::Event::Delete(_)) => WatchedState::Unusable(format!(
                        "the ConfigMap {source} was deleted: the operator recreates it from the Umwelt; check that the Umwelt exists"
                    )),
                    Ok(_) => continue,
                    Err(e) => {
                        // Keep the last view: an unreachable API server does not change it.
                        tracing::warn!(%source, error = %e, "watching the Umwelt ConfigMap");
                        continue;
                    }
                };
                if tx.send(Arc::new(state)).is_err() {
                    break;
                }
            }
        });
        UmweltSource::Watched(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_parse_from_config_maps() {
        let mut cm = ConfigMap::default();
        assert!(view_of(&cm, "ns/x").is_err());
        cm.data = Some(
            [(
                CONFIG_KEY.to_owned(),
                r#"{"agent":"a","persona":{"warmth":0.5}}"#.to_owned(),
            )]
            .into(),
        );
        let answer = view_of(&cm, "ns/x").unwrap();
        assert_eq!(answer.umwelt["persona"]["warmth"], 0.5);
        assert!(parse_view("[1]", "f").is_err());
        assert!(
            parse_view("{", "f")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
