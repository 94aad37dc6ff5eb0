//! Human approvals and rejections, recorded in a proposal's status through the status
//! subresource under the identity the API server authenticated. The logic lives in
//! [`kgents_logos::approval`] (the Logos' `world.cluster.proposals.<proposal>.approve` and
//! `.reject` paths use it); it is re-exported here for embedders of the operator.

pub use crate::support::whoami;
pub use kgents_logos::approval::{approve, field_manager, reject};
