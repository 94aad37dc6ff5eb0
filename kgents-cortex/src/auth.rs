//! The TCP listener's protection: TLS (rustls with ring, through tonic) and a bearer token.
//!
//! - [`check_exposure`] (pure): a non-loopback address needs TLS **and** a token; plain text
//!   stays allowed on loopback only.
//! - [`BearerToken`]: the shared secret, read from a file or `$KGENTS_CORTEX_TOKEN`, never
//!   shown in `Debug` output; compared in constant time.
//! - [`TokenCheck`]: the server's interceptor on every service but gRPC health (kubelet's gRPC
//!   probes send no headers, and health says nothing about the cluster): a missing or wrong
//!   `authorization: Bearer …` is `UNAUTHENTICATED` with a message saying what was wrong.
//! - [`AttachToken`]: the client's interceptor adding the header.
//! - [`server_tls`] and [`client_tls`]: the PEM files read, with errors naming the file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::error::{Error, Result};

/// The environment variable holding the bearer token (server and client).
pub const TOKEN_ENV: &str = "KGENTS_CORTEX_TOKEN";
/// The shortest token accepted, in bytes: a guessable token is refused at start.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Whether serving on `addr` is allowed with (`tls`, `token`).
///
/// # Errors
/// The reason, and what to pass, when a non-loopback address lacks TLS or a token.
pub fn check_exposure(addr: SocketAddr, tls: bool, token: bool) -> std::result::Result<(), String> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    match (tls, token) {
        (true, true) => Ok(()),
        (false, _) => Err(format!(
            "--tcp {addr} is not a loopback address: serving it needs TLS and a bearer token \
             (--tls-cert FILE --tls-key FILE --token-file FILE, or ${TOKEN_ENV}); plain text is \
             served on 127.0.0.1 or ::1 only"
        )),
        (true, false) => Err(format!(
            "--tcp {addr} is not a loopback address: TLS alone lets anyone who reaches it act \
             with the daemon's identity; give a bearer token too (--token-file FILE or \
             ${TOKEN_ENV})"
        )),
    }
}

/// The bearer token (see the [module docs](self)).
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token from its text (surrounding whitespace, such as a file's final newline, is
    /// dropped), read from `origin` (named in errors).
    ///
    /// # Errors
    /// [`Error::Auth`] when it is shorter than [`MIN_TOKEN_BYTES`] or has characters a header
    /// cannot carry.
    pub fn new(text: &str, origin: &str) -> Result<BearerToken> {
        let token = text.trim();
        if token.len() < MIN_TOKEN_BYTES {
            return Err(Error::Auth(format!(
                "the token in {origin} has {} bytes; use at least {MIN_TOKEN_BYTES} random ones \
                 (e.g. `openssl rand -hex 32`)",
                token.len()
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Auth(format!(
                "the token in {origin} has spaces or non-ASCII characters; use printable ASCII \
                 (e.g. `openssl rand -hex 32`)"
            )));
        }
        Ok(BearerToken(token.into()))
    }

    /// The token in `path`.
    ///
    /// # Errors
    /// The file cannot be read, or [`BearerToken::new`]'s.
    pub fn from_file(path: &Path) -> Result<BearerToken> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading the token file {}", path.display()), e))?;
        BearerToken::new(&text, &path.display().to_string())
    }

    /// The token in `$KGENTS_CORTEX_TOKEN`, if set and not empty.
    ///
    /// # Errors
    /// [`BearerToken::new`]'s.
    pub fn from_env() -> Result<Option<BearerToken>> {
        match std::env::var(TOKEN_ENV) {
            Ok(text) if !text.trim().is_empty() => {
                BearerToken::new(&text, &format!("${TOKEN_ENV}")).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }

    fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    if expected.len() != presented.len() {
        return false;
    }
    let difference = expected
        .iter()
        .zip(presented)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// The server's check (see the [module docs](self)); without a token it lets everything
/// through (the Unix socket, whose mode 0600 is its protection, and plain loopback TCP).
#[derive(Clone, Debug, Default)]
pub struct TokenCheck {
    token: Option<BearerToken>,
}

impl TokenCheck {
    /// Checks for `token` (none: no check).
    pub fn new(token: Option<BearerToken>) -> TokenCheck {
        TokenCheck { token }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "no bearer token: send the header `authorization: Bearer TOKEN` (the kgents CLI \
                 reads it from $KGENTS_CORTEX_TOKEN)",
            ));
        };
        let presented = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| value.as_bytes().strip_prefix(b"bearer "));
        match presented {
            Some(presented) if token.matches(presented) => Ok(request),
            Some(_) => Err(Status::unauthenticated(
                "the bearer token is wrong: use the daemon's token (its --token-file or \
                 $KGENTS_CORTEX_TOKEN)",
            )),
            None => Err(Status::unauthenticated(
                "the authorization header is not `Bearer TOKEN`",
            )),
        }
    }
}

