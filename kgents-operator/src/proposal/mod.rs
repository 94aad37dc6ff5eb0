//! The Proposal controller: the slow path of the proposal lifecycle (DESIGN §2).
//!
//! | module | what it holds |
//! |---|---|
//! | [`phase`] | the phase machine as a pure function ([`phase::plan`]) |
//! | [`review`] | the [`Reviewer`] trait and the LLM reviewer (ALLOW / DENY / ESCALATE) |
//! | [`execute`] | dry run, apply with a dedicated field manager, previous state, idempotency |
//! | [`metrics`] | admission verdicts and phase transitions |
//! | [`approval`] | approve and reject under the authenticated identity (status subresource) |
//! | [`controller`] | the reconcile: assessment, review request, approvals, expiry, supersession |

pub mod approval;
pub mod controller;
pub mod execute;
pub mod metrics;
pub mod phase;
pub mod review;

pub use approval::{approve, reject, whoami};
pub use controller::{CONTROLLER, ProposalSettings, configure, required_rules, run, run_with};
pub use review::{LlmReviewer, ReviewVerdict, Reviewer};
