//! K8-gents' T-gent admission policy: what may be proposed and what happens to it, decided
//! without I/O. The webhook and the Proposal controller of `kgents-operator` are adapters over
//! this one policy: the webhook asks [`decide`] about an admission request, the controller asks
//! [`evaluate`] about a stored proposal (both get the same [`Verdict`]) and then
//! [`lifecycle::plan`] for the phase and the one effect to perform.
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`policy`] | [`AdmissionPolicy`]: the target-kind allow-list, forbidden kinds and groups, CEL rules, risk weights; built from a [`PolicyDocument`] |
//! | [`cel`] | CEL rules compiled once ([`CompiledRules`]) and evaluated against a proposal |
//! | [`patch`] | a proposal's patch parsed for its type ([`ParsedPatch`]); a patch may not rename, move or re-kind its target |
//! | [`ledger`] | the risk ledger of stored proposals: [`LiveLedger`], kept one change at a time, and [`ledger::snapshot`] |
//! | [`decision`] | the decision: request + policy + ledger + now → [`Verdict`] |
//! | [`lifecycle`] | the proposal phase machine after admission: [`lifecycle::Facts`] in, [`lifecycle::plan`] (phase, one effect) out, and the readers of a proposal's facts |
//! | [`review`] | a reviewer's verdict read strictly from a model's answer: [`review::parse_answer`], [`review::ReviewVerdict`] |
//! | [`error`] | [`Error`] and [`Result`] |
//!
//! Nothing here reads a clock, the network or a file: `now` and the ledger are passed in, so
//! a decision is a function of its inputs (property-tested: CRITICAL is always denied, HIGH
//! filed by a ServiceAccount always denied, and a riskier proposal is never admitted where a
//! safer one of the same shape is not).
//!
//! ```
//! use kgents_policy::{AdmissionPolicy, Occasion, evaluate};
//! use kgents_risk::LedgerSnapshot;
//! let proposal: kgents_crds::Proposal = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "kgents.io/v1", "kind": "Proposal",
//!     "metadata": {"name": "scale-b", "namespace": "team"},
//!     "spec": {"proposer": "alice", "changeType": "AGENT_SCALE",
//!         "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b"}},
//! })).unwrap();
//! let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
//! let verdict = evaluate(&proposal, &Occasion::review(), &AdmissionPolicy::default(),
//!     &LedgerSnapshot::new(), now);
//! assert!(verdict.allowed, "{}", verdict.message());
//! ```
#![forbid(unsafe_code)]

pub mod cel;
pub mod decision;
pub mod error;
pub mod ledger;
pub mod lifecycle;
pub mod patch;
pub mod policy;
pub mod review;

pub use cel::{Bindings, CompiledRules, Violation};
pub use decision::{Occasion, Requester, Verdict, decide, evaluate};
pub use error::{Error, Result};
pub use ledger::LiveLedger;
pub use patch::ParsedPatch;
pub use policy::{AdmissionPolicy, KindRef, POLICY_KEY, PolicyDocument, PolicyRule};
