//! Leader election: only the holder of a Lease reconciles.
//!
//! Every replica runs; the one that holds the `kgents-operator` Lease (through
//! `kube-lease-manager`, which writes the Lease with server-side apply) runs the controllers,
//! the others wait. [`LeaderState`] is a cheap, cloneable view of "am I the leader right now":
//! the run loop starts the controllers when it turns true and stops them when it turns false,
//! and every writer checks it again right before writing, so a replica that has just lost the
//! lease does not write in the gap before its controllers stop.

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// How the Lease is named and timed.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease object.
    pub namespace: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// Seconds a lease stays valid after its last renewal.
    pub lease_duration_secs: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_secs: u64,
}

impl LeaderElectionConfig {
    /// Defaults: Lease `kgents-operator`, 15 s validity renewed 5 s before expiry (the
    /// controller-runtime figures), identity from `POD_NAME` or the host name.
    pub fn new(namespace: impl Into<String>) -> Self {
        let identity = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("kgents-operator-{}", std::process::id()));
        Self {
            lease_name: "kgents-operator".to_owned(),
            namespace: namespace.into(),
            identity,
            lease_duration_secs: 15,
            grace_secs: 5,
        }
    }
}

/// A cloneable view of whether this replica currently leads.
#[derive(Clone, Debug)]
pub struct LeaderState {
    rx: watch::Receiver<bool>,
    /// Whether the last value still holds once the sender is gone: true for [`Self::always`];
    /// false for an election, whose renewal task ending (aborted, panicked) means nobody
    /// renews the lease any more, so this replica must not go on writing as if it led.
    lasts_without_sender: bool,
}

impl LeaderState {
    /// A state that always leads: for a single replica run without election, and for tests.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // The value never changes, so the sender can go; receivers keep the last value.
        drop(tx);
        Self {
            rx,
            lasts_without_sender: true,
        }
    }

    /// A state driven by the given channel; when its sender is dropped, the replica no longer
    /// leads.
    pub fn from_receiver(rx: watch::Receiver<bool>) -> Self {
        Self {
            rx,
            lasts_without_sender: false,
        }
    }

    /// Whether this replica leads right now.
    pub fn is_leader(&self) -> bool {
        let value = *self.rx.borrow();
        if self.rx.has_changed().is_err() && !self.lasts_without_sender {
            return false;
        }
        value
    }

    /// Waits until leadership equals `leading`. Returns `false` if the election ended
    /// (its task stopped) before that happened.
    pub async fn wait_for(&mut self, leading: bool) -> bool {
        loop {
            self.rx.borrow_and_update();
            if self.is_leader() == leading {
                return true;
            }
            if self.rx.changed().await.is_err() {
                return self.is_leader() == leading;
            }
        }
    }
}

/// A running election: its state, and the task that keeps renewing (or trying to take) the lease.
pub struct Election {
    /// Whether this replica leads.
    pub state: LeaderState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Election {
    /// Starts competing for the lease.
    pub async fn start(client: Client, config: &LeaderElectionConfig) -> Result<Self> {
        let manager = LeaseManagerBuilder::new(client, config.lease_name.clone())
            .with_namespace(config.namespace.clone())
            .with_identity(config.identity.clone())
            .with_duration(config.lease_duration_secs)
            .with_grace(config.grace_secs)
            .with_field_manager("kgents-operator-lease")
            .build()
            .await
            .map_err(|e| {
                Error::LeaderElection(format!(
                    "cannot set up lease {}/{}: {e}",
                    config.namespace, config.lease_name
                ))
            })?;
        let (tx, rx) = watch::channel(false);
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let identity = config.identity.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = manager.changed() => match changed {
                        Ok(leading) => {
                            tracing::info!(%identity, leading, "leadership changed");
                            tx.send_replace(leading);
                        }
                        Err(e) => {
                            // Without a confirmed renewal we must assume we lost the lease.
                            tracing::warn!(error = %e, "lease renewal failed; standing down until it succeeds");
                            tx.send_replace(false);
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    },
                    _ = &mut stop_rx => {
                        tx.send_replace(false);
                        if let Err(e) = manager.release().await {
                            tracing::warn!(error = %e, "could not release the leader lease; it will expire on its own");
                        }
                        break;
                    }
                }
            }
        });
        Ok(Self {
            state: LeaderState::from_receiver(rx),
            stop: Some(stop_tx),
            task,
        })
    }

    /// Stops competing and releases the lease if held, so a standby takes over at once
    /// instead of after the lease expires.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            tracing::warn!(error = %e, "leader election task ended abnormally");
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        // Released or not, the renewal task must not outlive the election.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_election_whose_task_ended_no_longer_leads() {
        let (tx, rx) = watch::channel(false);
        let mut state = LeaderState::from_receiver(rx);
        assert!(!state.is_leader());
        tx.send_replace(true);
        assert!(state.is_leader());
        assert!(state.wait_for(true).await);
        // The renewal task is gone (aborted or panicked): nobody renews the lease.
        drop(tx);
        assert!(!state.is_leader());
        assert!(state.wait_for(false).await, "losing is reported");
        assert!(!state.wait_for(true).await, "leading can never come back");
    }

    #[tokio::test]
    async fn always_leads_for_good() {
        let mut state = LeaderState::always();
        assert!(state.is_leader());
        assert!(state.wait_for(true).await);
        assert!(!state.wait_for(false).await, "it never stops leading");
    }
}
