//! `kgents propose --dry-run` against a real API server with the T-gent admission webhook
//! registered (served in-process): the webhook's denial of a CRITICAL proposal is shown, and
//! nothing is stored; with the Proposal controller running, `propose --wait` follows a filed
//! proposal to a decided or waiting phase. Run after `cargo build --example kgents`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kgents::kgents_crds::Proposal;
use kgents::kgents_operator::admission::server::{CertificateSource, Endpoint, WebhookConfig};
use kgents::kgents_operator::{Context, OperatorConfig, admission};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_the_webhooks_denial_and_wait_follows_the_phase() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let testbed = kgents_testbed::shared().await.expect("the testbed starts");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let ns = testbed.create_namespace("cli-webhook").await.unwrap();
    let admin = testbed.client().await.unwrap();
    let ctx = Arc::new(Context::new(
        admin.clone(),
        OperatorConfig {
            namespace: Some(ns.clone()),
            ..OperatorConfig::default()
        },
    ));
    let config = WebhookConfig {
        configuration_name: format!("kgents-proposals-{ns}"),
        namespace: ns.clone(),
        secret_name: "kgents-webhook-tls".to_owned(),
        policy_config_map: None,
        bind: "127.0.0.1:0".parse().unwrap(),
        endpoint: Endpoint::Url {
            host: "127.0.0.1".into(),
        },
        namespace_selector: Some(LabelSelector {
            match_labels: Some([("kubernetes.io/metadata.name".to_owned(), ns.clone())].into()),
            ..LabelSelector::default()
        }),
        watch_namespace: Some(ns.clone()),
        certificates: CertificateSource::Generated {
            validity: Duration::from_secs(30 * 86_400),
            renew_before: Duration::from_secs(7 * 86_400),
        },
        timeout_seconds: 3,
        remove_on_shutdown: true,
    };
    let health = Arc::new(kgents::kgents_operator::http::Health::new(
        kgents::kgents_operator::leader::LeaderState::always(),
    ));
    let webhook = admission::serve(&ctx, config, health)
        .await
        .expect("webhook serving");

    // The API server learns about webhook configurations through an informer: wait until it
    // calls this one.
    let me = kgents::kgents_logos::approval::whoami(&admin)
        .await
        .unwrap();
    let api: Api<Proposal> = Api::namespaced(admin.clone(), &ns);
    let probe: Proposal = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal",
        "metadata": {"name": "probe"},
        "spec": {"proposer": me, "changeType": "RISK_OVERRIDE",
            "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "x"}},
    }))
    .unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&dry_run, &probe).await {
            Err(kube::Error::Api(status)) if status.message.contains("T-gent") => break,
            other => assert!(
                Instant::now() < deadline,
                "the webhook did not take effect: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ghost = tempfile::tempdir().unwrap();
    let kubeconfig = testbed.kubeconfig_path().to_str().unwrap().to_owned();
    let output = std::process::Command::new(common::kgents_binary())
        .args([
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &ns,
            "propose",
            "--change-type",
            "RISK_OVERRIDE",
            "--target-kind",
            "Agent",
            "--target-name",
            "x",
            "--name",
            "override-x",
            "--dry-run",
        ])
        .env("KGENTS_GHOST_DIR", ghost.path())
        .output()
        .expect("kgents runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("RISK PREVIEW") && stdout.contains("CRITICAL"),
        "{stdout}"
    );
    assert!(
        stderr.contains("denied by the API server (403)") && stderr.contains("T-gent"),
        "{stderr}"
    );
    assert!(
        api.get_opt("override-x").await.unwrap().is_none(),
        "nothing stored"
    );
    webhook.shutdown().await;
}
