//! A saga's failure path with the real activities and one step replaced: the invitation
//! email bounces for good, so the bootstrap compensates and fails; a spy records the real
//! invitation step. The same test is shown in docs/testing.md.

use osp_core::activities::{InviteUser, SendInvitationEmail, defs};
use osp_core::events;
use osp_core::payloads::{AdminUser, OrganizationBootstrapInput};
use osp_testkit::{Calls, test_env};
use osp_workflows::OrganizationBootstrapWorkflow;
use uuid::Uuid;

#[tokio::test]
async fn a_bounced_invitation_is_compensated() -> anyhow::Result<()> {
    let env = test_env().await?;
    let organization_id = Uuid::new_v4();
    let input = OrganizationBootstrapInput {
        organization_id,
        name: "Acme".to_owned(),
        subdomain: format!("acme-{}", organization_id.simple()),
        admin_users: vec![AdminUser {
            email: "ada@acme.io".to_owned(),
            name: None,
        }],
        plan: None,
    };
    let invited = Calls::<InviteUser>::new();
    let failure = env
        .worker()
        .workflow::<OrganizationBootstrapWorkflow>()
        .activities(env.platform().build()?)
        .replace(
            defs::SendInvitationEmail,
            |email: SendInvitationEmail| async move {
                Err(osp_testkit::non_retryable(
                    "EmailFailed",
                    format!("{} bounced", email.email),
                ))
            },
        )
        .spy(defs::InviteUser, &invited)
        .run_until(async {
            let workflow = env.start(OrganizationBootstrapWorkflow::run, input).await?;
            workflow.failure().await
        })
        .await??;
    assert_eq!(failure.type_name.as_deref(), Some("BootstrapFailed"));
    assert!(failure.message.contains("ada@acme.io bounced"), "{failure}");
    assert_eq!(invited.count(), 1);
    env.wait_for_chain(
        organization_id,
        &[
            events::ORGANIZATION_CREATED,
            events::ORGANIZATION_DNS_CONFIGURED,
            events::USER_INVITED,
            events::INVITATION_REVOKED,
            events::ORGANIZATION_DNS_REMOVED,
            events::ORGANIZATION_DEACTIVATED,
            events::ORGANIZATION_BOOTSTRAP_FAILED,
        ],
    )
    .await?;
    Ok(())
}
