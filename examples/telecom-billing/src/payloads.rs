//! The service's payloads: what its workflows take and return and its activities exchange.
//! `BillingRequest` is also the data of an `invoice.requested` event, which the bridge hands
//! to `processBilling` as its input.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One usage line of a billing period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    /// `voice_minutes`, `data_gb`, ...
    pub item: String,
    pub quantity: u32,
    pub unit_price_cents: u32,
}

/// Input of `processBilling` and `calculateCharges`; the data of `invoice.requested`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRequest {
    pub account_id: Uuid,
    /// `2026-11`.
    pub period: String,
    pub usage: Vec<UsageLine>,
    /// Where the invoice goes.
    pub email: String,
}

/// What `calculateCharges` recorded; input of `sendInvoice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub invoice_id: Uuid,
    pub account_id: Uuid,
    pub period: String,
    pub total_cents: i64,
    pub email: String,
}

/// Output of `processBilling`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingOutcome {
    pub invoice: Invoice,
    /// The address the invoice was sent to.
    pub sent_to: String,
}

/// Input of `handlePayment` and `processPayment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub account_id: Uuid,
    pub invoice_id: Uuid,
    /// The payment provider's reference; a payment is recorded once per reference.
    pub payment_ref: String,
    pub amount_cents: i64,
}

/// Output of `handlePayment` and `updateAccount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    pub account_id: Uuid,
    /// What the account owes after the payment.
    pub balance_cents: i64,
}
