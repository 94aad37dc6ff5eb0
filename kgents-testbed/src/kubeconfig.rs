//! The admin kubeconfig of a testbed, shared by the Rust clients and by the
//! Go components (controller-manager, scheduler, kwok).

use std::path::Path;

/// The cluster, user and context name used in the kubeconfig.
pub const CONTEXT_NAME: &str = "kgents-testbed";

/// Renders a kubeconfig that reaches `server` (e.g. `https://127.0.0.1:6443`)
/// with the given CA and client-certificate files.
///
/// File references instead of inline base64 data keep the file readable and
/// let a person reuse it with kubectl as it is.
pub fn render(server: &str, ca_cert: &Path, client_cert: &Path, client_key: &Path) -> String {
    // JSON-quoted strings are valid YAML scalars, whatever the path contains.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {name}\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n\
         - name: {name}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n\
         contexts:\n\
         - name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\n\
         current-context: {name}\n",
        name = CONTEXT_NAME,
        server = quote(server),
        ca = quote(&ca_cert.display().to_string()),
        cert = quote(&client_cert.display().to_string()),
        key = quote(&client_key.display().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_kubeconfig_kube_can_read() {
        let text = render(
            "https://127.0.0.1:41234",
            Path::new("/tmp/x y/ca.crt"),
            Path::new("/tmp/x y/admin.crt"),
            Path::new("/tmp/x: y/admin.key"),
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&text).expect("valid kubeconfig");
        assert_eq!(parsed.current_context.as_deref(), Some(CONTEXT_NAME));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:41234"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/tmp/x y/ca.crt")
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(user.client_key.as_deref(), Some("/tmp/x: y/admin.key"));
        assert_eq!(
            user.client_certificate.as_deref(),
            Some("/tmp/x y/admin.crt")
        );
    }
}
