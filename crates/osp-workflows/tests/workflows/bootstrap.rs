//! `organizationBootstrapWorkflow` end to end on the dev server and Postgres: the whole
//! chain of domain events with the real activities (directly and through PgBouncer), the
//! `status` query while it runs, compensation when the mail server refuses, and bad input
//! refused before anything is written.

use std::sync::Arc;

use crate::common::{Database, RecordingDns, count, record, refusing_smtp_server};
use osp_activities::email::{SmtpMailer, SmtpSecurity, SmtpSettings};
use osp_core::activities::{SendInvitationEmail, defs};
use osp_core::events;
use osp_core::payloads::{AdminUser, BootstrapStep, OrganizationBootstrapInput};
use osp_core::workflows::organization_bootstrap_workflow_id;
use osp_testkit::{Calls, TestError, test_env};
use osp_workflows::{BOOTSTRAP_FAILED, INVALID_INPUT, OrganizationBootstrapWorkflow};
use serde_json::Value;
use tokio::sync::Semaphore;
use uuid::Uuid;

fn input(admins: &[&str]) -> OrganizationBootstrapInput {
    let organization_id = Uuid::new_v4();
    OrganizationBootstrapInput {
        organization_id,
        name: "Acme".to_owned(),
        subdomain: format!("acme-{}", &organization_id.simple().to_string()[..8]),
        admin_users: admins
            .iter()
            .map(|email| AdminUser {
                email: (*email).to_owned(),
                name: Some("Admin".to_owned()),
            })
            .collect(),
        plan: Some("pro".to_owned()),
    }
}

