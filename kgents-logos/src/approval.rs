//! Human approvals and rejections, recorded in a proposal's status through the status
//! subresource under the identity the API server authenticated (asked with a
//! SelfSubjectReview, never typed by the user). Each person writes with a field manager of
//! their own, so approvals from several people (and the controller's fields) coexist under
//! server-side apply. `kgents-operator` re-exports these.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kgents_crds::Proposal;
use kgents_crds::common::Time;
use kgents_crds::proposal::{Approval, Rejection};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::error::{Error, Result};

/// Who the API server says `client` is (a SelfSubjectReview): the username its writes carry.
pub async fn whoami(client: &Client) -> Result<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| {
            Error::from_kube("asking the API server who you are (SelfSubjectReview)", e)
        })?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::Api {
            what: "asking the API server who you are (SelfSubjectReview)".into(),
            code: 200,
            reason: "NoUsername".into(),
            message: "the answer carries no status.userInfo.username".into(),
        })
}

/// The field manager of `who`'s approvals (at most 128 characters, as the API server requires).
pub fn field_manager(who: &str) -> String {
    let mut manager = format!("kgents-approval-{who}");
    let mut cut = manager.len().min(128);
    while !manager.is_char_boundary(cut) {
        cut -= 1;
    }
    manager.truncate(cut);
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
    let what = format!("recording your decision on proposal {namespace}/{name}");
    let body = json!({"apiVersion": "kgents.io/v1", "kind": "Proposal", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(&field_manager(who)),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::from_kube(what, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_managers_are_short_enough() {
        assert_eq!(field_manager("alice"), "kgents-approval-alice");
        assert!(field_manager(&"é".repeat(200)).len() <= 128);
    }
}
