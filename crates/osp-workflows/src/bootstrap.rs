//! `organizationBootstrapWorkflow`: create the organization, configure its DNS record,
//! invite every admin and email each invitation, then complete. Each step is an activity
//! that emits its domain event; when a step fails for good, the steps already done are
//! undone in reverse order and `organization.bootstrap.failed` carries the reason.

use std::time::Duration;

use osp_core::activities::{
    CompleteBootstrap, ConfigureDns, CreateOrganization, DeactivateOrganization, DnsRecord,
    FailBootstrap, InviteUser, OspActivities, RemoveDnsRecord, RevokeInvitation,
    SendInvitationEmail,
};
use osp_core::payloads::{
    BootstrapStep, InvitationSummary, OrganizationBootstrapInput, OrganizationBootstrapResult,
};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult,
};
use uuid::Uuid;

use crate::failures::{BOOTSTRAP_FAILED, fail, invalid_input, reason};

/// Bootstraps one organization; its id is `org-bootstrap-{organization_id}`.
#[workflow]
#[derive(Debug)]
pub struct OrganizationBootstrapWorkflow {
    step: BootstrapStep,
}

impl Default for OrganizationBootstrapWorkflow {
    fn default() -> Self {
        Self {
            step: BootstrapStep::Started,
        }
    }
}

/// A step that succeeded and would have to be undone.
#[derive(Debug)]
enum Done {
    Organization,
    Dns(DnsRecord),
    Invitation(Uuid),
}

/// A step that failed for good.
struct Failed {
    step: BootstrapStep,
    error: ActivityExecutionError,
}

/// Steps retry transient failures a few times, quickly; a non-retryable failure (a refused
/// email, a rejected DNS name) goes straight to compensation.
fn step_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(30))
                .maximum_attempts(5)
                .build(),
        )
        .build()
}

/// Undoing must not give up early: it retries longer than a step does.
fn compensation_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(10)
                .build(),
        )
        .build()
}

type Ctx = WorkflowContext<OrganizationBootstrapWorkflow>;

#[workflow_methods]
impl OrganizationBootstrapWorkflow {
    #[run(name = "organizationBootstrapWorkflow")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: OrganizationBootstrapInput,
    ) -> WorkflowResult<OrganizationBootstrapResult> {
        input.validate().map_err(invalid_input)?;
        let mut done = Vec::new();
        let failed = match Self::steps(ctx, &input, &mut done).await {
            Ok(result) => return Ok(result),
            Err(failed) => failed,
        };

        let mut reason = format!("{} failed: {}", failed.step.as_str(), reason(&failed.error));
        ctx.state_mut(|state| state.step = BootstrapStep::Compensating);
        let mut undo_failures = Vec::new();
        for step in done.into_iter().rev() {
            if let Err(error) = Self::undo(ctx, &input, step, &reason).await {
                undo_failures.push(reason_of_undo(&error));
            }
        }
        if !undo_failures.is_empty() {
            reason = format!(
                "{reason}; compensation incomplete: {}",
                undo_failures.join("; ")
            );
        }
        ctx.execute_activity(
            OspActivities::fail_bootstrap,
            FailBootstrap {
                organization_id: input.organization_id,
                reason: reason.clone(),
                failed_step: failed.step,
            },
            compensation_options(),
        )
        .await?;
        ctx.state_mut(|state| state.step = BootstrapStep::Failed);
        Err(fail(BOOTSTRAP_FAILED, reason))
    }

    /// The step the bootstrap is at.
    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> BootstrapStep {
        self.step
    }
}

impl OrganizationBootstrapWorkflow {
    async fn steps(
        ctx: &Ctx,
        input: &OrganizationBootstrapInput,
        done: &mut Vec<Done>,
    ) -> Result<OrganizationBootstrapResult, Failed> {
        let at = |step: BootstrapStep| {
            ctx.state_mut(|state| state.step = step);
            move |error| Failed { step, error }
        };
        let organization_id = input.organization_id;

        let failed = at(BootstrapStep::CreatingOrganization);
        ctx.execute_activity(
            OspActivities::create_organization,
            CreateOrganization {
                organization_id,
                name: input.name.clone(),
                subdomain: input.subdomain.clone(),
                plan: input.plan.clone(),
            },
            step_options(),
        )
        .await
        .map_err(failed)?;
        done.push(Done::Organization);

        let failed = at(BootstrapStep::ConfiguringDns);
        let record = ctx
            .execute_activity(
                OspActivities::configure_dns,
                ConfigureDns {
                    organization_id,
                    subdomain: input.subdomain.clone(),
                },
                step_options(),
            )
            .await
            .map_err(failed)?;
        done.push(Done::Dns(record.clone()));

        let failed = at(BootstrapStep::InvitingUsers);
        let mut invitations = Vec::new();
        for user in &input.admin_users {
            // Chosen by the workflow (replay-safe), so a retried step names the same
            // invitation and its idempotency key holds.
            let invitation_id = Uuid::parse_str(&ctx.uuid4()).unwrap_or_else(|_| Uuid::nil());
            ctx.execute_activity(
                OspActivities::invite_user,
                InviteUser {
                    organization_id,
                    invitation_id,
                    email: user.email.clone(),
                    name: user.name.clone(),
                },
                step_options(),
            )
            .await
            .map_err(failed)?;
            done.push(Done::Invitation(invitation_id));
            invitations.push(InvitationSummary {
                invitation_id,
                email: user.email.clone(),
            });
        }

        let failed = at(BootstrapStep::SendingInvitations);
        for (invitation, user) in invitations.iter().zip(&input.admin_users) {
            ctx.execute_activity(
                OspActivities::send_invitation_email,
                SendInvitationEmail {
                    organization_id,
                    invitation_id: invitation.invitation_id,
                    email: user.email.clone(),
                    name: user.name.clone(),
                    organization_name: input.name.clone(),
                    dns_record: record.fqdn.clone(),
                },
                step_options(),
            )
            .await
            .map_err(failed)?;
        }

        let failed = at(BootstrapStep::Completed);
        ctx.execute_activity(
            OspActivities::complete_bootstrap,
            CompleteBootstrap {
                organization_id,
                dns_record: record.fqdn.clone(),
                invitations: invitations.clone(),
            },
            step_options(),
        )
        .await
        .map_err(failed)?;

        Ok(OrganizationBootstrapResult {
            organization_id,
            subdomain: input.subdomain.clone(),
            dns_record: record.fqdn,
            invitations,
        })
    }

    async fn undo(
        ctx: &Ctx,
        input: &OrganizationBootstrapInput,
        step: Done,
        reason: &str,
    ) -> Result<(), ActivityExecutionError> {
        let organization_id = input.organization_id;
        match step {
            Done::Organization => {
                ctx.execute_activity(
                    OspActivities::deactivate_organization,
                    DeactivateOrganization {
                        organization_id,
                        reason: reason.to_owned(),
                    },
                    compensation_options(),
                )
                .await
            }
            Done::Dns(record) => {
                ctx.execute_activity(
                    OspActivities::remove_dns_record,
                    RemoveDnsRecord {
                        organization_id,
                        record,
                    },
                    compensation_options(),
                )
                .await
            }
            Done::Invitation(invitation_id) => {
                ctx.execute_activity(
                    OspActivities::revoke_invitation,
                    RevokeInvitation {
                        organization_id,
                        invitation_id,
                        reason: reason.to_owned(),
                    },
                    compensation_options(),
                )
                .await
            }
        }
    }
}

fn reason_of_undo(error: &ActivityExecutionError) -> String {
    reason(error)
}
