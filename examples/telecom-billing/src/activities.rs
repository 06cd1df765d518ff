//! The service's activities, over OSP's database pool: each writes the service's own tables
//! and tells what happened as a domain event on the account's stream (`osp_activities::events`)
//! in the same transaction, so a retry writes nothing twice. Each event names its workflow
//! (`from_activity`), so it comes after the bridge's started event on the stream, and each
//! transaction runs under `events::when_started`, which makes it again while that start is
//! being recorded. Failures are classified once, by OSP's `Failure` (bad input is not
//! retried, a lost connection is).

use std::sync::Arc;

use deadpool_postgres::Pool;
use osp_activities::errors::{Failure, Retry, into_activity, types};
use osp_activities::events::{self, NewEvent};
use serde_json::json;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::payloads::{AccountBalance, BillingRequest, Invoice, PaymentRequest};

/// The stream type of the service's events: one stream per account.
pub const ACCOUNT_STREAM: &str = "account";

/// The four activities of seed 002's billing service.
#[derive(Debug, Clone)]
pub struct BillingActivities {
    pool: Pool,
}

impl BillingActivities {
    /// Activities over `pool` (the worker's, from [`osp_worker::WorkerBuilder::activities`]).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn calculate(
        &self,
        ctx: &ActivityContext,
        request: BillingRequest,
    ) -> Result<Invoice, Failure> {
        if request.period.trim().is_empty() || request.usage.is_empty() {
            return Err(Failure::new(
                types::INVALID_INPUT,
                Retry::No,
                "BillingRequest: period must not be empty and usage must list at least one line",
            ));
        }
        let total_cents: i64 = request
            .usage
            .iter()
            .map(|line| i64::from(line.quantity) * i64::from(line.unit_price_cents))
            .sum();
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .query_typed(
                "insert into telecom_billing.accounts (account_id) values ($1)
                 on conflict (account_id) do nothing",
                &[(&request.account_id, Type::UUID)],
            )
            .await?;
        // One invoice per account and period: a retry finds the first attempt's.
        let inserted = transaction
            .query_typed(
                "insert into telecom_billing.invoices (invoice_id, account_id, period, total_cents)
                 values ($1, $2, $3, $4)
                 on conflict (account_id, period) do nothing
                 returning invoice_id",
                &[
                    (&Uuid::new_v4(), Type::UUID),
                    (&request.account_id, Type::UUID),
                    (&request.period, Type::TEXT),
                    (&total_cents, Type::INT8),
                ],
            )
            .await?;
        let row = transaction
            .query_typed(
                "select invoice_id, total_cents from telecom_billing.invoices
                 where account_id = $1 and period = $2",
                &[
                    (&request.account_id, Type::UUID),
                    (&request.period, Type::TEXT),
                ],
            )
            .await?;
        let (invoice_id, total_cents): (Uuid, i64) = row
            .first()
            .map(|row| (row.get(0), row.get(1)))
            .ok_or_else(|| {
                Failure::new(
                    types::DATABASE_ERROR,
                    Retry::Yes,
                    "invoice not found after insert",
                )
            })?;
        if !inserted.is_empty() {
            transaction
                .query_typed(
                    "update telecom_billing.accounts
                     set balance_cents = balance_cents + $2, updated_at = now()
                     where account_id = $1",
                    &[
                        (&request.account_id, Type::UUID),
                        (&total_cents, Type::INT8),
                    ],
                )
                .await?;
        }
        let event = NewEvent::new(
            ACCOUNT_STREAM,
            request.account_id,
            "invoice.calculated",
            json!({"invoice_id": invoice_id, "period": request.period, "total_cents": total_cents}),
        )
        .idempotency_key(format!("invoice.calculated:{invoice_id}"))
        .from_activity(ctx);
        events::append(&*transaction, &event).await?;
        transaction.commit().await?;
        Ok(Invoice {
            invoice_id,
            account_id: request.account_id,
            period: request.period,
            total_cents,
            email: request.email,
        })
    }

    async fn send(&self, ctx: &ActivityContext, invoice: Invoice) -> Result<String, Failure> {
        // The example's "delivery" is the log line and the event; a real service would call
        // its mailer here (OSP's `osp_activities::email::Mailer` is one).
        tracing::info!(invoice_id = %invoice.invoice_id, to = %invoice.email, total_cents = invoice.total_cents, "invoice sent");
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .query_typed(
                "update telecom_billing.invoices set status = 'sent'
                 where invoice_id = $1 and status = 'calculated'",
                &[(&invoice.invoice_id, Type::UUID)],
            )
            .await?;
        let event = NewEvent::new(
            ACCOUNT_STREAM,
            invoice.account_id,
            "invoice.sent",
            json!({"invoice_id": invoice.invoice_id, "sent_to": invoice.email}),
        )
        .idempotency_key(format!("invoice.sent:{}", invoice.invoice_id))
        .from_activity(ctx);
        events::append(&*transaction, &event).await?;
        transaction.commit().await?;
        Ok(invoice.email)
    }

    async fn record_payment(
        &self,
        ctx: &ActivityContext,
        payment: PaymentRequest,
    ) -> Result<PaymentRequest, Failure> {
        if payment.amount_cents <= 0 || payment.payment_ref.trim().is_empty() {
            return Err(Failure::new(
                types::INVALID_INPUT,
                Retry::No,
                "PaymentRequest: amount_cents must be positive and payment_ref must not be empty",
            ));
        }
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .query_typed(
                "insert into telecom_billing.payments (payment_ref, invoice_id, amount_cents)
                 values ($1, $2, $3) on conflict (payment_ref) do nothing",
                &[
                    (&payment.payment_ref, Type::TEXT),
                    (&payment.invoice_id, Type::UUID),
                    (&payment.amount_cents, Type::INT8),
                ],
            )
            .await?;
        transaction
            .query_typed(
                "update telecom_billing.invoices set status = 'paid' where invoice_id = $1",
                &[(&payment.invoice_id, Type::UUID)],
            )
            .await?;
        let event = NewEvent::new(
            ACCOUNT_STREAM,
            payment.account_id,
            "payment.processed",
            json!({"invoice_id": payment.invoice_id, "payment_ref": payment.payment_ref, "amount_cents": payment.amount_cents}),
        )
        .idempotency_key(format!("payment.processed:{}", payment.payment_ref))
        .from_activity(ctx);
        events::append(&*transaction, &event).await?;
        transaction.commit().await?;
        Ok(payment)
    }

    async fn settle(
        &self,
        ctx: &ActivityContext,
        payment: PaymentRequest,
    ) -> Result<AccountBalance, Failure> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        // The payment's `applied` flag is the once-only guard: a retry finds it set and
        // leaves the balance as the first attempt left it.
        let row = transaction
            .query_typed(
                "with applied as (
                     update telecom_billing.payments set applied = true
                     where payment_ref = $2 and not applied
                     returning amount_cents
                 )
                 update telecom_billing.accounts
                 set balance_cents = balance_cents - coalesce((select amount_cents from applied), 0),
                     updated_at = now()
                 where account_id = $1
                 returning balance_cents",
                &[
                    (&payment.account_id, Type::UUID),
                    (&payment.payment_ref, Type::TEXT),
                ],
            )
            .await?;
        let balance_cents: i64 = row.first().map(|row| row.get(0)).ok_or_else(|| {
            Failure::new(
                types::PRECONDITION_FAILED,
                Retry::No,
                format!("account {} has no invoice yet", payment.account_id),
            )
        })?;
        let event = NewEvent::new(
            ACCOUNT_STREAM,
            payment.account_id,
            "account.updated",
            json!({"payment_ref": payment.payment_ref, "balance_cents": balance_cents}),
        )
        .idempotency_key(format!("account.updated:{}", payment.payment_ref))
        .from_activity(ctx);
        events::append(&*transaction, &event).await?;
        transaction.commit().await?;
        Ok(AccountBalance {
            account_id: payment.account_id,
            balance_cents,
        })
    }
}