async fn bootstraps(database: Database) {
    let env = test_env().await.unwrap();
    let request = input(&["ada@acme.io", "bob@acme.io"]);
    let organization = request.organization_id;
    let emails = Calls::<SendInvitationEmail>::new();
    let (result, status) = env
        .worker()
        .workflow::<OrganizationBootstrapWorkflow>()
        .activities(database.platform(&env).build().unwrap())
        .spy(defs::SendInvitationEmail, &emails)
        .run_until(async {
            let workflow = env
                .start_with_id(
                    OrganizationBootstrapWorkflow::run,
                    request.clone(),
                    &organization_bootstrap_workflow_id(organization),
                )
                .await?;
            let result = workflow.result().await?;
            let status = workflow
                .query(OrganizationBootstrapWorkflow::status, ())
                .await?;
            record(&workflow, "bootstrap").await;
            Ok::<_, TestError>((result, status))
        })
        .await
        .unwrap()
        .unwrap();

    assert_eq!(status, BootstrapStep::Completed);
    assert_eq!(result.organization_id, organization);
    assert_eq!(result.dns_record, format!("{}.osp.test", request.subdomain));
    let invited: Vec<&str> = result
        .invitations
        .iter()
        .map(|i| i.email.as_str())
        .collect();
    assert_eq!(invited, ["ada@acme.io", "bob@acme.io"]);
    let emailed: Vec<String> = emails.inputs().into_iter().map(|e| e.email).collect();
    assert_eq!(emailed, ["ada@acme.io", "bob@acme.io"]);

    let chain = env
        .wait_for_chain(
            organization,
            &[
                events::ORGANIZATION_CREATED,
                events::ORGANIZATION_DNS_CONFIGURED,
                events::USER_INVITED,
                events::USER_INVITED,
                events::INVITATION_EMAIL_SENT,
                events::INVITATION_EMAIL_SENT,
                events::ORGANIZATION_BOOTSTRAP_COMPLETED,
            ],
        )
        .await
        .unwrap();
    // One event per step, each with the idempotency key of its step.
    let keys: std::collections::BTreeSet<&str> = chain
        .iter()
        .filter_map(|event| event.event_metadata["idempotency_key"].as_str())
        .collect();
    assert_eq!(keys.len(), chain.len());

    let db = env.db().await.unwrap();
    let row = db
        .query_one(
            "select status, bootstrap_status, subdomain_metadata is not null
             from public.organizations_projection where id = $1",
            &[&organization],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "active");
    assert_eq!(row.get::<_, String>(1), "completed");
    assert!(row.get::<_, bool>(2));
    assert_eq!(
        count(
            &env,
            "select count(*) from public.invitations_projection where status = 'sent'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn bootstraps_an_organization_directly() {
    bootstraps(Database::Direct).await;
}

#[tokio::test]
async fn bootstraps_an_organization_through_pgbouncer() {
    bootstraps(Database::PgBouncer).await;
}

#[tokio::test]
async fn the_status_query_reports_the_step_it_is_at() {
    let env = test_env().await.unwrap();
    let request = input(&["ada@acme.io"]);
    // The email step waits for the test's go-ahead, so the test sees the workflow there.
    let gate = Arc::new(Semaphore::new(0));
    let release = gate.clone();
    let (seen, finished) = env
        .worker()
        .workflow::<OrganizationBootstrapWorkflow>()
        .activities(env.platform().build().unwrap())
        .replace(
            defs::SendInvitationEmail,
            move |_email: SendInvitationEmail| {
                let gate = gate.clone();
                async move {
                    let _permit = gate.acquire().await;
                    Ok(())
                }
            },
        )
        .run_until(async {
            let workflow = env
                .start(OrganizationBootstrapWorkflow::run, request.clone())
                .await?;
            let seen = workflow
                .wait_for_query(OrganizationBootstrapWorkflow::status, (), |step| {
                    *step == BootstrapStep::SendingInvitations
                })
                .await?;
            release.add_permits(1);
            workflow.result().await?;
            let finished = workflow
                .query(OrganizationBootstrapWorkflow::status, ())
                .await?;
            Ok::<_, TestError>((seen, finished))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, BootstrapStep::SendingInvitations);
    assert_eq!(finished, BootstrapStep::Completed);
}

#[tokio::test]
async fn a_refusing_mail_server_makes_it_compensate() {
    let env = test_env().await.unwrap();
    let port = refusing_smtp_server().await;
    let mailer = SmtpMailer::new(&SmtpSettings {
        host: "127.0.0.1".to_owned(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "OSP <no-reply@osp.test>".to_owned(),
    })
    .unwrap();
    let dns = RecordingDns::default();
    let request = input(&["ada@acme.io"]);
    let organization = request.organization_id;
    let failure = env
        .worker()
        .workflow::<OrganizationBootstrapWorkflow>()
        .activities(
            env.platform()
                .mailer(Arc::new(mailer))
                .dns(Arc::new(dns.clone()))
                .build()
                .unwrap(),
        )
        .run_until(async {
            let workflow = env
                .start_with_id(
                    OrganizationBootstrapWorkflow::run,
                    request.clone(),
                    &organization_bootstrap_workflow_id(organization),
                )
                .await?;
            let failure = workflow.failure().await?;
            record(&workflow, "bootstrap_compensated").await;
            Ok::<_, TestError>(failure)
        })
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        failure.type_name.as_deref(),
        Some(BOOTSTRAP_FAILED),
        "{failure}"
    );
    assert!(
        failure.message.contains("sending_invitations failed"),
        "{failure}"
    );
    assert!(failure.message.contains("554"), "{failure}");

    let chain = env
        .wait_for_chain(
            organization,
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
        .await
        .unwrap();
    let reason = chain
        .last()
        .and_then(|event| event.event_data["reason"].as_str())
        .unwrap_or_default();
    assert!(reason.contains("554"), "{reason}");

    let fqdn = format!("{}.osp.test", request.subdomain);
    assert_eq!(*dns.created.lock().unwrap(), std::slice::from_ref(&fqdn));
    assert_eq!(*dns.removed.lock().unwrap(), [fqdn]);
    let db = env.db().await.unwrap();
    let invitation = db
        .query_one(
            "select status from public.invitations_projection where organization_id = $1",
            &[&organization],
        )
        .await
        .unwrap();
    assert_eq!(invitation.get::<_, String>(0), "revoked");
    let row = db
        .query_one(
            "select status, bootstrap_status, subdomain_metadata
             from public.organizations_projection where id = $1",
            &[&organization],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "deactivated");
    assert_eq!(row.get::<_, String>(1), "failed");
    assert_eq!(row.get::<_, Option<Value>>(2), None);
}

/// Starts the bootstrap with `request` and expects it to fail at once naming `field`,
/// having scheduled no activity and emitted nothing.
async fn refused(request: OrganizationBootstrapInput, field: &str) {
    let env = test_env().await.unwrap();
    let organization = request.organization_id;
    let (failure, history) = env
        .worker()
        .workflow::<OrganizationBootstrapWorkflow>()
        .activities(env.platform().build().unwrap())
        .run_until(async {
            let workflow = env
                .start(OrganizationBootstrapWorkflow::run, request)
                .await?;
            let failure = workflow.failure().await?;
            Ok::<_, TestError>((failure, workflow.history().await?))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failure.type_name.as_deref(),
        Some(INVALID_INPUT),
        "{failure}"
    );
    assert!(failure.non_retryable, "{failure}");
    assert!(failure.message.contains(&format!("{field}: ")), "{failure}");
    assert!(
        history.activities().is_empty(),
        "{:?}",
        history.activities()
    );
    assert!(env.stream_events(organization).await.unwrap().is_empty());
    assert_eq!(
        count(&env, "select count(*) from public.domain_events").await,
        0
    );
}

#[tokio::test]
async fn an_empty_name_is_refused() {
    let mut request = input(&["ada@acme.io"]);
    request.name = String::new();
    refused(request, "name").await;
}

#[tokio::test]
async fn a_201_character_name_is_refused() {
    let mut request = input(&["ada@acme.io"]);
    request.name = "n".repeat(201);
    refused(request, "name").await;
}

#[tokio::test]
async fn an_invalid_subdomain_is_refused() {
    let mut request = input(&["ada@acme.io"]);
    request.subdomain = "Not_A-Label-".to_owned();
    refused(request, "subdomain").await;
}

#[tokio::test]
async fn no_admin_users_is_refused() {
    refused(input(&[]), "admin_users").await;
}

#[tokio::test]
async fn a_malformed_email_is_refused() {
    refused(
        input(&["ada@acme.io", "not an email"]),
        "admin_users[1].email",
    )
    .await;
}
