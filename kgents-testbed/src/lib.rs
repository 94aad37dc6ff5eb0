//! K8-gents test support: a real etcd and kube-apiserver (and, on request,
//! kube-controller-manager, kube-scheduler and kwok with fake nodes) on
//! loopback, built from the upstream Go modules by `scripts/testbed-build`.
//!
//! Module map:
//! - [`testbed`]: [`Testbed`] and [`TestbedBuilder`]: start, clients, CRDs, namespaces, restarts.
//! - [`shared()`] / [`shared_with_nodes()`]: one control plane per test binary.
//! - `binaries`: where the programs are found (`KGENTS_TESTBED_BIN`, `KUBEBUILDER_ASSETS`, `TEST_ASSET_*`, cache).
//! - `flags`: the command line of each component (pure).
//! - [`pki`]: throwaway CA and certificates (also for webhook servers in tests).
//! - [`kubeconfig`]: the admin kubeconfig text.
//! - [`names`]: namespace names, ServiceAccount identities, fake nodes (pure).
//! - `process`: child processes, parent-death handling and orphan sweeping.
//! - [`error`]: [`Error`] and [`Result`].
//!
//! ```no_run
//! # async fn example() -> kgents_testbed::Result<()> {
//! let testbed = kgents_testbed::shared().await?;
//! let namespace = testbed.create_namespace("my-test").await?;
//! let client = testbed.client().await?;
//! # let _ = (namespace, client);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod binaries;
pub mod error;
mod flags;
pub mod kubeconfig;
pub mod names;
pub mod pki;
mod process;
pub mod testbed;

pub use binaries::kubernetes_version;
pub use error::{Error, Result};
pub use testbed::{Testbed, TestbedBuilder};

use tokio::sync::OnceCell;

/// Number of fake nodes in [`shared_with_nodes`].
pub const SHARED_NODES: usize = 2;

async fn shared_instance(
    cell: &'static OnceCell<std::result::Result<Testbed, String>>,
    builder: fn() -> TestbedBuilder,
) -> Result<&'static Testbed> {
    // The outcome, failure included, is kept: a failed start is reported to
    // every test at once instead of being retried (slowly) by each of them.
    let outcome = cell
        .get_or_init(|| async move { builder().start().await.map_err(|e| e.to_string()) })
        .await;
    outcome
        .as_ref()
        .map_err(|message| Error::SharedStart(message.clone()))
}

/// The process-wide shared control plane (etcd + kube-apiserver), started on
/// first use and reused by every test in the test binary.
///
/// It is never dropped: its components die with the test process (parent-death
/// signal) and its directories are removed then. It shares only processes and
/// the kubeconfig; take a fresh [`Testbed::client`] in each test and use
/// [`Testbed::create_namespace`] to keep tests apart.
pub async fn shared() -> Result<&'static Testbed> {
    static SHARED: OnceCell<std::result::Result<Testbed, String>> = OnceCell::const_new();
    shared_instance(&SHARED, Testbed::builder).await
}

/// Like [`shared`], with kube-controller-manager, kube-scheduler, kwok and
/// [`SHARED_NODES`] fake nodes, so Deployments get Running pods.
pub async fn shared_with_nodes() -> Result<&'static Testbed> {
    static SHARED_WITH_NODES: OnceCell<std::result::Result<Testbed, String>> =
        OnceCell::const_new();
    shared_instance(&SHARED_WITH_NODES, || {
        Testbed::builder().with_nodes(SHARED_NODES)
    })
    .await
}