#[activities]
impl BillingActivities {
    /// Prices the usage, records the invoice (once per account and period), adds it to the
    /// balance; emits `invoice.calculated`.
    #[activity(name = "calculateCharges")]
    pub async fn calculate_charges(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: BillingRequest,
    ) -> Result<Invoice, ActivityError> {
        into_activity(events::when_started(|| self.calculate(&ctx, request.clone())).await)
    }

    /// Sends the invoice; emits `invoice.sent`. Returns the address.
    #[activity(name = "sendInvoice")]
    pub async fn send_invoice(
        self: Arc<Self>,
        ctx: ActivityContext,
        invoice: Invoice,
    ) -> Result<String, ActivityError> {
        into_activity(events::when_started(|| self.send(&ctx, invoice.clone())).await)
    }

    /// Records the payment (once per reference) and marks its invoice paid; emits
    /// `payment.processed`.
    #[activity(name = "processPayment")]
    pub async fn process_payment(
        self: Arc<Self>,
        ctx: ActivityContext,
        payment: PaymentRequest,
    ) -> Result<PaymentRequest, ActivityError> {
        into_activity(events::when_started(|| self.record_payment(&ctx, payment.clone())).await)
    }

    /// Takes the payment off the account's balance (once per reference); emits
    /// `account.updated`.
    #[activity(name = "updateAccount")]
    pub async fn update_account(
        self: Arc<Self>,
        ctx: ActivityContext,
        payment: PaymentRequest,
    ) -> Result<AccountBalance, ActivityError> {
        into_activity(events::when_started(|| self.settle(&ctx, payment.clone())).await)
    }
}
