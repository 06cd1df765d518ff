//! Exponential backoff for start-up and reconnection loops: never a crash loop, never a
//! busy loop.

use std::time::Duration;

/// Doubles from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, and the attempt number it precedes (from 1).
    pub fn next_delay(&mut self) -> (Duration, u32) {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempt += 1;
        (delay, self.attempt)
    }

    /// Back to the initial delay after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay().0.as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), (Duration::from_millis(250), 1));
    }
}
