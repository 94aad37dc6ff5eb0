//! An admission webhook served by the test process on 127.0.0.1 over TLS
//! with its own CA, registered with the testbed's apiserver.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use kgents_testbed::Testbed;
use kgents_testbed::pki::CertificateAuthority;
use kube::api::{Api, DeleteParams, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const DENIAL: &str = "denied by the kgents-testbed webhook";

/// The webhook's decision, a pure function of the AdmissionReview request:
/// ConfigMaps named `forbidden-*` are denied.
fn review(request: &serde_json::Value) -> serde_json::Value {
    let uid = request["request"]["uid"].clone();
    let name = request["request"]["name"]
        .as_str()
        .or_else(|| request["request"]["object"]["metadata"]["name"].as_str())
        .unwrap_or_default();
    let allowed = !name.starts_with("forbidden-");
    let mut response = serde_json::json!({"uid": uid, "allowed": allowed});
    if !allowed {
        response["status"] = serde_json::json!({"code": 403, "message": DENIAL});
    }
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

async fn handle(
    request: Request<Incoming>,
    calls: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    calls.fetch_add(1, Ordering::SeqCst);
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let reply = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(review_request) => review(&review_request).to_string(),
        Err(error) => {
            return Ok(Response::builder()
                .status(400)
                .body(Full::new(Bytes::from(format!(
                    "bad AdmissionReview: {error}"
                ))))
                .expect("static response"));
        }
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(reply)))
        .expect("static response"))
}

/// Serves the webhook on a free loopback port; returns the port, the CA PEM
/// and the call counter.
async fn serve() -> (u16, String, Arc<AtomicUsize>) {
    let ca = CertificateAuthority::new("kgents-testbed-webhook-ca").expect("webhook CA");
    let serving = ca.loopback_serving_cert().expect("webhook serving cert");
    let certs =
        vec![CertificateDer::from_pem_slice(serving.cert_pem.as_bytes()).expect("cert PEM")];
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).expect("key PEM");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |request| handle(request, counter.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca.cert_pem(), calls)
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("valid ConfigMap")
}

pub async fn denies_config_maps(testbed: &Testbed) {
    let (port, ca_pem, calls) = serve().await;
    let namespace = testbed
        .create_namespace("webhook")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = testbed.client().await.unwrap_or_else(|e| panic!("{e}"));
    let configuration_name = format!("kgents-testbed-{namespace}");
    let configuration: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": configuration_name},
        "webhooks": [{
            "name": "deny.testbed.kgents.dev",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/validate"),
                "caBundle": "",
            },
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["configmaps"],
            }],
            // Only this test's namespace: the control plane is shared.
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
        }],
    }))
    .map(|mut c: ValidatingWebhookConfiguration| {
        // Raw PEM bytes: serialisation base64-encodes them once.
        c.webhooks.as_mut().expect("webhooks")[0]
            .client_config
            .ca_bundle = Some(ByteString(ca_pem.into_bytes()));
        c
    })
    .expect("valid webhook configuration");
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    configurations
        .create(&PostParams::default(), &configuration)
        .await
        .expect("register webhook");

    let config_maps: Api<ConfigMap> = Api::namespaced(admin, &namespace);
    // The apiserver learns about webhook configurations through an informer;
    // dry-run creates show when it is in effect.
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match config_maps
            .create(&dry_run, &config_map("forbidden-probe"))
            .await
        {
            Err(kube::Error::Api(status)) if status.message.contains(DENIAL) => break,
            outcome if tokio::time::Instant::now() < deadline => {
                let _ = outcome;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome => panic!("the webhook never took effect; last outcome {outcome:?}"),
        }
    }

    let denied = config_maps
        .create(&PostParams::default(), &config_map("forbidden-1"))
        .await
        .expect_err("the webhook denies forbidden-*");
    match &denied {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains(DENIAL), "{status:?}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(
        config_maps
            .get_opt("forbidden-1")
            .await
            .expect("get")
            .is_none()
    );
    config_maps
        .create(&PostParams::default(), &config_map("allowed-1"))
        .await
        .expect("the webhook allows other names");
    assert!(
        calls.load(Ordering::SeqCst) >= 3,
        "webhook called {} times",
        calls.load(Ordering::SeqCst)
    );

    configurations
        .delete(&configuration_name, &DeleteParams::default())
        .await
        .expect("unregister webhook");
}

#[cfg(test)]
mod decision {
    use super::*;

    #[test]
    fn denies_only_forbidden_names_and_echoes_the_uid() {
        let deny = review(&serde_json::json!({"request": {"uid": "u1", "name": "forbidden-x"}}));
        assert_eq!(deny["response"]["uid"], "u1");
        assert_eq!(deny["response"]["allowed"], false);
        assert_eq!(deny["response"]["status"]["message"], DENIAL);
        let allow = review(
            &serde_json::json!({"request": {"uid": "u2", "object": {"metadata": {"name": "ok"}}}}),
        );
        assert_eq!(allow["response"]["allowed"], true);
        assert_eq!(allow["kind"], "AdmissionReview");
    }
}
