//! Event-chain assertions: wait, with a deadline, until a stream's domain events are exactly
//! the expected sequence, and fail with a readable diff (expected, actual, the first
//! difference) as soon as they cannot become so: the stream is append-only, so a wrong event
//! never goes away.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::TestError;

/// How often the stream is read again while it is still a prefix of the expected chain.
const POLL: Duration = Duration::from_millis(20);

/// One stored domain event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its id.
    pub id: Uuid,
    /// Its position in the stream, from 1.
    pub stream_version: i32,
    /// `organization.created`, ...
    pub event_type: String,
    /// Its data.
    pub event_data: Value,
    /// Its metadata (idempotency key, workflow id, ...).
    pub event_metadata: Value,
}

/// The expected and actual event types of a stream that did not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(self))]
pub struct ChainMismatch {
    /// What was compared (`stream 6f1c...`).
    pub subject: String,
    /// The expected event types, in order.
    pub expected: Vec<String>,
    /// The event types that arrived, in order.
    pub actual: Vec<String>,
    /// Why it stopped waiting.
    pub reason: String,
}

impl ChainMismatch {
    /// The index (from 0) of the first position where expected and actual differ.
    pub fn first_difference(&self) -> Option<usize> {
        first_difference(&self.expected, &self.actual)
    }
}

fn first_difference(expected: &[String], actual: &[String]) -> Option<usize> {
    let common = expected.len().min(actual.len());
    (0..common)
        .find(|&index| expected[index] != actual[index])
        .or_else(|| (expected.len() != actual.len()).then_some(common))
}

/// The diff as a table: one row per position, `!` where they differ.
fn render(mismatch: &ChainMismatch) -> String {
    let mut text = format!(
        "event chain of {} does not match ({}):\n",
        mismatch.subject, mismatch.reason
    );
    let width = mismatch
        .expected
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("expected".len());
    text.push_str(&format!("      #  {:<width$}  actual\n", "expected"));
    let rows = mismatch.expected.len().max(mismatch.actual.len());
    for index in 0..rows {
        let expected = mismatch
            .expected
            .get(index)
            .map_or("(nothing)", String::as_str);
        let actual = mismatch
            .actual
            .get(index)
            .map_or("(nothing)", String::as_str);
        let marker = if expected == actual { ' ' } else { '!' };
        text.push_str(&format!(
            "  {marker} {:>4}  {expected:<width$}  {actual}\n",
            index + 1
        ));
    }
    match first_difference(&mismatch.expected, &mismatch.actual) {
        Some(index) => text.push_str(&format!(
            "first difference at #{}: expected {}, got {}",
            index + 1,
            mismatch
                .expected
                .get(index)
                .map_or("the end of the stream".to_owned(), |kind| format!(
                    "`{kind}`"
                )),
            mismatch
                .actual
                .get(index)
                .map_or("nothing (yet)".to_owned(), |kind| format!("`{kind}`")),
        )),
        None => text.push_str("the sequences are equal"),
    }
    text
}

/// Compares two sequences of event types; `None` when equal.
pub fn chain_diff(subject: &str, expected: &[&str], actual: &[String]) -> Option<ChainMismatch> {
    let expected: Vec<String> = expected.iter().map(|kind| (*kind).to_owned()).collect();
    (expected != actual).then(|| ChainMismatch {
        subject: subject.to_owned(),
        expected,
        actual: actual.to_vec(),
        reason: "compared".to_owned(),
    })
}

/// The events of `stream_id`, in order.
pub async fn stream_events(
    db: &tokio_postgres::Client,
    stream_id: Uuid,
) -> Result<Vec<StoredEvent>, TestError> {
    let rows = db
        .query_typed(
            "select id, stream_version, event_type, event_data, event_metadata
             from public.domain_events where stream_id = $1 order by stream_version",
            &[(&stream_id, Type::UUID)],
        )
        .await
        .map_err(|error| TestError::database(format!("reading stream {stream_id}"), &error))?;
    Ok(rows
        .iter()
        .map(|row| StoredEvent {
            id: row.get(0),
            stream_version: row.get(1),
            event_type: row.get(2),
            event_data: row.get(3),
            event_metadata: row.get(4),
        })
        .collect())
}

/// Waits until the event types of `stream_id` equal `expected`; fails at once when a wrong
/// or an extra event arrives, or after `deadline` with what arrived by then.
pub async fn wait_for_chain(
    db: &tokio_postgres::Client,
    stream_id: Uuid,
    expected: &[&str],
    deadline: Duration,
) -> Result<Vec<StoredEvent>, TestError> {
    let started = Instant::now();
    let subject = format!("stream {stream_id}");
    loop {
        let events = stream_events(db, stream_id).await?;
        let actual: Vec<String> = events
            .iter()
            .map(|event| event.event_type.clone())
            .collect();
        let Some(mut mismatch) = chain_diff(&subject, expected, &actual) else {
            return Ok(events);
        };
        let still_a_prefix = actual.len() < expected.len()
            && actual.iter().zip(expected).all(|(got, want)| got == want);
        if !still_a_prefix {
            mismatch.reason = "a wrong or extra event arrived".to_owned();
            return Err(mismatch.into());
        }
        if started.elapsed() >= deadline {
            mismatch.reason = format!("still incomplete after {deadline:?}");
            return Err(mismatch.into());
        }
        tokio::time::sleep(POLL).await;
    }
}

impl fmt::Display for StoredEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {}",
            self.stream_version, self.event_type, self.event_data
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_chains_have_no_diff() {
        assert_eq!(
            chain_diff("s", &["a.b", "a.c"], &["a.b".into(), "a.c".into()]),
            None
        );
    }

    #[test]
    fn a_diff_marks_every_differing_row_and_names_the_first() {
        let mismatch = chain_diff(
            "stream x",
            &["a.one", "a.two"],
            &["a.one".into(), "a.three".into(), "a.four".into()],
        )
        .unwrap();
        assert_eq!(mismatch.first_difference(), Some(1));
        let text = mismatch.to_string();
        assert!(text.contains("!    2  a.two     a.three"), "{text}");
        assert!(text.contains("!    3  (nothing)  a.four"), "{text}");
        assert!(
            text.ends_with("first difference at #2: expected `a.two`, got `a.three`"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_tail_is_the_first_difference() {
        let mismatch = chain_diff("s", &["a.one", "a.two"], &["a.one".into()]).unwrap();
        assert_eq!(mismatch.first_difference(), Some(1));
        assert!(mismatch.to_string().contains("got nothing (yet)"));
    }
}
