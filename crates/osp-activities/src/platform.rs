//! The activity implementations: each step reads or writes PostgreSQL through the pool
//! (pooler-safe: `query_typed`, unnamed statements), calls DNS, email or the deployer, and
//! emits its domain event with an idempotency key, so a retry never writes twice.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use osp_core::activities::{
    CompleteBootstrap, ConfigureDns, CreateOrganization, DeactivateOrganization, DeployerRun,
    DnsRecord, FailBootstrap, FinishDeployment, InviteUser, ManifestWritten, RemoveDnsRecord,
    RevokeInvitation, RunDeployer, SendInvitationEmail, defs,
};
use osp_core::events;
use osp_core::manifest::{ManifestWorkflow, WorkerManifest};
use osp_core::payloads::{DeploymentStatus, Service, ServiceData, WorkerDeploymentRequest};
use osp_core::validate::ServiceSchema;
use osp_core::workflows::service_task_queue;
use serde_json::{Map, Value, json};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::deployer::{Deployer, DeployerArgs, DeployerError};
use crate::dns::{DnsError, DnsProvider};
use crate::email::{EmailError, InvitationEmail, Mailer};
use crate::errors::{Failure, Retry, into_activity, types};
use crate::events::{self as event_store, NewEvent, Shape};
use crate::queries::STATEMENT_BOUNDS;

/// Every OSP activity, over one database pool and the configured providers.
#[derive(Debug)]
pub struct PlatformActivities {
    pool: Pool,
    dns: Arc<dyn DnsProvider>,
    mailer: Arc<dyn Mailer>,
    deployer: Deployer,
}

impl From<DnsError> for Failure {
    fn from(error: DnsError) -> Self {
        let retry = if error.retryable {
            Retry::Yes
        } else {
            Retry::No
        };
        Failure::new(types::DNS_FAILED, retry, error.message)
    }
}

impl From<EmailError> for Failure {
    fn from(error: EmailError) -> Self {
        let retry = if error.retryable {
            Retry::Yes
        } else {
            Retry::No
        };
        Failure::new(types::EMAIL_FAILED, retry, error.message)
    }
}

impl From<DeployerError> for Failure {
    fn from(error: DeployerError) -> Self {
        match error {
            DeployerError::Failed { .. } => {
                Failure::new(types::DEPLOYER_FAILED, Retry::Yes, error.to_string())
            }
            _ => Failure::new(types::DEPLOYER_UNUSABLE, Retry::No, error.to_string()),
        }
    }
}

/// Identifies one step of one workflow execution: a retry of the step has the same key, a
/// new run of the workflow a different one.
fn idempotency_key(ctx: &ActivityContext, event_type: &str, discriminator: Option<Uuid>) -> String {
    let info = ctx.info();
    let execution = match (&info.workflow_id, &info.workflow_run_id) {
        (Some(workflow), Some(run)) => format!("{workflow}/{run}"),
        _ => format!("activity/{}", info.activity_id),
    };
    match discriminator {
        Some(id) => format!("{execution}/{event_type}/{id}"),
        None => format!("{execution}/{event_type}"),
    }
}

/// How often a call that can take long (HTTP, SMTP, the deployer) heartbeats.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Runs `work`, heartbeating while it runs, so the server hears from an activity that waits
/// on a slow provider and can deliver a cancellation to it. The workflows do not set a
/// heartbeat timeout yet; until they do, a dead worker is still noticed at start-to-close.
async fn heartbeating<F: Future>(ctx: &ActivityContext, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticker.tick() => {
                // `()` always converts; a lost heartbeat only means the server hears less.
                let _ = ctx.record_heartbeat(()).await;
            }
        }
    }
}

/// Ensures the DNS record, then records it with `record`. The workflow compensates only
/// the steps that returned, so when recording fails after the record exists, the record is
/// removed here before the failure is returned; otherwise a failed emit would leave a live
/// DNS name that nothing undoes. A retry recreates it (`ensure_record` is idempotent).
async fn ensure_then_record<'a, F, Fut, T>(
    dns: &'a dyn DnsProvider,
    subdomain: &'a str,
    record: F,
) -> Result<DnsRecord, Failure>
where
    F: FnOnce(&DnsRecord) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let created = dns.ensure_record(subdomain).await.map_err(Failure::from)?;
    let failure = match record(&created).await {
        Ok(_) => return Ok(created),
        Err(failure) => failure,
    };
    match dns.remove_record(&created).await {
        Ok(()) => Err(failure),
        Err(error) => Err(Failure {
            message: format!(
                "{}; removing {} afterwards failed too, so it may be left: {}",
                failure.message, created.fqdn, error.message
            ),
            ..failure
        }),
    }
}

