//! Exponential backoff with jitter for start-up and reconnection loops: never a crash loop,
//! never a busy loop, and never replicas retrying in lockstep after a shared outage.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::{SmallRng, SysRng};
use rand::{RngExt, SeedableRng};

/// A ceiling that doubles from `initial` up to `max`; each delay is drawn from the upper
/// half of it ("equal jitter"). The lower half is kept so a delay is never near zero (no busy
/// loop); the random upper half spreads replicas that failed at the same moment.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    attempt: u32,
    /// Jitter needs no unpredictability, only a different sequence per process.
    rng: SmallRng,
}

impl Backoff {
    /// Jitter seeded from the operating system, so every process draws differently.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let rng = SmallRng::try_from_rng(&mut SysRng).unwrap_or_else(|_| {
            // No entropy source (very early boot, seccomp): the clock still differs
            // between replicas by far more than the jitter's resolution needs.
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64);
            SmallRng::seed_from_u64(nanos ^ u64::from(std::process::id()))
        });
        Self::with_rng(initial, max, rng)
    }

    /// Like [`Backoff::new`], with the jitter drawn from `seed`: the same seed, the same
    /// delays.
    pub fn seeded(initial: Duration, max: Duration, seed: u64) -> Self {
        Self::with_rng(initial, max, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(initial: Duration, max: Duration, rng: SmallRng) -> Self {
        Self {
            initial,
            max,
            next: initial,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt, and the attempt number it precedes (from 1).
    pub fn next_delay(&mut self) -> (Duration, u32) {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempt += 1;
        let floor = ceiling / 2;
        // Nanoseconds of a backoff ceiling fit in u64 for 584 years.
        let spread = u64::try_from((ceiling - floor).as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(self.rng.random_range(0..=spread));
        (floor + jitter, self.attempt)
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
        for ceiling in [250, 500, 1000, 1000] {
            let delay = backoff.next_delay().0.as_millis();
            assert!(
                (ceiling / 2..=ceiling).contains(&delay),
                "{delay} ms, ceiling {ceiling} ms"
            );
        }
        backoff.reset();
        let (delay, attempt) = backoff.next_delay();
        assert_eq!(attempt, 1);
        assert!((125..=250).contains(&delay.as_millis()), "{delay:?}");
    }

    #[test]
    fn point_13_jittered_delays_diverge_between_seeds_and_stay_within_bounds() {
        let (initial, max) = (Duration::from_millis(250), Duration::from_secs(10));
        let mut one = Backoff::seeded(initial, max, 1);
        let mut two = Backoff::seeded(initial, max, 2);
        let mut ceiling = initial;
        let mut different = 0;
        for attempt in 1..=40 {
            let (a, attempt_a) = one.next_delay();
            let (b, attempt_b) = two.next_delay();
            assert_eq!((attempt_a, attempt_b), (attempt, attempt));
            for delay in [a, b] {
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "attempt {attempt}: {delay:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
            different += usize::from(a != b);
            ceiling = (ceiling * 2).min(max);
        }
        // Two replicas seeded differently do not retry in lockstep.
        assert!(different >= 35, "only {different} of 40 delays differ");
        // The same seed gives the same delays: the source is injectable for tests.
        let mut again = Backoff::seeded(initial, max, 1);
        let mut first = Backoff::seeded(initial, max, 1);
        for _ in 0..10 {
            assert_eq!(again.next_delay(), first.next_delay());
        }
    }
}