/// The client's interceptor: adds `authorization: Bearer TOKEN` when it has a token.
#[derive(Clone, Debug, Default)]
pub struct AttachToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl AttachToken {
    /// Attaches `token` (none: nothing).
    pub fn new(token: Option<&BearerToken>) -> AttachToken {
        AttachToken {
            // A token is printable ASCII (checked when made), so the header always parses.
            header: token.and_then(|t| t.header().parse().ok()),
        }
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// The TLS certificate chain and key files of the TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The PEM certificate chain (the server's first).
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("reading the {what} {}", path.display()), e))?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(Error::Auth(format!(
            "{} is not a PEM file (no -----BEGIN line); the {what} must be PEM",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The server's TLS configuration from `files`.
///
/// # Errors
/// A file that cannot be read or is not PEM, named.
pub fn server_tls(files: &TlsFiles) -> Result<ServerTlsConfig> {
    let cert = read(&files.cert, "TLS certificate")?;
    let key = read(&files.key, "TLS key")?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
}

/// A client's TLS configuration trusting the CA in `ca` (none: the platform's roots are not
/// compiled in, so a CA file is needed for a private CA; a public one needs it too).
///
/// # Errors
/// A file that cannot be read or is not PEM, named.
pub fn client_tls(ca: &Path, domain: Option<&str>) -> Result<ClientTlsConfig> {
    let pem = read(ca, "CA certificate")?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
    if let Some(domain) = domain {
        config = config.domain_name(domain);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_tls_and_a_token() {
        let lo: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let lo6: SocketAddr = "[::1]:50051".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        for (tls, token) in [(false, false), (true, false), (false, true), (true, true)] {
            assert!(check_exposure(lo, tls, token).is_ok());
            assert!(check_exposure(lo6, tls, token).is_ok());
            assert_eq!(check_exposure(any, tls, token).is_ok(), tls && token);
        }
        let error = check_exposure(any, false, false).unwrap_err();
        assert!(
            error.contains("--tls-cert") && error.contains("loopback"),
            "{error}"
        );
        assert!(
            check_exposure(any, true, false)
                .unwrap_err()
                .contains("--token-file")
        );
    }

    #[test]
    fn tokens_are_checked_whole_and_never_shown() {
        let token = BearerToken::new("0123456789abcdef0123\n", "test").unwrap();
        assert!(token.matches(b"0123456789abcdef0123"));
        assert!(!token.matches(b"0123456789abcdef0124"));
        assert!(!token.matches(b"0123456789abcdef012"));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?}").contains("0123"));
        assert!(
            BearerToken::new("short", "x")
                .unwrap_err()
                .to_string()
                .contains("at least 16")
        );
        assert!(BearerToken::new("0123456789abcdef 0123", "x").is_err());
    }

    #[test]
    fn the_interceptors_agree_and_refuse_with_reasons() {
        let token = BearerToken::new("0123456789abcdef0123", "test").unwrap();
        let mut check = TokenCheck::new(Some(token.clone()));
        let attached = AttachToken::new(Some(&token))
            .call(Request::new(()))
            .unwrap();
        assert!(check.call(attached).is_ok());
        let missing = check.call(Request::new(())).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("no bearer token"));
        let other = BearerToken::new("fedcba9876543210fedc", "test").unwrap();
        let wrong = check
            .call(
                AttachToken::new(Some(&other))
                    .call(Request::new(()))
                    .unwrap(),
            )
            .unwrap_err();
        assert!(wrong.message().contains("wrong"), "{wrong:?}");
        assert!(TokenCheck::new(None).call(Request::new(())).is_ok());
    }
}