impl PlatformActivities {
    /// Runs one statement (unnamed, so pooler-safe) in a transaction of its own under
    /// [`STATEMENT_BOUNDS`].
    async fn bounded(
        &self,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, Failure> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction.batch_execute(STATEMENT_BOUNDS).await?;
        let rows = transaction.query_typed(sql, params).await?;
        transaction.commit().await?;
        Ok(rows)
    }

    pub fn new(
        pool: Pool,
        dns: Arc<dyn DnsProvider>,
        mailer: Arc<dyn Mailer>,
        deployer: Deployer,
    ) -> Self {
        Self {
            pool,
            dns,
            mailer,
            deployer,
        }
    }

    /// Appends an event to an organization's stream, at most once per step.
    async fn emit(
        &self,
        ctx: &ActivityContext,
        organization_id: Uuid,
        event_type: &str,
        data: Value,
        discriminator: Option<Uuid>,
    ) -> Result<Uuid, Failure> {
        // The aggregate shape, as the seed's activities called it.
        let event = NewEvent::new(
            events::ORGANIZATION_STREAM,
            organization_id,
            event_type,
            data,
        )
        .idempotency_key(idempotency_key(ctx, event_type, discriminator))
        .from_activity(ctx)
        .metadata_entry("correlation_id", json!(ctx.info().workflow_id))
        .shape(Shape::Aggregate);
        event_store::when_started(|| async {
            let mut client = self.pool.get().await?;
            let transaction = client.transaction().await?;
            transaction.batch_execute(STATEMENT_BOUNDS).await?;
            let id = event_store::append(&*transaction, &event).await?;
            transaction.commit().await?;
            Ok(id)
        })
        .await
    }

