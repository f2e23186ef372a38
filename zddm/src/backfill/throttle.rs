//! How long a backfill pauses between batches: a pure state machine, driven by what each batch
//! took, so the policy is tested without a clock.

use std::time::Duration;

/// The pause policy: a rate limit, and backing off when the stores slow down or fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    /// Rows per second at most; `None` for no limit.
    rate: Option<f64>,
    /// A batch slower than this per row means the stores are under strain.
    slow_per_row: Duration,
    /// The first pause after a slow or failed batch; it doubles each time up to `max_backoff`.
    min_backoff: Duration,
    max_backoff: Duration,
    /// The current back-off, zero while the stores are healthy.
    backoff: Duration,
}

impl Throttle {
    pub(crate) fn new(rate: Option<f64>, slow_per_row: Duration, min_backoff: Duration, max_backoff: Duration) -> Self {
        Throttle { rate, slow_per_row, min_backoff, max_backoff, backoff: Duration::ZERO }
    }

    /// The pause after a batch of `rows` that took `took`: what the rate limit still asks for,
    /// plus a back-off that grows while batches are slow and shrinks once they are not.
    pub(crate) fn after_batch(&mut self, rows: usize, took: Duration) -> Duration {
        let rows_u32 = u32::try_from(rows.max(1)).unwrap_or(u32::MAX);
        if took > self.slow_per_row.saturating_mul(rows_u32) {
            self.grow();
        } else {
            self.backoff /= 2;
            if self.backoff < self.min_backoff {
                self.backoff = Duration::ZERO;
            }
        }
        let limited = match self.rate {
            Some(rate) => Duration::from_secs_f64(rows as f64 / rate).saturating_sub(took),
            None => Duration::ZERO,
        };
        limited + self.backoff
    }

    /// The pause after a failed batch.
    pub(crate) fn after_error(&mut self) -> Duration {
        self.grow();
        self.backoff
    }

    fn grow(&mut self) {
        self.backoff = (self.backoff * 2).clamp(self.min_backoff, self.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn throttle(rate: Option<f64>) -> Throttle {
        Throttle::new(rate, MS, 10 * MS, 80 * MS)
    }

    #[test]
    fn the_rate_limit_pauses_for_what_the_batch_did_not_take() {
        let mut t = throttle(Some(1000.0));
        // 100 rows at 1000/s is 100 ms; the batch took 30.
        assert_eq!(t.after_batch(100, 30 * MS), 70 * MS);
        // A batch slower than the rate asks for no pause (and 100 ms for 100 rows is not slow).
        assert_eq!(t.after_batch(100, 100 * MS), Duration::ZERO);
        assert_eq!(throttle(None).after_batch(100, 30 * MS), Duration::ZERO);
    }

    #[test]
    fn slow_batches_and_errors_back_off_doubling_up_to_the_ceiling_then_recover() {
        let mut t = throttle(None);
        assert_eq!(t.after_batch(10, 50 * MS), 10 * MS, "5 ms a row is slow");
        assert_eq!(t.after_error(), 20 * MS);
        assert_eq!(t.after_error(), 40 * MS);
        assert_eq!(t.after_error(), 80 * MS);
        assert_eq!(t.after_error(), 80 * MS, "never past the ceiling");
        assert_eq!(t.after_batch(10, MS), 40 * MS, "healthy again: halves");
        assert_eq!(t.after_batch(10, MS), 20 * MS);
        assert_eq!(t.after_batch(10, MS), 10 * MS);
        assert_eq!(t.after_batch(10, MS), Duration::ZERO, "below the floor it stops");
    }
}
