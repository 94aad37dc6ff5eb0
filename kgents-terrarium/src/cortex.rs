//! The Cortex daemon as the dashboard's data source (feature `cortex`): when a daemon answers
//! on its socket, [`ClusterFeed`](crate::source::ClusterFeed) reads the daemon's `Observe`
//! stream instead of opening its own watches, so any number of dashboards cost the API server
//! nothing beyond the daemon's one watch per kind.
//!
//! - **Start**: subscribe to `Observe` first, then list agents, pheromones and proposals through
//!   `Invoke` (the same Logos paths the CLI uses). Changes the daemon saw before its lists were
//!   read are already in them and are skipped; later ones are applied on top.
//! - **Changes**: each `ObserveEvent` carries the object's summary (a sensed pheromone, an
//!   agent summary, a proposal record, a thought); [`decode`] turns it into a
//!   [`SummaryChange`], a pure step tested without a daemon.
//! - **Loss**: the stream ending (the daemon stopped, or ended a slow reader) ends the
//!   connection like a failed watch: the data stays marked lost, and the feed reconnects —
//!   to the daemon if it answers again, else to the API server directly.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kgents_cortex::pb;
use kgents_cortex::pb::cortex_client::CortexClient;
use kgents_logos::outcome::{AgentsManifest, FieldReport, ProposalsManifest, SensedPheromone};
use kgents_logos::summary::Thought;
use kgents_logos::{Outcome, Scope};
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::source::{Change, ChangeStream, SummaryChange};
use crate::state::{AgentRow, PheromoneRow};

/// The layer name of data from the daemon (its caches' layer).
pub const LAYER: &str = kgents_cortex::cache::LAYER;

/// How long connecting to the daemon and each of its list answers may take.
pub const DEADLINE: Duration = Duration::from_secs(3);

/// The daemon's changes for `scope`, starting with its lists: connects to the socket at
/// `socket`, subscribes, then lists.
///
/// # Errors
/// Why the daemon could not be used (no answer, a refusal, an answer that does not decode).
pub(crate) async fn changes(socket: &Path, scope: &Scope) -> Result<ChangeStream, String> {
    let mut client = kgents_cortex::client::connect(socket, DEADLINE)
        .await
        .map_err(|e| e.to_string())?;
    let namespace = scope.namespace().unwrap_or_default().to_owned();
    let stream = client
        .observe(pb::ObserveRequest {
            namespace: namespace.clone(),
            kinds: Vec::new(),
            caller: None,
        })
        .await
        .map_err(|status| format!("Observe: {}", status.message()))?
        .into_inner();
    let agents: AgentsManifest = invoke(&mut client, "world.cluster.agents.manifest", &namespace)
        .await
        .and_then(|o| match o {
            Outcome::Agents(a) => Ok(a),
            _ => Err("the agents' manifest answered something else".into()),
        })?;
    let field: FieldReport = invoke(&mut client, "void.pheromone.sense", &namespace)
        .await
        .and_then(|o| match o {
            Outcome::Sensed(f) => Ok(f),
            _ => Err("sensing answered something else".into()),
        })?;
    let proposals: ProposalsManifest =
        invoke(&mut client, "world.cluster.proposals.manifest", &namespace)
            .await
            .and_then(|o| match o {
                Outcome::Proposals(p) => Ok(p),
                _ => Err("the proposals' manifest answered something else".into()),
            })?;
    // Everything the daemon saw up to its first list is in the lists.
    let listed_at = agents
        .source
        .taken_at
        .min(field.source.taken_at)
        .min(proposals.source.taken_at);
    let listed = SummaryChange::Listed {
        agents: agents
            .agents
            .into_iter()
            .map(|summary| AgentRow {
                summary,
                last_probe: None,
            })
            .collect(),
        pheromones: field
            .pheromones
            .iter()
            .map(|p| pheromone_row(p, field.at))
            .collect(),
        proposals: proposals.proposals,
    };
    let changes = stream.filter_map(move |item| {
        futures::future::ready(match item {
            Ok(event) => decode(&event, listed_at).map(|c| c.map(Change::Summary)),
            Err(status) => Some(Err(format!(
                "the Cortex stream ended: {}",
                status.message()
            ))),
        })
    });
    let ended = futures::stream::once(futures::future::ready(Err(
        "the Cortex daemon ended the stream".to_owned(),
    )));
    Ok(Box::pin(
        futures::stream::once(futures::future::ready(Ok(Change::Summary(listed))))
            .chain(changes)
            .chain(ended),
    ))
}

/// How long a daemon that has not listed a kind yet (it just started) is waited for.
pub const LISTING_PATIENCE: Duration = Duration::from_secs(10);

async fn invoke(
    client: &mut CortexClient<Channel>,
    path: &str,
    namespace: &str,
) -> Result<Outcome, String> {
    let patience = tokio::time::Instant::now() + LISTING_PATIENCE;
    loop {
        let mut request = tonic::Request::new(pb::InvokeRequest {
            path: path.to_owned(),
            args_json: String::new(),
            namespace: namespace.to_owned(),
            selector: String::new(),
            caller: None,
        });
        request.set_timeout(DEADLINE);
        match client.invoke(request).await {
            Ok(answer) => {
                return serde_json::from_str(&answer.into_inner().result_json)
                    .map_err(|e| format!("{path}: {e}"));
            }
            // A daemon that just started answers UNAVAILABLE until its first list is in.
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && tokio::time::Instant::now() < patience =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => return Err(format!("{path}: {}", status.message())),
        }
    }
}

