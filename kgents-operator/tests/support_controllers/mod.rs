//! Shared set-up of the Pheromone, Memory, Umwelt and Proposal testbed tests: a namespace, the
//! CRDs, and a context whose client acts as an operator ServiceAccount holding exactly the rules
//! a controller declares (so a test also proves `required_rules()` is enough). Polling is
//! `support::eventually`.

#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kgents_operator::{Context, OperatorConfig};
use kgents_testbed::Testbed;
use kube::api::{Api, ObjectMeta, PostParams};

/// A started controller and the switch that stops it.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts `run(ctx, shutdown)` on its own task.
    pub fn start<F, Fut>(ctx: Arc<Context>, run: F) -> Running
    where
        F: FnOnce(Arc<Context>, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        Running {
            stop: Some(stop),
            task: tokio::spawn(run(ctx, shutdown)),
        }
    }

    /// Stops the controller and waits (up to 10 s) for it to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the controller stops within 10 s")
            .expect("the controller task did not panic");
    }
}

/// Installs every kgents CRD and creates a fresh namespace.
pub async fn namespace(testbed: &Testbed, prefix: &str) -> String {
    testbed
        .install_crds(&kgents_crds::crds())
        .await
        .expect("CRDs installed");
    testbed
        .create_namespace(prefix)
        .await
        .expect("namespace created")
}

/// A context limited to `namespace` whose client is ServiceAccount `namespace/kgents-operator`,
/// bound cluster-wide to a ClusterRole of exactly `rules`.
pub async fn operator_context(
    testbed: &Testbed,
    namespace: &str,
    controller: &str,
    rules: Vec<PolicyRule>,
) -> Context {
    let admin = testbed.client().await.expect("admin client");
    let name = format!("kgents-operator-{controller}-{namespace}");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                rules: Some(rules),
                ..ClusterRole::default()
            },
        )
        .await
        .expect("operator ClusterRole created");
    let bindings: Api<ClusterRoleBinding> = Api::all(admin);
    bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    kind: "ClusterRole".to_owned(),
                    name,
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".to_owned(),
                    name: "kgents-operator".to_owned(),
                    namespace: Some(namespace.to_owned()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("operator ClusterRoleBinding created");
    let client = testbed
        .service_account_client(namespace, "kgents-operator")
        .await
        .expect("operator client");
    let config = OperatorConfig {
        namespace: Some(namespace.to_owned()),
        ..OperatorConfig::default()
    };
    Context::new(client, config)
}
