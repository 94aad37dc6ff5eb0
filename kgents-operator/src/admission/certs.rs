//! The webhook's certificates: a CA and a serving certificate generated with rcgen, kept in a
//! Secret (`tls.crt`, `tls.key`, `ca.crt`), rotated before they expire. The API server trusts
//! the CA through the `caBundle` of the webhook configuration; during a rotation the bundle
//! holds the new and the previous CA, so no request fails while the change propagates.
//!
//! With cert-manager, the operator only reads the Secret (`tls.crt`, `tls.key`, `ca.crt`) that
//! cert-manager writes, and cert-manager's CA injector fills `caBundle`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{Error, Result};

/// Annotation on the Secret recording when the serving certificate expires (RFC 3339).
pub const NOT_AFTER_ANNOTATION: &str = "kgents.io/not-after";
/// Key of the serving certificate (PEM) in the Secret.
pub const TLS_CRT: &str = "tls.crt";
/// Key of the serving key (PEM) in the Secret.
pub const TLS_KEY: &str = "tls.key";
/// Key of the CA bundle (PEM, possibly the new and the previous CA) in the Secret.
pub const CA_CRT: &str = "ca.crt";
/// The field manager the operator writes the Secret and the webhook configuration with.
pub const WEBHOOK_FIELD_MANAGER: &str = "kgents-webhook";

/// A serving certificate, its key and the CA bundle that verifies it.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateBundle {
    /// The serving certificate, PEM.
    pub cert_pem: String,
    /// The serving key, PEM.
    pub key_pem: String,
    /// The CA certificate(s), PEM: the one that signed `cert_pem` first.
    pub ca_pem: String,
    /// When the serving certificate expires.
    pub not_after: Timestamp,
}

impl std::fmt::Debug for CertificateBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateBundle")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn cert_error(what: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::Certificate {
        what: what.to_owned(),
        message: format!(
            "could not generate it: {e}; check the webhook's Service name or host (they become the certificate's names), or use cert-manager instead"
        ),
    }
}

/// Sets the validity of `params` to the days of `from` and `to` (UTC, day precision).
fn set_validity(params: &mut CertificateParams, from: Timestamp, to: Timestamp) {
    let day = |at: Timestamp| at.to_zoned(jiff::tz::TimeZone::UTC).date();
    let (from, to) = (day(from), day(to));
    params.not_before =
        rcgen::date_time_ymd(i32::from(from.year()), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(i32::from(to.year()), to.month() as u8, to.day() as u8);
}

/// Midnight UTC of `at`'s day.
fn day_start(at: Timestamp) -> Timestamp {
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .map(|z| z.timestamp())
        .unwrap_or(at)
}

/// Generates a CA and a serving certificate for `names` (DNS names and IP addresses), valid
/// from yesterday (clock skew) for `validity`, rounded to whole days.
pub fn generate(names: &[String], validity: Duration, now: Timestamp) -> Result<CertificateBundle> {
    let days = validity.as_secs().div_ceil(86_400).max(1) as i64;
    let not_before = day_start(now) - SignedDuration::from_hours(24);
    let not_after = day_start(now) + SignedDuration::from_hours(24 * days);

    let ca_key = KeyPair::generate().map_err(cert_error("CA key"))?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kgents-webhook-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // The CA outlives the serving certificate by a day so a late rotation still verifies.
    set_validity(
        &mut ca_params,
        not_before,
        not_after + SignedDuration::from_hours(24),
    );
    let ca =
        CertifiedIssuer::self_signed(ca_params, ca_key).map_err(cert_error("CA certificate"))?;

    let key = KeyPair::generate().map_err(cert_error("serving key"))?;
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(cert_error("serving certificate"))?;
    params.distinguished_name.push(
        DnType::CommonName,
        names
            .first()
            .cloned()
            .unwrap_or_else(|| "kgents-webhook".to_owned()),
    );
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut params, not_before, not_after);
    let cert = params
        .signed_by(&key, &ca)
        .map_err(cert_error("serving certificate"))?;
    Ok(CertificateBundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca.pem(),
        not_after,
    })
}

/// When to rotate a certificate expiring at `not_after`: `renew_before` earlier.
pub fn rotation_due(not_after: Timestamp, renew_before: Duration) -> Timestamp {
    let before = SignedDuration::try_from(renew_before).unwrap_or(SignedDuration::MAX);
    not_after.checked_sub(before).unwrap_or(Timestamp::MIN)
}

/// Whether a certificate expiring at `not_after` must be rotated at `now`.
pub fn needs_rotation(not_after: Timestamp, renew_before: Duration, now: Timestamp) -> bool {
    now >= rotation_due(not_after, renew_before)
}

