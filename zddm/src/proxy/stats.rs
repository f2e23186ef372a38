use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the proxy did, since it was made. Cheap to take; all fields are totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads that returned a value (or its absence) from OLD.
    pub reads_from_old: u64,
    /// Reads that returned a value from NEW.
    pub reads_from_new: u64,
    /// Reads that found the key in NEW.
    pub new_hits: u64,
    /// Reads that looked in NEW and found nothing (then read OLD).
    pub new_misses: u64,
    /// Values copied from OLD into NEW by a read-through.
    pub backfills: u64,
    /// Read-through copies NEW refused because it already held a value (written meanwhile).
    pub backfills_skipped: u64,
    /// NEW copies removed to keep NEW from going stale (lapsed keys, the kill switch, failed NEW
    /// writes, shadow mismatches).
    pub invalidations: u64,
    /// Keys left in doubt by an abandoned write, repaired before being read from NEW again.
    pub repairs: u64,
    /// OLD store operations that failed.
    pub old_errors: u64,
    /// NEW store operations that failed.
    pub new_errors: u64,
    /// Writes that returned [`Error::Indeterminate`](crate::Error::Indeterminate).
    pub indeterminate: u64,
    /// Shadow reads that compared OLD with NEW.
    pub shadow_compared: u64,
    /// Shadow reads where NEW disagreed with OLD.
    pub mismatches: u64,
}

impl Stats {
    /// The share of reads served by OLD, 0.0 to 1.0 (0.0 before the first read). It falls towards 0
    /// as NEW fills; at 0 under full traffic and a 100 % gate, NEW serves everything.
    pub fn old_read_ratio(&self) -> f64 {
        let reads = self.reads_from_old + self.reads_from_new;
        if reads == 0 {
            0.0
        } else {
            self.reads_from_old as f64 / reads as f64
        }
    }
}

macro_rules! counters {
    ($($field:ident)*) => {
        #[derive(Default)]
        pub(crate) struct Counters {
            $(pub(crate) $field: AtomicU64,)*
        }

        impl Stats {
            /// What happened between `earlier` and this snapshot: for ratios over a window, such as
            /// the OLD-read ratio of the last minute.
            pub fn since(&self, earlier: &Stats) -> Stats {
                Stats { $($field: self.$field.saturating_sub(earlier.$field),)* }
            }
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Stats {
                Stats { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    reads_from_old reads_from_new new_hits new_misses backfills backfills_skipped invalidations repairs
    old_errors new_errors indeterminate shadow_compared mismatches
);

impl Counters {
    /// Counts a store's failure against its side, and wraps it as the proxy's error.
    pub(crate) fn fail(
        &self,
        side: crate::error::Side,
        op: crate::error::Op,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> crate::error::Error {
        bump(match side {
            crate::error::Side::Old => &self.old_errors,
            crate::error::Side::New => &self.new_errors,
        });
        crate::error::Error::store(side, op, error)
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
