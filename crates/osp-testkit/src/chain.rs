//! Event-chain assertions: wait, with a deadline, until a stream's domain events are exactly
//! the expected sequence, and fail with a readable diff (expected, actual, the first
//! difference) as soon as they cannot become so: the stream is append-only, so a wrong event
//! never goes away.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::TestError;

/// How often the stream is read again while it is still a prefix of the expected chain.
const POLL: Duration = Duration::from_millis(20);

pub use osp_activities::events::StoredEvent;

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
    osp_activities::events::read_stream(db, stream_id)
        .await
        .map_err(|error| TestError::Database {
            context: format!("reading stream {stream_id}"),
            detail: osp_stack::error_chain(&error),
        })
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
