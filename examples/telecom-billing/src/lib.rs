//! Seed 002's "Telecom Billing System" as a service of its own on OSP: two workflows
//! (`processBilling`, `handlePayment`), their four activities over the service's own schema
//! (`telecom_billing`) with every step also told as a domain event on the account's stream,
//! its migration (with the route `invoice.requested` -> `processBilling`), and the worker
//! builder it runs on (`worker`). The reference for docs/embedding.md.

#[expect(
    missing_debug_implementations,
    reason = "macro-generated marker structs"
)]
pub mod activities;
pub mod payloads;
#[expect(
    missing_debug_implementations,
    reason = "macro-generated marker structs"
)]
pub mod workflows;

use osp_activities::Migration;
use osp_config::WorkerConfig;
use osp_worker::WorkerBuilder;

pub use activities::BillingActivities;
pub use workflows::{HandlePayment, ProcessBilling};

/// The service schema of seed 002's example; its queue is `{SERVICE_SCHEMA}-tasks`.
pub const SERVICE_SCHEMA: &str = "telecom_billing_service_789";
/// Where its workers poll.
pub const TASK_QUEUE: &str = "telecom_billing_service_789-tasks";

pub const PROCESS_BILLING: &str = "processBilling";
pub const HANDLE_PAYMENT: &str = "handlePayment";
pub const CALCULATE_CHARGES: &str = "calculateCharges";
pub const SEND_INVOICE: &str = "sendInvoice";
pub const PROCESS_PAYMENT: &str = "processPayment";
pub const UPDATE_ACCOUNT: &str = "updateAccount";

/// The activity names [`BillingActivities`] registers.
pub const ACTIVITIES: &[&str] = &[
    CALCULATE_CHARGES,
    SEND_INVOICE,
    PROCESS_PAYMENT,
    UPDATE_ACCOUNT,
];

/// The service's own migrations, applied after OSP's.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "telecom_billing",
    sql: include_str!("../migrations/0001_telecom_billing.sql"),
}];

/// The seed-shaped manifest the worker is started with (`MANIFEST_PATH`).
pub const SEED_MANIFEST: &str = include_str!("../manifests/telecom_billing_service_789.json");

/// Applies [`MIGRATIONS`] (idempotent: every statement is `if not exists` or `on conflict`).
pub async fn migrate(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    for migration in MIGRATIONS {
        client.batch_execute(migration.sql).await?;
    }
    Ok(())
}

/// The service's worker: its two workflows and four activities, none of OSP's.
pub fn worker(config: WorkerConfig) -> WorkerBuilder {
    WorkerBuilder::service(config)
        .workflow::<ProcessBilling>()
        .workflow::<HandlePayment>()
        .activities(ACTIVITIES, BillingActivities::new)
}
