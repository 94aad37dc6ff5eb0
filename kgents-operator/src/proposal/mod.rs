//! The Proposal controller: the slow path of the proposal lifecycle (DESIGN §2), an adapter
//! over the pure policy of [`kgents_policy`]: the re-check of unvetted proposals is the same
//! [`kgents_policy::evaluate`] the webhook uses, and the phase machine is
//! [`kgents_policy::lifecycle::plan`].
//!
//! | module | what it holds |
//! |---|---|
//! | [`review`] | the [`Reviewer`] trait and the LLM reviewer (ALLOW / DENY / ESCALATE) |
//! | `execute` | dry run, apply with a dedicated field manager, previous state, idempotency |
//! | `metrics` | phase transitions, registered in the operator's [`Metrics`](crate::metrics::Metrics) |
//! | [`approval`] | approve and reject under the authenticated identity (status subresource) |
//! | `controller` | the reconcile: gather facts, plan, perform, status |

pub mod approval;
pub(crate) mod controller;
pub(crate) mod execute;
pub(crate) mod metrics;
pub mod review;

pub use approval::{approve, reject, whoami};
pub use controller::{CONTROLLER, ProposalSettings, required_rules, run, run_with};
pub use review::{LlmReviewer, ReviewReport, ReviewRequest, ReviewVerdict, Reviewer};
