//! The service's deterministic workflows: `processBilling` (calculate, then send the
//! invoice) and `handlePayment` (record the payment, then settle the account). They call
//! only their activities, through the context.

use std::time::Duration;

use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::activities::BillingActivities;
use crate::payloads::{AccountBalance, BillingOutcome, BillingRequest, PaymentRequest};

fn options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_attempts(5)
                .build(),
        )
        .build()
}

/// Bills one account for one period.
#[workflow]
#[derive(Debug, Default)]
pub struct ProcessBilling;

#[workflow_methods]
impl ProcessBilling {
    #[run(name = "processBilling")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        request: BillingRequest,
    ) -> WorkflowResult<BillingOutcome> {
        let invoice = ctx
            .execute_activity(BillingActivities::calculate_charges, request, options())
            .await?;
        let sent_to = ctx
            .execute_activity(BillingActivities::send_invoice, invoice.clone(), options())
            .await?;
        Ok(BillingOutcome { invoice, sent_to })
    }
}

/// Applies one payment to an invoice and its account.
#[workflow]
#[derive(Debug, Default)]
pub struct HandlePayment;

#[workflow_methods]
impl HandlePayment {
    #[run(name = "handlePayment")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        payment: PaymentRequest,
    ) -> WorkflowResult<AccountBalance> {
        let recorded = ctx
            .execute_activity(BillingActivities::process_payment, payment, options())
            .await?;
        let balance = ctx
            .execute_activity(BillingActivities::update_account, recorded, options())
            .await?;
        Ok(balance)
    }
}
