//! The T-gent admission webhook: the fast path of the proposal lifecycle (DESIGN §2), an adapter
//! over the pure policy of [`kgents_policy`].
//!
//! | module | what it holds |
//! |---|---|
//! | [`server`] | the HTTPS server (axum + rustls/ring), the policy ConfigMap and ledger watches, the ValidatingWebhookConfiguration it owns |
//! | [`certs`] | CA and serving certificate (rcgen), their Secret, rotation before expiry |
//! | `metrics` | admission verdicts and latency, registered in the operator's [`Metrics`](crate::metrics::Metrics) |
//!
//! The decision itself — allow-list, CEL rules, patch checks, risk over the ledger — is
//! [`kgents_policy::decide`], re-exported here with its types. Admission never calls anything
//! slow: it reads an in-memory ledger, evaluates pre-compiled CEL and the risk calculus, and
//! answers. The LLM review and human approvals happen afterwards in the Proposal controller,
//! which re-checks, with the same [`kgents_policy::evaluate`], every proposal that reached the
//! API server while the webhook was not registered.

pub mod certs;
pub(crate) mod metrics;
pub mod server;

pub use kgents_policy::{
    AdmissionPolicy, LiveLedger, Occasion, PolicyDocument, PolicyRule, Requester, Verdict, decide,
    evaluate,
};
pub use server::{
    CertificateSource, Endpoint, ServerStats, WebhookConfig, WebhookServer, namespaced_rules,
    required_rules, serve,
};
