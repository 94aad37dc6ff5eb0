//! Try K8-gents with no cluster: starts a real control plane on loopback
//! (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with
//! fake nodes), prints how to reach it, and keeps it up until Ctrl+C.
//!
//! ```sh
//! scripts/testbed-build                    # once; builds the binaries (cached)
//! cargo run --example testbed              # 2 fake nodes
//! cargo run --example testbed -- 5         # 5 fake nodes
//! cargo run --example testbed -- 0         # etcd and kube-apiserver only
//! ```
//!
//! Everything (certificates, kubeconfig, logs, etcd data) lives in temporary
//! directories that are removed when the command stops.

use anyhow::{Context as _, Result};
use kgents_testbed::Testbed;

#[tokio::main]
async fn main() -> Result<()> {
    let nodes: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .with_context(|| format!("the argument {arg:?} is not a number of fake nodes"))?,
        None => 2,
    };
    let builder = if nodes == 0 {
        eprintln!("starting etcd and kube-apiserver ...");
        Testbed::builder()
    } else {
        eprintln!(
            "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok ({nodes} fake nodes) ..."
        );
        Testbed::builder().with_nodes(nodes)
    };
    let testbed = builder.start().await.context("starting the testbed")?;

    let kubeconfig = testbed.kubeconfig_path().display().to_string();
    println!(
        "Kubernetes {} is up at {} (started in {:.1} s)",
        testbed.kubernetes_version(),
        testbed.apiserver_url(),
        testbed.startup_time().as_secs_f64()
    );
    println!("kubeconfig: {kubeconfig}");
    println!("logs:       {}", testbed.log_dir().display());
    println!();
    println!("export KUBECONFIG={kubeconfig}");
    if let Some(kubectl) = kubectl_next_to_the_binaries() {
        println!("{kubectl} get nodes");
    }
    println!();
    println!("Press Ctrl+C to stop.");

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl+C")?;
    eprintln!("stopping ...");
    drop(testbed);
    Ok(())
}

/// `scripts/testbed-build` also builds kubectl; point at it when present.
fn kubectl_next_to_the_binaries() -> Option<String> {
    let dir = std::env::var_os("KGENTS_TESTBED_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| {
                std::path::PathBuf::from(home)
                    .join(".cache/kgents/testbed")
                    .join(kgents_testbed::kubernetes_version())
            })
        })?;
    let kubectl = dir.join("kubectl");
    kubectl.is_file().then(|| kubectl.display().to_string())
}