/// The first PEM certificate block of `pem` (the newest CA of a bundle).
pub fn first_certificate(pem: &str) -> &str {
    const END: &str = "-----END CERTIFICATE-----";
    match pem.find(END) {
        Some(at) => &pem[..at + END.len()],
        None => pem,
    }
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Reads a bundle from a Secret; `None` when a key is missing or the expiry is unknown.
pub fn from_secret(secret: &Secret) -> Option<CertificateBundle> {
    let not_after = secret
        .metadata
        .annotations
        .as_ref()?
        .get(NOT_AFTER_ANNOTATION)?
        .parse::<Timestamp>()
        .ok()?;
    Some(CertificateBundle {
        cert_pem: text(secret, TLS_CRT)?,
        key_pem: text(secret, TLS_KEY)?,
        ca_pem: text(secret, CA_CRT)?,
        not_after,
    })
}

/// The Secret holding `bundle`.
pub fn to_secret(name: &str, namespace: &str, bundle: &CertificateBundle) -> Secret {
    let mut secret = Secret {
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (
                TLS_CRT.to_owned(),
                ByteString(bundle.cert_pem.clone().into_bytes()),
            ),
            (
                TLS_KEY.to_owned(),
                ByteString(bundle.key_pem.clone().into_bytes()),
            ),
            (
                CA_CRT.to_owned(),
                ByteString(bundle.ca_pem.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    secret.metadata.name = Some(name.to_owned());
    secret.metadata.namespace = Some(namespace.to_owned());
    secret.metadata.annotations = Some(BTreeMap::from([(
        NOT_AFTER_ANNOTATION.to_owned(),
        bundle.not_after.to_string(),
    )]));
    secret.metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_owned(),
        "kgents-operator".to_owned(),
    )]));
    secret
}

/// Where and how the certificates are kept.
#[derive(Debug, Clone)]
pub struct CertificateSettings {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub secret_name: String,
    /// Names the serving certificate is valid for (Service DNS names or IP addresses).
    pub names: Vec<String>,
    /// How long a generated certificate is valid.
    pub validity: Duration,
    /// How long before expiry it is replaced.
    pub renew_before: Duration,
}

/// Returns the bundle in the Secret, generating (and storing) a new one when the Secret is
/// missing, unreadable, for other names, or due for rotation. A rotated bundle trusts the new
/// CA and the previous one.
pub async fn load_or_create(
    client: &Client,
    settings: &CertificateSettings,
    now: Timestamp,
) -> Result<CertificateBundle> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let existing = api
        .get_opt(&settings.secret_name)
        .await?
        .and_then(|s| from_secret(&s));
    if let Some(bundle) = &existing
        && !needs_rotation(bundle.not_after, settings.renew_before, now)
    {
        return Ok(bundle.clone());
    }
    rotate(client, settings, existing.as_ref(), now).await
}

/// Generates a new bundle, keeps the previous CA in its trust bundle, and stores it.
pub async fn rotate(
    client: &Client,
    settings: &CertificateSettings,
    previous: Option<&CertificateBundle>,
    now: Timestamp,
) -> Result<CertificateBundle> {
    let mut bundle = generate(&settings.names, settings.validity, now)?;
    if let Some(previous) = previous.filter(|p| p.not_after > now) {
        bundle.ca_pem = format!(
            "{}\n{}\n",
            bundle.ca_pem.trim_end(),
            first_certificate(&previous.ca_pem)
        );
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let secret = to_secret(&settings.secret_name, &settings.namespace, &bundle);
    api.patch(
        &settings.secret_name,
        &PatchParams::apply(WEBHOOK_FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    tracing::info!(secret = %settings.secret_name, not_after = %bundle.not_after, "webhook certificate issued");
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid")
    }

    #[test]
    fn generated_bundle_round_trips_through_a_secret() {
        let now = at(1_800_000_000);
        let bundle = generate(
            &["127.0.0.1".into(), "kgents-webhook.kgents.svc".into()],
            Duration::from_secs(90 * 86_400),
            now,
        )
        .expect("generates");
        assert!(bundle.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.not_after > now + SignedDuration::from_hours(24 * 89));
        let secret = to_secret("s", "ns", &bundle);
        assert_eq!(from_secret(&secret), Some(bundle));
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let bundle = generate(
            &["kgents-webhook.kgents.svc".into()],
            Duration::from_secs(86_400),
            at(1_800_000_000),
        )
        .expect("generates");
        let shown = format!("{bundle:?} {bundle:#?}");
        let key_body = bundle.key_pem.lines().nth(1).expect("a PEM body line");
        assert!(!shown.contains(key_body), "{shown}");
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains("CERTIFICATE"),
            "{shown}"
        );
    }

    #[test]
    fn rotation_is_due_renew_before_expiry() {
        let not_after = at(1_000_000);
        let renew = Duration::from_secs(1_000);
        assert!(!needs_rotation(not_after, renew, at(998_999)));
        assert!(needs_rotation(not_after, renew, at(999_000)));
        assert!(needs_rotation(not_after, Duration::MAX, at(0)));
    }

    #[test]
    fn a_secret_without_the_expiry_is_not_trusted() {
        let bundle = generate(
            &["localhost".into()],
            Duration::from_secs(86_400),
            at(1_800_000_000),
        )
        .expect("generates");
        let mut secret = to_secret("s", "ns", &bundle);
        secret.metadata.annotations = None;
        assert_eq!(from_secret(&secret), None);
    }

    #[test]
    fn first_certificate_takes_the_newest_ca_of_a_bundle() {
        let two = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            first_certificate(two),
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"
        );
    }
}
