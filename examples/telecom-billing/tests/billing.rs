//! The service's workflows on the testkit, with its own schema in the test databases: a
//! billing run writes one invoice and tells it on the account's stream; a payment settles
//! the account once even when handled twice; and `invoice.requested`, routed by the service's
//! one-row route and started by the real bridge, runs `processBilling` to the same events.

mod common;

use osp_activities::events::{self, NewEvent};
use osp_testkit::{TestEnv, test_env_with};
use telecom_billing::payloads::{BillingRequest, PaymentRequest, UsageLine};
use telecom_billing::{BillingActivities, HandlePayment, MIGRATIONS, ProcessBilling};
use uuid::Uuid;

fn request(account_id: Uuid) -> BillingRequest {
    BillingRequest {
        account_id,
        period: "2026-11".to_owned(),
        usage: vec![
            UsageLine {
                item: "voice_minutes".to_owned(),
                quantity: 120,
                unit_price_cents: 5,
            },
            UsageLine {
                item: "data_gb".to_owned(),
                quantity: 3,
                unit_price_cents: 250,
            },
        ],
        email: "billing@acme.test".to_owned(),
    }
}

async fn balance(env: &TestEnv, account_id: Uuid) -> anyhow::Result<i64> {
    Ok(env
        .db()
        .await?
        .query_one(
            "select balance_cents from telecom_billing.accounts where account_id = $1",
            &[&account_id],
        )
        .await?
        .get(0))
}

#[tokio::test]
async fn billing_records_one_invoice_and_tells_it_on_the_accounts_stream() -> anyhow::Result<()> {
    let env = test_env_with(MIGRATIONS).await?;
    let account = Uuid::new_v4();
    let outcome = env
        .worker()
        .workflow::<ProcessBilling>()
        .activities(BillingActivities::new(env.pool()?))
        .execute(ProcessBilling::run, request(account))
        .await?;
    assert_eq!(outcome.invoice.total_cents, 120 * 5 + 3 * 250);
    assert_eq!(outcome.sent_to, "billing@acme.test");
    env.wait_for_chain(account, &["invoice.calculated", "invoice.sent"])
        .await?;
    let status: String = env
        .db()
        .await?
        .query_one(
            "select status from telecom_billing.invoices where invoice_id = $1",
            &[&outcome.invoice.invoice_id],
        )
        .await?
        .get(0);
    assert_eq!(status, "sent");
    assert_eq!(balance(&env, account).await?, 1350);
    Ok(())
}

#[tokio::test]
async fn a_payment_handled_twice_settles_the_account_once() -> anyhow::Result<()> {
    let env = test_env_with(MIGRATIONS).await?;
    let account = Uuid::new_v4();
    let worker = env
        .worker()
        .workflow::<ProcessBilling>()
        .workflow::<HandlePayment>()
        .activities(BillingActivities::new(env.pool()?));
    let balances = worker
        .run_until(async {
            let billed = env.execute(ProcessBilling::run, request(account)).await?;
            let payment = PaymentRequest {
                account_id: account,
                invoice_id: billed.invoice.invoice_id,
                payment_ref: "pay-1".to_owned(),
                amount_cents: billed.invoice.total_cents,
            };
            let first = env.execute(HandlePayment::run, payment.clone()).await?;
            let again = env.execute(HandlePayment::run, payment).await?;
            Ok::<_, osp_testkit::TestError>((first.balance_cents, again.balance_cents))
        })
        .await??;
    assert_eq!(balances, (0, 0));
    env.wait_for_chain(
        account,
        &[
            "invoice.calculated",
            "invoice.sent",
            "payment.processed",
            "account.updated",
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn bad_usage_fails_the_workflow_without_retrying_naming_the_fields() -> anyhow::Result<()> {
    let env = test_env_with(MIGRATIONS).await?;
    let mut bad = request(Uuid::new_v4());
    bad.usage.clear();
    let error = env
        .worker()
        .workflow::<ProcessBilling>()
        .activities(BillingActivities::new(env.pool()?))
        .execute(ProcessBilling::run, bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("usage must list at least one line"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn invoice_requested_runs_process_billing_through_the_bridge() -> anyhow::Result<()> {
    let env = test_env_with(MIGRATIONS).await?;
    let db = env.db().await?;
    // The route the migration added polls the service's queue on the shared dev server; this
    // test's worker polls its own queue, so the route is pointed there for this database.
    db.execute(
        "update osp_metadata.workflow_routes set task_queue = $1 where event_type = 'invoice.requested'",
        &[&env.task_queue()],
    )
    .await?;
    let account = Uuid::new_v4();
    let bridge = env.bridge(&[])?;
    let outcome = env
        .worker()
        .workflow::<ProcessBilling>()
        .activities(BillingActivities::new(env.pool()?))
        .run_until(async {
            // The client leaves the account id to the route: it is the event's stream.
            let mut data = serde_json::to_value(request(account))?;
            data.as_object_mut().map(|data| data.remove("account_id"));
            events::append(
                &db,
                &NewEvent::new("account", account, "invoice.requested", data),
            )
            .await?;
            let workflow_id = common::started_workflow(&db, account, "invoice.requested").await?;
            anyhow::ensure!(workflow_id == format!("billing-{account}-2026-11"));
            anyhow::Ok(
                env.workflow::<ProcessBilling>(&workflow_id)
                    .result()
                    .await?,
            )
        })
        .await??;
    bridge.stop().await?;
    assert_eq!(outcome.invoice.total_cents, 1350);
    let types: Vec<String> = env
        .stream_events(account)
        .await?
        .into_iter()
        .map(|event| event.event_type)
        .filter(|event_type| !event_type.starts_with("workflow.queue."))
        .collect();
    assert_eq!(
        types,
        ["invoice.requested", "invoice.calculated", "invoice.sent"]
    );
    Ok(())
}
