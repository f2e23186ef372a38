//! What NEW keeps for one key in unversioned mode, and every change to it, as pure functions: the
//! memory and SQLite caches run these very functions under their lock or transaction.

use crate::cached::Probe;

/// NEW's state for one key in unversioned mode. A key NEW has never seen is
/// [`Entry::default`]: nothing cached, no mark, no lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry<V> {
    /// The cached value, if any.
    pub value: Option<V>,
    /// Whether a read cached that OLD holds nothing for the key.
    pub absent: bool,
    /// Writes that marked the key and have not invalidated it yet: nobody serves it meanwhile.
    pub pending: u32,
    /// The latest deadline (store clock, ms) by which every marking write has finished.
    pub pending_until: u64,
    /// The lease a fill must present to land (0: none).
    pub lease: u64,
    /// How many leases this key has issued; the next is one more, so tokens never repeat.
    pub leases: u64,
}

impl<V> Default for Entry<V> {
    fn default() -> Self {
        Entry { value: None, absent: false, pending: 0, pending_until: 0, lease: 0, leases: 0 }
    }
}

impl<V: Clone> Entry<V> {
    /// A read's look at the key at `now`: the cached answer, or a lease to fill it with OLD's
    /// (replacing an earlier lease, whose fill will then be refused), or — a write in flight —
    /// neither. Once every mark has expired, a lease is issued too: its fill repairs the key.
    pub fn probe(&mut self, now: u64) -> Probe<V> {
        if self.pending > 0 && now < self.pending_until {
            return Probe::Busy;
        }
        if self.pending == 0 {
            if let Some(value) = &self.value {
                return Probe::Hit(value.clone());
            }
            if self.absent {
                return Probe::Absent;
            }
        }
        self.leases += 1;
        self.lease = self.leases;
        Probe::Leased(self.lease)
    }

    /// A write is about to change OLD: until it invalidates the key (or its mark expires), nobody
    /// serves the key from NEW, and every lease already issued is void.
    pub fn mark(&mut self, now: u64, grace_ms: u64) {
        self.pending = self.pending.saturating_add(1);
        self.pending_until = self.pending_until.max(now.saturating_add(grace_ms));
        self.lease = 0;
    }

    /// A write has changed OLD: the cached answer goes, every lease is void, and `settle`
    /// withdraws the write's mark.
    pub fn invalidate(&mut self, settle: bool) {
        self.value = None;
        self.absent = false;
        self.lease = 0;
        if settle {
            self.pending = self.pending.saturating_sub(1);
            if self.pending == 0 {
                self.pending_until = 0;
            }
        }
    }

    /// A read's copy of OLD (`None`: OLD holds nothing), landing only with the lease still
    /// current: then no write marked the key since the lease was issued, so the copy is not older
    /// than OLD. A lease issued after every mark had expired also clears those marks (a repair).
    pub fn fill(&mut self, value: Option<V>, token: u64) -> bool {
        if token == 0 || token != self.lease {
            return false;
        }
        self.absent = value.is_none();
        self.value = value;
        self.lease = 0;
        self.pending = 0;
        self.pending_until = 0;
        true
    }

    /// Whether the entry holds nothing worth keeping (no answer, mark or lease).
    pub fn is_empty(&self) -> bool {
        self.value.is_none() && !self.absent && self.pending == 0 && self.lease == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_lands_only_with_the_current_lease() {
        let mut e = Entry::<&str>::default();
        let Probe::Leased(first) = e.probe(0) else { panic!("a miss leases") };
        let Probe::Leased(second) = e.probe(0) else { panic!("a second miss leases again") };
        assert!(!e.fill(Some("old"), first), "replaced");
        assert!(e.fill(Some("v"), second));
        assert_eq!(e.probe(1), Probe::Hit("v"));
    }

    #[test]
    fn a_write_voids_every_lease_and_hides_the_key_until_it_invalidates() {
        let mut e = Entry::default();
        let Probe::Leased(token) = e.probe(0) else { panic!() };
        e.mark(1, 100);
        assert_eq!(e.probe(2), Probe::Busy);
        assert!(!e.fill(Some("stale"), token));
        e.invalidate(true);
        let Probe::Leased(token) = e.probe(3) else { panic!("miss after the write") };
        assert!(e.fill(None, token));
        assert_eq!(e.probe(4), Probe::Absent);
    }

    #[test]
    fn expired_marks_are_repaired_by_a_fill_with_a_lease_issued_after_them() {
        let mut e = Entry::default();
        e.mark(0, 10);
        assert_eq!(e.probe(5), Probe::Busy);
        let Probe::Leased(token) = e.probe(10) else { panic!("expired: a repair lease") };
        assert!(e.fill(Some("v"), token));
        assert_eq!((e.pending, e.probe(11)), (0, Probe::Hit("v")));
        e.mark(20, 10);
        let Probe::Leased(token) = e.probe(30) else { panic!() };
        e.mark(31, 10);
        assert!(!e.fill(Some("w"), token), "a mark after the lease voids it");
    }
}
