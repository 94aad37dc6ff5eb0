//! Command lines of the control-plane components, as pure functions of the
//! testbed layout so they can be checked without starting anything.

use std::path::PathBuf;

/// Everything the command lines refer to.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) etcd_client_port: u16,
    pub(crate) etcd_peer_port: u16,
    pub(crate) apiserver_port: u16,
    pub(crate) etcd_data_dir: PathBuf,
    pub(crate) cert_dir: PathBuf,
    pub(crate) ca_cert: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_public_key: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) kwok_stages: PathBuf,
    /// kwok's second configuration file: the ClusterPortForward and ClusterLogs rules its
    /// kubelet server answers `kubectl port-forward` and `kubectl logs` with.
    pub(crate) kwok_debugging: PathBuf,
    /// The port of kwok's kubelet server (HTTPS on loopback, every fake node's kubelet endpoint).
    pub(crate) kwok_server_port: u16,
    /// Whether the ServiceAccount admission plugin stays on (only when the
    /// controller-manager runs: without it no `default` ServiceAccount exists
    /// and every pod would be rejected).
    pub(crate) service_account_admission: bool,
}

fn flag(name: &str, value: impl std::fmt::Display) -> String {
    format!("--{name}={value}")
}

/// etcd: loopback only, tmpfs data dir, no fsync (test data is disposable).
pub(crate) fn etcd_args(layout: &Layout) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", layout.etcd_client_port);
    let peer = format!("http://127.0.0.1:{}", layout.etcd_peer_port);
    vec![
        flag("name", "kgents-testbed"),
        flag("data-dir", layout.etcd_data_dir.display()),
        flag("listen-client-urls", &client),
        flag("advertise-client-urls", &client),
        flag("listen-peer-urls", &peer),
        flag("initial-advertise-peer-urls", &peer),
        flag("initial-cluster", format!("kgents-testbed={peer}")),
        flag("unsafe-no-fsync", true),
        flag("log-level", "warn"),
        // Keeps the tmpfs database small in long-running sessions.
        flag("auto-compaction-mode", "periodic"),
        flag("auto-compaction-retention", "5m"),
    ]
}

/// kube-apiserver: loopback, client-certificate authentication, RBAC.
pub(crate) fn apiserver_args(layout: &Layout) -> Vec<String> {
    let mut args = vec![
        flag(
            "etcd-servers",
            format!("http://127.0.0.1:{}", layout.etcd_client_port),
        ),
        flag("bind-address", "127.0.0.1"),
        // Without it the apiserver looks for a default-route interface and
        // fails on machines that have none; loopback is hermetic.
        flag("advertise-address", "127.0.0.1"),
        // The endpoint reconciler refuses a loopback advertise address, and
        // nothing routes to the `kubernetes` Service here anyway.
        flag("endpoint-reconciler-type", "none"),
        flag("secure-port", layout.apiserver_port),
        flag("cert-dir", layout.cert_dir.display()),
        flag("tls-cert-file", layout.serving_cert.display()),
        flag("tls-private-key-file", layout.serving_key.display()),
        flag("client-ca-file", layout.ca_cert.display()),
        flag(
            "service-account-issuer",
            format!("https://127.0.0.1:{}", layout.apiserver_port),
        ),
        flag(
            "service-account-key-file",
            layout.service_account_public_key.display(),
        ),
        flag(
            "service-account-signing-key-file",
            layout.service_account_key.display(),
        ),
        flag("service-cluster-ip-range", "10.96.0.0/16"),
        flag("authorization-mode", "RBAC"),
        flag("allow-privileged", true),
        flag("profiling", false),
    ];
    if !layout.service_account_admission {
        args.push(flag("disable-admission-plugins", "ServiceAccount"));
    }
    args
}

/// kube-controller-manager: every default controller, no leader election,
/// no serving port (nothing scrapes it).
pub(crate) fn controller_manager_args(layout: &Layout) -> Vec<String> {
    vec![
        flag("kubeconfig", layout.kubeconfig.display()),
        flag("leader-elect", false),
        flag("bind-address", "127.0.0.1"),
        flag("secure-port", 0),
        flag("controllers", "*"),
        flag(
            "service-account-private-key-file",
            layout.service_account_key.display(),
        ),
        flag("root-ca-file", layout.ca_cert.display()),
        flag("use-service-account-credentials", false),
        flag("node-monitor-period", "5s"),
        flag("node-monitor-grace-period", "40s"),
        flag("kube-api-qps", 500),
        flag("kube-api-burst", 1000),
    ]
}

/// kube-scheduler: no leader election, no serving port.
pub(crate) fn scheduler_args(layout: &Layout) -> Vec<String> {
    vec![
        flag("kubeconfig", layout.kubeconfig.display()),
        flag("leader-elect", false),
        flag("bind-address", "127.0.0.1"),
        flag("secure-port", 0),
        flag("kube-api-qps", 500),
        flag("kube-api-burst", 1000),
    ]
}

