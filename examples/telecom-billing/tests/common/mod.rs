//! Helpers both test binaries share: waiting for the bridge to start a routed event's
//! workflow.

use std::time::{Duration, Instant};

use uuid::Uuid;

/// Waits until the job of the `event_type` event on `stream_id` is started and returns the
/// workflow id; a failed job fails with its error message.
pub async fn started_workflow(
    db: &tokio_postgres::Client,
    stream_id: Uuid,
    event_type: &str,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = db
            .query_opt(
                "select status, workflow_id, error_message from public.workflow_queue_projection
                 where stream_id = $1 and event_type = $2",
                &[&stream_id, &event_type],
            )
            .await?;
        if let Some(row) = row {
            let status: String = row.get(0);
            match status.as_str() {
                "completed" => return Ok(row.get(1)),
                "failed" => anyhow::bail!(
                    "the {event_type} job failed: {}",
                    row.get::<_, Option<String>>(2).unwrap_or_default()
                ),
                _ => {}
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the {event_type} job on stream {stream_id} was not started within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