fn pheromone_row(sensed: &SensedPheromone, at: Timestamp) -> PheromoneRow {
    PheromoneRow {
        record: sensed.record(),
        observed_at: at,
    }
}

fn json<T: DeserializeOwned>(event: &pb::ObserveEvent) -> Result<T, String> {
    serde_json::from_str(&event.data_json)
        .map_err(|e| format!("a {} change from the Cortex: {e}", event.kind))
}

/// One `Observe` event as a change of the dashboard's data; `None` for one already in the
/// lists taken at `listed_at` (a thought is never in them), or of a kind this dashboard does
/// not show.
///
/// # Errors
/// A change whose time or data does not decode (the daemon and the dashboard disagree on the
/// protocol: the connection is dropped and retried rather than shown wrong).
pub fn decode(
    event: &pb::ObserveEvent,
    listed_at: Timestamp,
) -> Option<Result<SummaryChange, String>> {
    let at: Timestamp = match event.at.parse() {
        Ok(at) => at,
        Err(e) => {
            return Some(Err(format!(
                "a change from the Cortex at {:?}: {e}",
                event.at
            )));
        }
    };
    let key = (event.namespace.clone(), event.name.clone());
    let deleted = event.change == "deleted";
    if event.kind != "event" && at < listed_at {
        return None;
    }
    let change = match event.kind.as_str() {
        "agent" if deleted => Ok(SummaryChange::Agent(key, None)),
        "agent" => json(event).map(|summary| {
            SummaryChange::Agent(
                key,
                Some(AgentRow {
                    summary,
                    last_probe: None,
                }),
            )
        }),
        "pheromone" if deleted => Ok(SummaryChange::Pheromone(key, None)),
        "pheromone" => json::<SensedPheromone>(event)
            .map(|sensed| SummaryChange::Pheromone(key, Some(pheromone_row(&sensed, at)))),
        "proposal" if deleted => Ok(SummaryChange::Proposal(key, None)),
        "proposal" => {
            json(event).map(|record| SummaryChange::Proposal(key, Some(Box::new(record))))
        }
        "event" => json::<Thought>(event).map(SummaryChange::Thought),
        _ => return None,
    };
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, change: &str, at: &str, data: serde_json::Value) -> pb::ObserveEvent {
        pb::ObserveEvent {
            kind: kind.into(),
            change: change.into(),
            namespace: "team".into(),
            name: "x".into(),
            intensity: 0.0,
            at: at.into(),
            data_json: data.to_string(),
        }
    }

    fn listed_at() -> Timestamp {
        "2027-01-15T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_sensed_pheromone_becomes_a_row_decaying_from_when_it_was_seen() {
        let sensed = serde_json::json!({
            "name": "x", "namespace": "team", "pheromone_type": "DREAM", "source": "a-gent",
            "target": null, "intensity": 0.5, "emitted_at": "2027-01-15T11:00:00Z",
            "half_life_seconds": 1200.0, "evaporates_in_seconds": 9000.0,
        });
        let e = event("pheromone", "applied", "2027-01-15T12:00:05Z", sensed);
        let Some(Ok(SummaryChange::Pheromone(key, Some(row)))) = decode(&e, listed_at()) else {
            panic!("a pheromone change");
        };
        assert_eq!(key, ("team".to_owned(), "x".to_owned()));
        assert_eq!(row.observed_at.to_string(), "2027-01-15T12:00:05Z");
        // DREAM's effective half-life (20 min) is undone to its base (10 min); the row decays
        // with the effective one again: half the intensity 20 minutes later.
        assert!((row.record.summary.half_life_seconds - 600.0).abs() < 1e-9);
        let later = row.observed_at + jiff::SignedDuration::from_mins(20);
        assert!((row.intensity_at(later) - 0.25).abs() < 1e-9);
    }

    #[test]
    fn changes_already_listed_are_skipped_and_thoughts_never_are() {
        let before = "2027-01-15T11:59:59Z";
        let agent = serde_json::json!({"name": "x"});
        assert!(decode(&event("agent", "deleted", before, agent), listed_at()).is_none());
        let thought = serde_json::json!({
            "at": before, "namespace": "team", "object": "Agent/x", "reason": "Scaled",
            "text": "to 2", "warning": false,
        });
        let Some(Ok(SummaryChange::Thought(t))) =
            decode(&event("event", "applied", before, thought), listed_at())
        else {
            panic!("a thought");
        };
        assert_eq!(t.object, "Agent/x");
        let deleted = decode(
            &event(
                "proposal",
                "deleted",
                "2027-01-15T12:00:01Z",
                serde_json::Value::Null,
            ),
            listed_at(),
        );
        assert!(matches!(
            deleted,
            Some(Ok(SummaryChange::Proposal(_, None)))
        ));
    }

    #[test]
    fn what_does_not_decode_is_an_error_not_a_wrong_row() {
        let e = event(
            "agent",
            "applied",
            "2027-01-15T12:00:01Z",
            serde_json::json!([1]),
        );
        let error = decode(&e, listed_at()).unwrap().unwrap_err();
        assert!(error.contains("agent change from the Cortex"), "{error}");
        let e = event("agent", "applied", "yesterday", serde_json::Value::Null);
        assert!(decode(&e, listed_at()).unwrap().is_err());
        let e = event(
            "memory",
            "applied",
            "2027-01-15T12:00:01Z",
            serde_json::Value::Null,
        );
        assert!(decode(&e, listed_at()).is_none());
    }
}
