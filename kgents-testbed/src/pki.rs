//! A throwaway public-key infrastructure for one testbed: a CA, the
//! apiserver's serving certificate, an admin client certificate
//! (`system:masters`) and the service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// The user name of the admin client certificate.
pub const ADMIN_USER: &str = "kgents-testbed-admin";

/// PEM texts of everything a testbed needs.
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate (trusted by clients and used to verify client certificates).
    pub ca_cert_pem: String,
    /// The apiserver serving certificate (SANs `127.0.0.1`, `localhost`, `::1`).
    pub serving_cert_pem: String,
    /// The private key of the serving certificate.
    pub serving_key_pem: String,
    /// The admin client certificate (`CN=kgents-testbed-admin`, `O=system:masters`).
    pub admin_cert_pem: String,
    /// The private key of the admin client certificate.
    pub admin_key_pem: String,
    /// The service-account token signing key (PKCS#8 ECDSA P-256).
    pub service_account_key_pem: String,
    /// Its public key (SPKI). kube-apiserver's `--service-account-key-file`
    /// does not read PKCS#8 private keys, so it gets this one.
    pub service_account_public_key_pem: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of debug output.
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// Paths of the PKI files written by [`Pki::write_to`].
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// Serving certificate.
    pub serving_cert: PathBuf,
    /// Serving key.
    pub serving_key: PathBuf,
    /// Admin client certificate.
    pub admin_cert: PathBuf,
    /// Admin client key.
    pub admin_key: PathBuf,
    /// Service-account signing key.
    pub service_account_key: PathBuf,
    /// Service-account verification (public) key.
    pub service_account_public_key: PathBuf,
}

fn cert_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Certificate { what, source }
}

/// A CA that signs leaf certificates; also used by tests for their webhook servers.
pub struct CertificateAuthority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertifiedKeyPem {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKeyPem")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA with the given common name.
    pub fn new(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate().map_err(cert_error("CA key"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            CertifiedIssuer::self_signed(params, key).map_err(cert_error("CA certificate"))?;
        Ok(Self { issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A serving certificate for loopback: SANs `127.0.0.1`, `::1` and `localhost`.
    pub fn loopback_serving_cert(&self) -> Result<CertifiedKeyPem> {
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
        ])
        .map_err(cert_error("serving certificate"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign("serving certificate", params)
    }

    /// A client certificate: the common name is the user, organisations are groups.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertifiedKeyPem> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign("client certificate", params)
    }

    fn sign(&self, what: &'static str, params: CertificateParams) -> Result<CertifiedKeyPem> {
        let key = KeyPair::generate().map_err(cert_error(what))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_error(what))?;
        Ok(CertifiedKeyPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Pki {
    /// Generates a fresh CA and every certificate and key.
    pub fn generate() -> Result<Self> {
        let ca = CertificateAuthority::new("kgents-testbed-ca")?;
        let serving = ca.loopback_serving_cert()?;
        let admin = ca.client_cert(ADMIN_USER, &["system:masters"])?;
        let service_account_key = KeyPair::generate().map_err(cert_error("service-account key"))?;
        Ok(Self {
            ca_cert_pem: ca.cert_pem(),
            serving_cert_pem: serving.cert_pem,
            serving_key_pem: serving.key_pem,
            admin_cert_pem: admin.cert_pem,
            admin_key_pem: admin.key_pem,
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_key_pem: service_account_key.public_key_pem(),
        })
    }

    /// Writes every file into `dir` (created if needed) and returns their paths.
    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let files = PkiFiles {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            service_account_key: dir.join("sa.key"),
            service_account_public_key: dir.join("sa.pub"),
        };
        for (path, text) in [
            (&files.ca_cert, &self.ca_cert_pem),
            (&files.serving_cert, &self.serving_cert_pem),
            (&files.serving_key, &self.serving_key_pem),
            (&files.admin_cert, &self.admin_cert_pem),
            (&files.admin_key, &self.admin_key_pem),
            (&files.service_account_key, &self.service_account_key_pem),
            (
                &files.service_account_public_key,
                &self.service_account_public_key_pem,
            ),
        ] {
            std::fs::write(path, text)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_distinct_pem_material() {
        let pki = Pki::generate().expect("pki");
        for pem in [&pki.ca_cert_pem, &pki.serving_cert_pem, &pki.admin_cert_pem] {
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        }
        for pem in [
            &pki.serving_key_pem,
            &pki.admin_key_pem,
            &pki.service_account_key_pem,
        ] {
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        }
        assert!(
            pki.service_account_public_key_pem
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        assert_ne!(pki.serving_key_pem, pki.admin_key_pem);
        assert_ne!(pki.serving_cert_pem, pki.admin_cert_pem);
        let dir = tempfile::tempdir().expect("temp dir");
        let files = pki.write_to(&dir.path().join("pki")).expect("write");
        assert_eq!(
            std::fs::read_to_string(files.service_account_key).expect("read"),
            pki.service_account_key_pem
        );
    }
}
