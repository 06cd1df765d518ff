//! Domain event types and stream types (CONTRACTS.md, "Database"). The SQL schema refers to
//! the same strings; a test in osp-activities checks the two agree.

/// The stream type of an organization; every event of one bootstrap request, queue events
/// included, is appended to the organization's stream, so the stream reads as the whole chain.
pub const ORGANIZATION_STREAM: &str = "organization";

/// A client asked for an organization to be bootstrapped; routed to the bootstrap workflow.
pub const ORGANIZATION_BOOTSTRAP_INITIATED: &str = "organization.bootstrap.initiated";
/// The bridge started the routed workflow (emitted by the bridge after the start).
pub const ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED: &str = "organization.bootstrap.workflow_started";
/// The organization row exists.
pub const ORGANIZATION_CREATED: &str = "organization.created";
/// The organization's DNS record exists.
pub const ORGANIZATION_DNS_CONFIGURED: &str = "organization.dns.configured";
/// One admin user was invited (one event per admin).
pub const USER_INVITED: &str = "user.invited";
/// One invitation email was sent (one event per admin).
pub const INVITATION_EMAIL_SENT: &str = "invitation.email.sent";
/// The bootstrap finished.
pub const ORGANIZATION_BOOTSTRAP_COMPLETED: &str = "organization.bootstrap.completed";
/// The bootstrap failed for good, after compensation; carries the reason.
pub const ORGANIZATION_BOOTSTRAP_FAILED: &str = "organization.bootstrap.failed";
/// Compensation: the DNS record was removed.
pub const ORGANIZATION_DNS_REMOVED: &str = "organization.dns.removed";
/// Compensation: an invitation was revoked.
pub const INVITATION_REVOKED: &str = "invitation.revoked";
/// Compensation: the organization was deactivated.
pub const ORGANIZATION_DEACTIVATED: &str = "organization.deactivated";

/// A routed event was enqueued as a workflow job (emitted by the enqueue trigger).
pub const WORKFLOW_QUEUE_PENDING: &str = "workflow.queue.pending";
/// A bridge claimed the job under a lease.
pub const WORKFLOW_QUEUE_CLAIMED: &str = "workflow.queue.claimed";
/// The job's workflow was started.
pub const WORKFLOW_QUEUE_COMPLETED: &str = "workflow.queue.completed";
/// The job cannot be started; carries `error_message`.
pub const WORKFLOW_QUEUE_FAILED: &str = "workflow.queue.failed";

/// The channel of the NOTIFY sent for every new pending job (payload: the job id).
pub const WORKFLOW_QUEUE_CHANNEL: &str = "osp_workflow_queue";

/// Every event type above, in the order of one successful bootstrap request followed by the
/// failure and compensation types.
pub const ALL_EVENT_TYPES: &[&str] = &[
    ORGANIZATION_BOOTSTRAP_INITIATED,
    WORKFLOW_QUEUE_PENDING,
    WORKFLOW_QUEUE_CLAIMED,
    ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED,
    WORKFLOW_QUEUE_COMPLETED,
    ORGANIZATION_CREATED,
    ORGANIZATION_DNS_CONFIGURED,
    USER_INVITED,
    INVITATION_EMAIL_SENT,
    ORGANIZATION_BOOTSTRAP_COMPLETED,
    ORGANIZATION_BOOTSTRAP_FAILED,
    WORKFLOW_QUEUE_FAILED,
    ORGANIZATION_DNS_REMOVED,
    INVITATION_REVOKED,
    ORGANIZATION_DEACTIVATED,
];

/// Whether `event_type` has the shape the database accepts: lowercase dot-separated words of
/// letters, digits and `_`, at least two of them (the same rule as `api.emit_domain_event`).
pub fn is_valid_event_type(event_type: &str) -> bool {
    let mut parts = 0;
    for part in event_type.split('.') {
        let mut chars = part.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        if !starts_with_letter
            || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return false;
        }
        parts += 1;
    }
    parts >= 2 && event_type.len() <= 200
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_event_type_is_well_formed() {
        for event_type in ALL_EVENT_TYPES {
            assert!(is_valid_event_type(event_type), "{event_type}");
        }
    }

    #[test]
    fn malformed_event_types_are_rejected() {
        for bad in [
            "",
            "organization",
            "Org.created",
            "a..b",
            ".a.b",
            "a.b.",
            "a.b c",
            "a.1b",
        ] {
            assert!(!is_valid_event_type(bad), "{bad:?}");
        }
    }
}