/// kwok: manages every node (the testbed has only fake ones), with node
/// leases (off by default in the kwok binary) and the "fast" stages.
///
/// kwok also serves the kubelet API for its fake nodes: every node's address is
/// loopback and its kubelet endpoint is kwok's server (HTTPS with the apiserver's
/// loopback certificate, which the apiserver does not verify for kubelets), so
/// the apiserver's `pods/log` and `pods/portforward` reach kwok, which answers
/// with the rules of [`kwok_debugging_config`].
pub(crate) fn kwok_args(layout: &Layout) -> Vec<String> {
    vec![
        flag("kubeconfig", layout.kubeconfig.display()),
        flag("config", layout.kwok_stages.display()),
        flag("config", layout.kwok_debugging.display()),
        flag("manage-all-nodes", true),
        flag("node-lease-duration-seconds", 40),
        flag("cidr", "10.244.0.0/16"),
        flag("node-ip", "127.0.0.1"),
        flag("node-port", layout.kwok_server_port),
        flag(
            "server-address",
            format!("127.0.0.1:{}", layout.kwok_server_port),
        ),
        flag("tls-cert-file", layout.serving_cert.display()),
        flag("tls-private-key-file", layout.serving_key.display()),
    ]
}

/// kwok's debugging rules for every pod of every namespace: a port-forward to any
/// port runs `cat` (what is sent comes back: an echo server without a process
/// listening), and the logs of any container are the lines of `pod_log` (followed),
/// which a test appends to.
pub(crate) fn kwok_debugging_config(pod_log: &std::path::Path) -> String {
    let pod_log =
        serde_json::to_string(&pod_log.display().to_string()).unwrap_or_else(|_| "\"\"".to_owned());
    format!(
        "apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: kgents-testbed-echo
spec:
  forwards:
  - command: [\"cat\"]
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: kgents-testbed-logs
spec:
  logs:
  - logsFile: {pod_log}
    follow: true
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            etcd_client_port: 2001,
            etcd_peer_port: 2002,
            apiserver_port: 6001,
            etcd_data_dir: "/dev/shm/e".into(),
            cert_dir: "/t/pki".into(),
            ca_cert: "/t/pki/ca.crt".into(),
            serving_cert: "/t/pki/apiserver.crt".into(),
            serving_key: "/t/pki/apiserver.key".into(),
            service_account_key: "/t/pki/sa.key".into(),
            service_account_public_key: "/t/pki/sa.pub".into(),
            kubeconfig: "/t/kubeconfig".into(),
            kwok_stages: "/b/kwok-stages.yaml".into(),
            kwok_debugging: "/t/kwok-debugging.yaml".into(),
            kwok_server_port: 6002,
            service_account_admission: false,
        }
    }

    #[test]
    fn etcd_stays_on_loopback_without_fsync() {
        let args = etcd_args(&layout());
        assert!(args.contains(&"--listen-client-urls=http://127.0.0.1:2001".to_string()));
        assert!(args.contains(&"--listen-peer-urls=http://127.0.0.1:2002".to_string()));
        assert!(args.contains(&"--unsafe-no-fsync=true".to_string()));
        assert!(args.contains(&"--data-dir=/dev/shm/e".to_string()));
        assert!(args.iter().all(|a| !a.contains("0.0.0.0")));
    }

    #[test]
    fn apiserver_uses_loopback_rbac_and_the_generated_pki() {
        let mut layout = layout();
        let args = apiserver_args(&layout);
        for expected in [
            "--etcd-servers=http://127.0.0.1:2001",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            "--bind-address=127.0.0.1",
            "--secure-port=6001",
            "--authorization-mode=RBAC",
            "--client-ca-file=/t/pki/ca.crt",
            "--service-account-signing-key-file=/t/pki/sa.key",
            "--service-account-key-file=/t/pki/sa.pub",
            "--service-account-issuer=https://127.0.0.1:6001",
            "--disable-admission-plugins=ServiceAccount",
        ] {
            assert!(
                args.contains(&expected.to_string()),
                "missing {expected} in {args:?}"
            );
        }
        layout.service_account_admission = true;
        assert!(
            !apiserver_args(&layout)
                .iter()
                .any(|a| a.starts_with("--disable-admission-plugins"))
        );
    }

    #[test]
    fn helpers_use_the_admin_kubeconfig_and_no_leader_election() {
        let layout = layout();
        for args in [controller_manager_args(&layout), scheduler_args(&layout)] {
            assert!(args.contains(&"--kubeconfig=/t/kubeconfig".to_string()));
            assert!(args.contains(&"--leader-elect=false".to_string()));
            assert!(args.contains(&"--secure-port=0".to_string()));
        }
        let kwok = kwok_args(&layout);
        assert!(kwok.contains(&"--config=/b/kwok-stages.yaml".to_string()));
        assert!(kwok.contains(&"--node-lease-duration-seconds=40".to_string()));
    }

    #[test]
    fn kwok_serves_the_kubelet_api_on_loopback_with_its_debugging_rules() {
        let kwok = kwok_args(&layout());
        for expected in [
            "--config=/t/kwok-debugging.yaml",
            "--node-ip=127.0.0.1",
            "--node-port=6002",
            "--server-address=127.0.0.1:6002",
            "--tls-cert-file=/t/pki/apiserver.crt",
            "--tls-private-key-file=/t/pki/apiserver.key",
        ] {
            assert!(kwok.contains(&expected.to_string()), "missing {expected}");
        }
        let config = kwok_debugging_config(std::path::Path::new("/t/pod \"logs\".log"));
        assert!(config.contains("kind: ClusterPortForward"), "{config}");
        assert!(config.contains("command: [\"cat\"]"), "{config}");
        assert!(
            config.contains("logsFile: \"/t/pod \\\"logs\\\".log\""),
            "{config}"
        );
    }
}
