//! Change notifications: what changed between two observations of the pheromones and the
//! proposals (pure [`diff`]), and the poller that observes them through the Logos while
//! anyone listens ([`spawn_watch`]).
//!
//! A pheromone's decay is not a change (it would notify every poll); an emitted or evaporated
//! signal is. A proposal changes when it is filed, removed, or its phase, risk or decisions
//! move. Proposals are listed as resources, so their set changing is also a list change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kgents_logos::outcome::{ProposalRecord, SensedPheromone};
use kgents_logos::{Args, Outcome};
use tokio_util::sync::CancellationToken;

use crate::server::KgentsMcp;
use crate::uri;

/// What one poll found changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The resources (base URIs) whose content changed.
    pub updated: BTreeSet<String>,
    /// Whether the list of resources changed.
    pub list_changed: bool,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && !self.list_changed
    }
}

/// What is compared between polls: per item, the resource it belongs to and a fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// `namespace/name` → (the type's URI, emission time).
    pub pheromones: BTreeMap<String, (String, String)>,
    /// The proposal's URI → phase, risk and decisions.
    pub proposals: BTreeMap<String, String>,
}

impl Observation {
    /// The observation of a sensed field and a proposal list.
    pub fn of(pheromones: &[SensedPheromone], proposals: &[ProposalRecord]) -> Observation {
        Observation {
            pheromones: pheromones
                .iter()
                .map(|p| {
                    (
                        format!("{}/{}", p.namespace, p.name),
                        (
                            uri::pheromone_type_uri(p.pheromone_type),
                            p.emitted_at.to_string(),
                        ),
                    )
                })
                .collect(),
            proposals: proposals
                .iter()
                .map(|p| {
                    let s = &p.summary;
                    (
                        uri::proposal_uri(&s.namespace, &s.name),
                        format!(
                            "{}|{}|{}|{}|{}",
                            s.phase,
                            s.risk_level,
                            s.risk_score,
                            p.approvals.join(","),
                            p.rejections.join(",")
                        ),
                    )
                })
                .collect(),
        }
    }
}

/// What changed from `old` to `new`.
pub fn diff(old: &Observation, new: &Observation) -> Changes {
    let mut changes = Changes::default();
    let keys: BTreeSet<&String> = old.pheromones.keys().chain(new.pheromones.keys()).collect();
    for key in keys {
        let (before, after) = (old.pheromones.get(key), new.pheromones.get(key));
        if before != after {
            changes.updated.insert("kgents://pheromones".into());
            for (type_uri, _) in before.into_iter().chain(after) {
                changes.updated.insert(type_uri.clone());
            }
        }
    }
    let keys: BTreeSet<&String> = old.proposals.keys().chain(new.proposals.keys()).collect();
    for key in keys {
        let (before, after) = (old.proposals.get(key), new.proposals.get(key));
        if before != after {
            changes.updated.insert("kgents://proposals".into());
            changes.updated.insert(key.clone());
            if before.is_none() || after.is_none() {
                changes.list_changed = true;
            }
        }
    }
    changes
}

async fn observe(server: &KgentsMcp) -> Option<Observation> {
    let scope = server.config().scope.clone();
    let logos = server.logos();
    let caller = server.caller();
    let (field, proposals) = futures::join!(
        logos.invoke(caller, "void.pheromone.sense", Args::new(scope.clone())),
        logos.invoke(caller, "world.cluster.proposals.manifest", Args::new(scope)),
    );
    // A path the caller may not use contributes nothing (and so never notifies).
    let pheromones = match field {
        Ok(Outcome::Sensed(report)) => report.pheromones,
        Ok(_) => Vec::new(),
        Err(e) if e.kind() == kgents_logos::ErrorKind::Denied => Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "watch: sensing failed; skipping this poll");
            return None;
        }
    };
    let proposals = match proposals {
        Ok(Outcome::Proposals(m)) => m.proposals,
        Ok(_) => Vec::new(),
        Err(e) if e.kind() == kgents_logos::ErrorKind::Denied => Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "watch: listing proposals failed; skipping this poll");
            return None;
        }
    };
    Some(Observation::of(&pheromones, &proposals))
}

/// Polls every `interval` while anyone listens (a legacy subscription or a
/// `subscriptions/listen` stream), broadcasting what changed, until `shutdown`.
pub fn spawn_watch(
    server: &KgentsMcp,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let server = server.clone();
    tokio::spawn(async move {
        let mut last: Option<Observation> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let sender = server.change_sender();
            if sender.receiver_count() == 0 {
                // Nobody listens: forget the baseline, so a new listener is not told of
                // changes from before it came.
                last = None;
                continue;
            }
            let Some(now) = observe(&server).await else {
                continue;
            };
            if let Some(before) = &last {
                let changes = diff(before, &now);
                if !changes.is_empty() {
                    let _ = sender.send(Arc::new(changes));
                }
            }
            last = Some(now);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(pheromones: &[(&str, &str, &str)], proposals: &[(&str, &str)]) -> Observation {
        Observation {
            pheromones: pheromones
                .iter()
                .map(|(k, t, at)| {
                    (
                        (*k).to_owned(),
                        (format!("kgents://pheromones/{t}"), (*at).to_owned()),
                    )
                })
                .collect(),
            proposals: proposals
                .iter()
                .map(|(k, fp)| (format!("kgents://proposals/{k}"), (*fp).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn nothing_changed_is_empty() {
        let a = obs(&[("team/w", "WARNING", "t1")], &[("team/p", "Pending")]);
        assert!(diff(&a, &a.clone()).is_empty());
    }

    #[test]
    fn an_emitted_or_evaporated_signal_updates_the_field_and_its_type() {
        let before = obs(&[("team/w", "WARNING", "t1")], &[]);
        let after = obs(&[("team/d", "DREAM", "t2")], &[]);
        let changes = diff(&before, &after);
        assert!(!changes.list_changed);
        assert_eq!(
            changes.updated.into_iter().collect::<Vec<_>>(),
            [
                "kgents://pheromones",
                "kgents://pheromones/DREAM",
                "kgents://pheromones/WARNING"
            ]
        );
    }

    #[test]
    fn a_proposal_filed_changes_the_list_and_a_phase_move_updates_it() {
        let before = obs(&[], &[("team/p", "Pending")]);
        let filed = obs(&[], &[("team/p", "Pending"), ("team/q", "Pending")]);
        let changes = diff(&before, &filed);
        assert!(changes.list_changed);
        assert!(changes.updated.contains("kgents://proposals/team/q"));
        let moved = obs(&[], &[("team/p", "Approved"), ("team/q", "Pending")]);
        let changes = diff(&filed, &moved);
        assert!(!changes.list_changed);
        assert_eq!(
            changes.updated.into_iter().collect::<Vec<_>>(),
            ["kgents://proposals", "kgents://proposals/team/p"]
        );
    }
}
