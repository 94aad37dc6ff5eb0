//! The T-gent admission webhook: the fast path of the proposal lifecycle (DESIGN §2).
//!
//! | module | what it holds |
//! |---|---|
//! | [`policy`] | [`AdmissionPolicy`]: target-kind allow-list, CEL rules, risk weights; read from a ConfigMap |
//! | [`cel`] | CEL rules compiled once ([`CompiledRules`]) and evaluated against a proposal |
//! | [`patch`] | a proposal's patch parsed for its type (merge, json, apply) |
//! | [`decision`] | the pure decision: request + policy + ledger + now → [`Verdict`] |
//! | [`ledger`] | [`StoreLedger`]: the risk ledger read from the operator's Proposal informer cache |
//! | [`certs`] | CA and serving certificate (rcgen), their Secret, rotation before expiry |
//! | [`server`] | the HTTPS server (axum + rustls/ring) and the ValidatingWebhookConfiguration it owns |
//!
//! Admission never calls anything slow: it reads an in-memory ledger, evaluates pre-compiled CEL
//! and the risk calculus, and answers. The LLM review and human approvals happen afterwards in
//! the Proposal controller ([`crate::proposal`]), which also re-checks, with the same
//! [`decision::evaluate`], every proposal that reached the API server while the webhook was not
//! registered.

pub mod cel;
pub mod certs;

pub mod decision;
pub mod ledger;
pub mod patch;
pub mod policy;
pub mod server;

pub use cel::CompiledRules;
pub use decision::{Requester, Verdict, decide, evaluate};
pub use ledger::StoreLedger;
pub use policy::{AdmissionPolicy, PolicyDocument, PolicyRule};
pub use server::{Endpoint, WebhookConfig, WebhookServer, serve};
