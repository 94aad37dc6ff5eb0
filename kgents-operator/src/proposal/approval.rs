//! Human approvals and rejections, recorded in a proposal's status through the status
//! subresource under the identity the API server authenticated (asked with a
//! SelfSubjectReview, never typed by the user). Each person writes with a field manager of
//! their own, so approvals from several people (and the controller's fields) coexist under
//! server-side apply.

use kgents_crds::Proposal;
use kgents_crds::common::Time;
use kgents_crds::proposal::{Approval, Rejection};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::Result;
pub use crate::support::whoami;

/// The field manager of `who`'s approvals (at most 128 characters, as the API server requires).
pub fn field_manager(who: &str) -> String {
    let mut manager = format!("kgents-approval-{who}");
    manager.truncate(128);
    manager
}

/// Records an approval by the authenticated user; returns who approved.
pub async fn approve(
    client: &Client,
    namespace: &str,
    name: &str,
    comment: Option<&str>,
) -> Result<String> {
    let who = whoami(client).await?;
    let approval = Approval {
        approver: who.clone(),
        at: Time(jiff::Timestamp::now()),
        comment: comment.map(str::to_owned),
    };
    write(
        client,
        namespace,
        name,
        &who,
        json!({"approvals": [approval]}),
    )
    .await?;
    Ok(who)
}

/// Records a rejection by the authenticated user; returns who rejected.
pub async fn reject(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: Option<&str>,
) -> Result<String> {
    let who = whoami(client).await?;
    let rejection = Rejection {
        rejector: who.clone(),
        at: Time(jiff::Timestamp::now()),
        reason: reason.map(str::to_owned),
    };
    write(
        client,
        namespace,
        name,
        &who,
        json!({"rejections": [rejection]}),
    )
    .await?;
    Ok(who)
}

async fn write(
    client: &Client,
    namespace: &str,
    name: &str,
    who: &str,
    status: serde_json::Value,
) -> Result<()> {
    let api: Api<Proposal> = Api::namespaced(client.clone(), namespace);
    let body = json!({"apiVersion": "kgents.io/v1", "kind": "Proposal", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(&field_manager(who)),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