    /// Whether this step already emitted its event (the email step checks before sending).
    async fn already_emitted(
        &self,
        ctx: &ActivityContext,
        event_type: &str,
        discriminator: Option<Uuid>,
    ) -> Result<bool, Failure> {
        let key = idempotency_key(ctx, event_type, discriminator);
        let rows = self
            .bounded(
                crate::queries::EVENT_WITH_IDEMPOTENCY_KEY,
                &[(&key, Type::TEXT)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn create_service(
        &self,
        ctx: &ActivityContext,
        input: ServiceData,
    ) -> Result<Service, Failure> {
        input.validate()?;
        let info = ctx.info();
        let metadata = Value::Object(input.metadata.clone().unwrap_or_default());
        // Insert once per workflow execution; a retry (or a concurrent duplicate attempt)
        // finds the row instead.
        let columns =
            "id, name, description, service_schema, metadata, to_jsonb(created_at) #>> '{}'";
        let inserted = self
            .bounded(
                &format!(
                    "insert into public.services
                         (name, description, service_schema, metadata, workflow_id, workflow_run_id)
                     values ($1, $2, $3, $4, $5, $6)
                     on conflict (workflow_id, workflow_run_id) do nothing
                     returning {columns}"
                ),
                &[
                    (&input.name, Type::TEXT),
                    (&input.description, Type::TEXT),
                    (&input.service_schema, Type::TEXT),
                    (&metadata, Type::JSONB),
                    (&info.workflow_id, Type::TEXT),
                    (&info.workflow_run_id, Type::TEXT),
                ],
            )
            .await?;
        let rows = if inserted.is_empty() {
            self.bounded(
                &format!(
                    "select {columns} from public.services
                         where workflow_id = $1 and workflow_run_id = $2"
                ),
                &[
                    (&info.workflow_id, Type::TEXT),
                    (&info.workflow_run_id, Type::TEXT),
                ],
            )
            .await?
        } else {
            inserted
        };
        let row = rows.first().ok_or_else(|| {
            Failure::new(
                types::PRECONDITION_FAILED,
                Retry::Yes,
                "services row neither inserted nor found",
            )
        })?;
        let metadata: Value = row.get(4);
        Ok(Service {
            id: row.get(0),
            name: row.get(1),
            description: row.get(2),
            service_schema: row.get(3),
            metadata: match metadata {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            created_at: row.get(5),
        })
    }

    async fn write_manifest(
        &self,
        ctx: &ActivityContext,
        request: WorkerDeploymentRequest,
    ) -> Result<ManifestWritten, Failure> {
        request.validate()?;
        let schema = ServiceSchema::parse(&request.service_schema).map_err(|message| {
            Failure::new(
                types::INVALID_INPUT,
                Retry::No,
                format!("service_schema: {message}"),
            )
        })?;
        let task_queue = request
            .task_queue
            .clone()
            .unwrap_or_else(|| service_task_queue(&schema));
        let manifest = WorkerManifest {
            service_schema: schema.clone(),
            task_queue: task_queue.clone(),
            workflows: request
                .workflows
                .iter()
                .map(|workflow| ManifestWorkflow {
                    name: workflow.name.clone(),
                    task_queue: task_queue.clone(),
                    activities: workflow.activities.clone(),
                })
                .collect(),
        };
        let dir = &self.deployer.manifest_dir;
        let path = dir.join(format!("{schema}.json"));
        let io = |what: &str, error: std::io::Error| {
            Failure::new(
                types::DEPLOYER_FAILED,
                Retry::Yes,
                format!("writing the manifest {}: {what}: {error}", path.display()),
            )
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|error| io("creating its directory", error))?;
        // Write then rename, so a reader never sees half a manifest.
        let temporary = dir.join(format!(".{schema}.json.{}", Uuid::new_v4()));
        tokio::fs::write(&temporary, manifest.to_json_pretty())
            .await
            .map_err(|error| io("writing", error))?;
        tokio::fs::rename(&temporary, &path)
            .await
            .map_err(|error| io("renaming into place", error))?;
        let manifest_path = path.display().to_string();

        let info = ctx.info();
        let key = format!(
            "{}/{}",
            info.workflow_id.as_deref().unwrap_or("-"),
            info.workflow_run_id.as_deref().unwrap_or(&info.activity_id)
        );
        let row = self
            .bounded(
                "insert into osp_metadata.worker_registry
                     (service_schema, manifest_path, deployment_status, task_queue, deployment_key, logs)
                 values ($1, $2, 'pending', $3, $4, 'manifest written')
                 on conflict (deployment_key) where deployment_key is not null
                 do update set updated_at = now()
                 returning id",
                &[
                    (&schema.as_str(), Type::TEXT),
                    (&manifest_path, Type::TEXT),
                    (&task_queue, Type::TEXT),
                    (&key, Type::TEXT),
                ],
            )
            .await?;
        Ok(ManifestWritten {
            registry_id: row.first().map(|row| row.get(0)).unwrap_or_default(),
            manifest_path,
            task_queue,
        })
    }

    async fn registry_log(
        &self,
        registry_id: Uuid,
        status: &str,
        attempt: Option<u32>,
        line: &str,
    ) -> Result<(), Failure> {
        let retry_count =
            attempt.map(|attempt| i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        self.bounded(
            "update osp_metadata.worker_registry
                 set deployment_status = $2,
                     retry_count = coalesce($3, retry_count),
                     logs = right(coalesce(logs || E'\\n', '') || $4, 65536),
                     updated_at = now()
                 where id = $1",
            &[
                (&registry_id, Type::UUID),
                (&status, Type::TEXT),
                (&retry_count, Type::INT4),
                (&line, Type::TEXT),
            ],
        )
        .await?;
        Ok(())
    }

    async fn deploy(
        &self,
        ctx: &ActivityContext,
        input: RunDeployer,
    ) -> Result<DeployerRun, Failure> {
        let schema = ServiceSchema::parse(&input.service_schema).map_err(|message| {
            Failure::new(
                types::INVALID_INPUT,
                Retry::No,
                format!("service_schema: {message}"),
            )
        })?;
        let attempt = ctx.info().attempt;
        self.registry_log(
            input.registry_id,
            DeploymentStatus::Deploying.as_str(),
            Some(attempt),
            &format!("attempt {attempt} started"),
        )
        .await?;
        let args = DeployerArgs {
            service_schema: &schema,
            manifest_path: &input.manifest_path,
            task_queue: &input.task_queue,
            registry_id: input.registry_id,
        };
        let result = heartbeating(ctx, self.deployer.run(&args)).await;
        match result {
            Ok(output) => {
                self.registry_log(
                    input.registry_id,
                    DeploymentStatus::Deploying.as_str(),
                    Some(attempt),
                    &format!("attempt {attempt} succeeded:\n{output}"),
                )
                .await?;
                Ok(DeployerRun { attempt, output })
            }
            Err(error) => {
                self.registry_log(
                    input.registry_id,
                    DeploymentStatus::Deploying.as_str(),
                    Some(attempt),
                    &format!("attempt {attempt} failed: {error}"),
                )
                .await?;
                Err(error.into())
            }
        }
    }

    async fn finish(&self, input: FinishDeployment) -> Result<u32, Failure> {
        let line = match &input.error {
            Some(error) => format!("deployment {}: {error}", input.status.as_str()),
            None => format!("deployment {}", input.status.as_str()),
        };
        let rows = self
            .bounded(
                "update osp_metadata.worker_registry
                 set deployment_status = $2,
                     deployed_at = case when $2 = 'deployed' then now() else deployed_at end,
                     logs = right(coalesce(logs || E'\\n', '') || $3, 65536),
                     updated_at = now()
                 where id = $1
                 returning retry_count + 1",
                &[
                    (&input.registry_id, Type::UUID),
                    (&input.status.as_str(), Type::TEXT),
                    (&line, Type::TEXT),
                ],
            )
            .await?;
        let attempts: i32 = rows.first().map(|row| row.get(0)).ok_or_else(|| {
            Failure::new(
                types::PRECONDITION_FAILED,
                Retry::No,
                format!("no worker_registry row {}", input.registry_id),
            )
        })?;
        Ok(u32::try_from(attempts).unwrap_or_default())
    }
}

#[activities]
impl PlatformActivities {
    #[activity(definition = defs::CreateEntity)]
    pub async fn create_entity(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ServiceData,
    ) -> Result<Service, ActivityError> {
        into_activity(self.create_service(&ctx, input).await)
    }

    #[activity(definition = defs::CreateOrganization)]
    pub async fn create_organization(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: CreateOrganization,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                let data = json!({
                    "organization_id": input.organization_id, "name": input.name,
                    "subdomain": input.subdomain, "plan": input.plan,
                });
                self.emit(
                    &ctx,
                    input.organization_id,
                    events::ORGANIZATION_CREATED,
                    data,
                    None,
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::ConfigureDns)]
    pub async fn configure_dns(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ConfigureDns,
    ) -> Result<DnsRecord, ActivityError> {
        into_activity(
            async move {
                heartbeating(&ctx, ensure_then_record(self.dns.as_ref(), &input.subdomain, |record| {
                    let data = json!({
                        "dns_record": record.fqdn, "record_id": record.record_id, "provider": record.provider,
                    });
                    self.emit(&ctx, input.organization_id, events::ORGANIZATION_DNS_CONFIGURED, data, None)
                }))
                .await
            }
            .await,
        )
    }

    #[activity(definition = defs::InviteUser)]
    pub async fn invite_user(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: InviteUser,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                let data = json!({
                    "invitation_id": input.invitation_id, "email": input.email, "name": input.name,
                    "role": "admin",
                });
                self.emit(
                    &ctx,
                    input.organization_id,
                    events::USER_INVITED,
                    data,
                    Some(input.invitation_id),
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::SendInvitationEmail)]
    pub async fn send_invitation_email(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: SendInvitationEmail,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                let event = events::INVITATION_EMAIL_SENT;
                // A retry after the email went out but before the event was written would send it
                // twice; checking first narrows that window to the crash itself.
                if self
                    .already_emitted(&ctx, event, Some(input.invitation_id))
                    .await?
                {
                    return Ok(());
                }
                let invitation = InvitationEmail {
                    to_email: input.email.clone(),
                    to_name: input.name.clone(),
                    organization_name: input.organization_name.clone(),
                    dns_record: input.dns_record.clone(),
                    invitation_id: input.invitation_id,
                };
                heartbeating(&ctx, self.mailer.send_invitation(&invitation))
                    .await
                    .map_err(Failure::from)?;
                let data = json!({"invitation_id": input.invitation_id, "email": input.email});
                self.emit(
                    &ctx,
                    input.organization_id,
                    event,
                    data,
                    Some(input.invitation_id),
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::CompleteBootstrap)]
    pub async fn complete_bootstrap(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: CompleteBootstrap,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                let data =
                    json!({"dns_record": input.dns_record, "invitations": input.invitations});
                self.emit(
                    &ctx,
                    input.organization_id,
                    events::ORGANIZATION_BOOTSTRAP_COMPLETED,
                    data,
                    None,
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::RemoveDnsRecord)]
    pub async fn remove_dns_record(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RemoveDnsRecord,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                heartbeating(&ctx, self.dns.remove_record(&input.record))
                    .await
                    .map_err(Failure::from)?;
                let data =
                    json!({"dns_record": input.record.fqdn, "record_id": input.record.record_id});
                self.emit(
                    &ctx,
                    input.organization_id,
                    events::ORGANIZATION_DNS_REMOVED,
                    data,
                    None,
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::RevokeInvitation)]
    pub async fn revoke_invitation(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RevokeInvitation,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                let data = json!({"invitation_id": input.invitation_id, "reason": input.reason});
                self.emit(
                    &ctx,
                    input.organization_id,
                    events::INVITATION_REVOKED,
                    data,
                    Some(input.invitation_id),
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::DeactivateOrganization)]
    pub async fn deactivate_organization(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: DeactivateOrganization,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                let data = json!({"reason": input.reason});
                self.emit(
                    &ctx,
                    input.organization_id,
                    events::ORGANIZATION_DEACTIVATED,
                    data,
                    None,
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::FailBootstrap)]
    pub async fn fail_bootstrap(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: FailBootstrap,
    ) -> Result<(), ActivityError> {
        into_activity(
            async move {
                let data = json!({"reason": input.reason, "failed_step": input.failed_step});
                self.emit(
                    &ctx,
                    input.organization_id,
                    events::ORGANIZATION_BOOTSTRAP_FAILED,
                    data,
                    None,
                )
                .await?;
                Ok(())
            }
            .await,
        )
    }

    #[activity(definition = defs::WriteWorkerManifest)]
    pub async fn write_worker_manifest(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: WorkerDeploymentRequest,
    ) -> Result<ManifestWritten, ActivityError> {
        into_activity(self.write_manifest(&ctx, input).await)
    }

    #[activity(definition = defs::RunDeployer)]
    pub async fn run_deployer(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RunDeployer,
    ) -> Result<DeployerRun, ActivityError> {
        into_activity(self.deploy(&ctx, input).await)
    }

    #[activity(definition = defs::FinishDeployment)]
    pub async fn finish_deployment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: FinishDeployment,
    ) -> Result<u32, ActivityError> {
        into_activity(self.finish(input).await)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;

    /// Records what was asked of it; removal can be told to fail.
    #[derive(Debug, Default)]
    struct FakeDns {
        calls: Mutex<Vec<String>>,
        removal_fails: bool,
    }

    impl DnsProvider for FakeDns {
        fn ensure_record<'a>(
            &'a self,
            subdomain: &'a str,
        ) -> BoxFuture<'a, Result<DnsRecord, DnsError>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("ensure {subdomain}"));
            Box::pin(async move {
                Ok(DnsRecord {
                    fqdn: format!("{subdomain}.example.com"),
                    record_id: "rec-1".into(),
                    provider: "fake".into(),
                })
            })
        }

        fn remove_record<'a>(
            &'a self,
            record: &'a DnsRecord,
        ) -> BoxFuture<'a, Result<(), DnsError>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("remove {}", record.record_id));
            let fails = self.removal_fails;
            Box::pin(async move {
                if fails {
                    Err(DnsError {
                        retryable: true,
                        message: "dns api: 503".into(),
                    })
                } else {
                    Ok(())
                }
            })
        }
    }

    fn emit_failure() -> Failure {
        Failure::new(
            types::DATABASE_UNAVAILABLE,
            Retry::Yes,
            "database: connection refused",
        )
    }

    #[tokio::test]
    async fn point_12_a_dns_record_whose_event_cannot_be_emitted_is_removed() {
        let dns = FakeDns::default();
        let failure = ensure_then_record(&dns, "acme", |_| async { Err::<(), _>(emit_failure()) })
            .await
            .unwrap_err();
        assert_eq!(*dns.calls.lock().unwrap(), ["ensure acme", "remove rec-1"]);
        // The step's own failure is what the workflow sees.
        assert_eq!(failure.type_name, types::DATABASE_UNAVAILABLE);
        assert!(
            failure.message.contains("connection refused"),
            "{}",
            failure.message
        );

        // A removal that fails too is named, so the operator knows a record may be left.
        let dns = FakeDns {
            removal_fails: true,
            ..FakeDns::default()
        };
        let failure = ensure_then_record(&dns, "acme", |_| async { Err::<(), _>(emit_failure()) })
            .await
            .unwrap_err();
        assert!(
            failure.message.contains("acme.example.com") && failure.message.contains("503"),
            "{}",
            failure.message
        );

        // Recorded: nothing is removed.
        let dns = FakeDns::default();
        let record = ensure_then_record(&dns, "acme", |_| async { Ok::<_, Failure>(()) })
            .await
            .unwrap();
        assert_eq!(record.record_id, "rec-1");
        assert_eq!(*dns.calls.lock().unwrap(), ["ensure acme"]);
    }
}
