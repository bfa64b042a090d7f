//! Reconnect back-off: exponential with random jitter, between `reconnect_min` and
//! `reconnect_max`.
//!
//! Pure: the caller supplies the randomness (`jitter` in 0.0..=1.0), so the schedule is testable.
//! Attempt n waits a uniformly jittered time in `[min, min(max, min * 2^(n+1))]`, so that a
//! municipality's devices do not all reconnect in the same second after a broker restart, and
//! the first retry is still quick.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max: max.max(min), attempt: 0 }
    }

    /// The wait before the next attempt.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.saturating_add(1));
        let upper = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1).min(32);
        let span = upper.saturating_sub(self.min);
        self.min + span.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Called on a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waits_grow_exponentially_and_stay_within_min_and_max() {
        let mut b = Backoff::new(S, S * 60);
        let uppers: Vec<Duration> = (0..10).map(|_| b.next(1.0)).collect();
        assert_eq!(&uppers[..6], &[S * 2, S * 4, S * 8, S * 16, S * 32, S * 60]);
        assert!(uppers[6..].iter().all(|d| *d == S * 60));
        let mut b = Backoff::new(S, S * 60);
        assert!((0..40).map(|_| b.next(0.0)).all(|d| d == S));
    }

    #[test]
    fn reset_after_a_connection_makes_the_next_retry_quick_again() {
        let mut b = Backoff::new(S, S * 60);
        for _ in 0..10 {
            b.next(1.0);
        }
        b.reset();
        assert_eq!(b.next(1.0), S * 2);
    }
}
