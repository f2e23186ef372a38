//! What NEW keeps for one key in versioned mode, and every change to it, as pure functions: the
//! protocol without I/O. The memory and SQLite targets run these very functions under their lock or
//! transaction; the networked targets implement the same table in one statement or script each, and
//! the conformance tests hold them to it.

use crate::versioned::{Filled, Lookup};

/// NEW's state for one key. A key NEW has never seen is [`Slot::default`]: no value, version 0, not
/// pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot<V> {
    /// The value, or `None` for a tombstone (or a key only marked so far).
    pub value: Option<V>,
    /// OLD's version of `value` (or of the delete that left the tombstone).
    pub version: u64,
    /// Writes that marked the key and have not settled it: while non-zero, nobody serves the value.
    pub pending: u32,
    /// The latest deadline (store clock, ms) by which every marking write has finished; it also
    /// names the set of marks, so a repair can tell that no write marked the key since it looked.
    pub pending_until: u64,
    /// When the value or tombstone last changed (store clock, ms), for purging tombstones.
    pub changed_at: u64,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Slot { value: None, version: 0, pending: 0, pending_until: 0, changed_at: 0 }
    }
}

impl<V: Clone> Slot<V> {
    /// What a read sees at `now`.
    pub fn lookup(&self, now: u64) -> Lookup<V> {
        if self.pending > 0 {
            return Lookup::Pending { token: self.pending_until, expired: now >= self.pending_until };
        }
        match &self.value {
            Some(value) => Lookup::Hit(value.clone()),
            None => Lookup::Miss,
        }
    }

    /// A write is about to change OLD: until it settles (or `grace_ms` passes and a read repairs
    /// the key), nobody serves NEW's value.
    pub fn mark(&mut self, now: u64, grace_ms: u64) {
        self.pending = self.pending.saturating_add(1);
        self.pending_until = self.pending_until.max(now.saturating_add(grace_ms));
    }

    /// A write's result in OLD (`None`: deleted) at OLD's `version`: taken only if newer than what
    /// NEW holds, so writes landing out of order end in OLD's order. `settle` withdraws the write's
    /// mark. Returns whether the value was taken.
    pub fn apply(&mut self, value: Option<V>, version: u64, settle: bool, now: u64) -> bool {
        let newer = version > self.version;
        if newer {
            self.value = value;
            self.version = version;
            self.changed_at = now;
        }
        if settle {
            self.pending = self.pending.saturating_sub(1);
            if self.pending == 0 {
                self.pending_until = 0;
            }
        }
        newer
    }

    /// A read's copy of OLD (`None`: OLD has no value) at OLD's `version`.
    ///
    /// Outside a pending key it is an insert-if-newer of a value. On a pending key it is a repair,
    /// allowed only with the `token` of a lookup that saw every mark expired: the read then began
    /// after every marking write had finished with OLD, so OLD's state is the truth and NEW takes it
    /// whatever its version (keeping the larger version, so versions never go back).
    pub fn fill(&mut self, value: Option<V>, version: u64, token: Option<u64>, now: u64) -> Filled {
        if self.pending > 0 {
            if token != Some(self.pending_until) || now < self.pending_until {
                return Filled::Refused;
            }
            self.pending = 0;
            self.pending_until = 0;
            self.value = value;
            self.version = self.version.max(version);
            self.changed_at = now;
            return Filled::Repaired;
        }
        match value {
            Some(value) if version > self.version => {
                self.value = Some(value);
                self.version = version;
                self.changed_at = now;
                Filled::Copied
            }
            _ => Filled::Refused,
        }
    }

    /// A write once OLD is no longer written (`Complete`): NEW's own next version, and every mark
    /// cleared, since nothing will write OLD again.
    pub fn put_next(&mut self, value: Option<V>, now: u64) -> u64 {
        self.version = self.version.saturating_add(1);
        self.value = value;
        self.pending = 0;
        self.pending_until = 0;
        self.changed_at = now;
        self.version
    }

    /// Whether the slot is a settled tombstone older than `older_than_ms` at `now`: safe to forget.
    pub fn purgeable(&self, now: u64, older_than_ms: u64) -> bool {
        self.value.is_none() && self.pending == 0 && now.saturating_sub(self.changed_at) >= older_than_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot<&'static str> {
        Slot::default()
    }

    #[test]
    fn writes_land_in_old_order_whatever_order_they_arrive() {
        let mut s = slot();
        s.mark(0, 100);
        s.mark(0, 100);
        assert!(s.apply(Some("b"), 2, true, 1));
        assert!(!s.apply(Some("a"), 1, true, 2), "an older write never overwrites a newer one");
        assert_eq!(s.lookup(3), Lookup::Hit("b"));
    }

    #[test]
    fn a_marked_key_is_a_miss_until_every_write_settles() {
        let mut s = slot();
        assert!(s.apply(Some("a"), 1, false, 0));
        s.mark(10, 100);
        s.mark(20, 100);
        assert_eq!(s.lookup(30), Lookup::Pending { token: 120, expired: false });
        s.apply(Some("b"), 2, true, 40);
        assert!(matches!(s.lookup(50), Lookup::Pending { .. }), "the other write is still in flight");
        s.apply(Some("c"), 3, true, 60);
        assert_eq!(s.lookup(70), Lookup::Hit("c"));
    }

    #[test]
    fn a_fill_never_overwrites_a_newer_value_or_a_tombstone() {
        let mut s = slot();
        s.apply(None, 5, false, 0);
        assert_eq!(s.fill(Some("old"), 4, None, 1), Filled::Refused);
        assert_eq!(s.lookup(2), Lookup::Miss);
        assert_eq!(s.fill(Some("new"), 6, None, 3), Filled::Copied);
        assert_eq!(s.lookup(4), Lookup::Hit("new"));
    }

    #[test]
    fn a_pending_key_is_repaired_only_after_its_marks_expire_and_only_with_their_token() {
        let mut s = slot();
        s.apply(Some("a"), 1, false, 0);
        s.mark(0, 100);
        assert_eq!(s.fill(Some("a"), 1, None, 10), Filled::Refused, "no token");
        assert_eq!(s.fill(Some("a"), 1, Some(100), 50), Filled::Refused, "not expired");
        let Lookup::Pending { token, expired: true } = s.lookup(150) else { panic!("expired mark") };
        // A write marked the key after the lookup: the read's copy of OLD may predate it.
        s.mark(160, 100);
        assert_eq!(s.fill(Some("a"), 1, Some(token), 170), Filled::Refused);
        let Lookup::Pending { token, expired: true } = s.lookup(300) else { panic!("expired mark") };
        assert_eq!(s.fill(Some("z"), 1, Some(token), 300), Filled::Repaired, "OLD's state, same version");
        assert_eq!(s.lookup(301), Lookup::Hit("z"));
    }

    #[test]
    fn a_repair_takes_a_delete_and_never_lowers_the_version() {
        let mut s = slot();
        s.apply(Some("a"), 7, false, 0);
        s.mark(0, 10);
        assert_eq!(s.fill(None, 0, Some(10), 20), Filled::Repaired);
        assert_eq!(s.lookup(21), Lookup::Miss);
        assert_eq!(s.version, 7);
        assert_eq!(s.fill(Some("old"), 7, None, 22), Filled::Refused);
    }

    #[test]
    fn tombstones_are_purged_only_when_settled_and_old_enough() {
        let mut s = slot();
        s.mark(0, 10);
        s.apply(None, 3, false, 5);
        assert!(!s.purgeable(1_000, 100), "still pending");
        s.apply(None, 3, true, 6);
        assert!(!s.purgeable(50, 100));
        assert!(s.purgeable(106, 100));
        s.apply(Some("v"), 4, false, 200);
        assert!(!s.purgeable(10_000, 100), "a value is never purged");
    }

    #[test]
    fn complete_writes_take_the_next_version_and_clear_marks() {
        let mut s = slot();
        s.apply(Some("a"), 9, false, 0);
        s.mark(0, 100);
        assert_eq!(s.put_next(Some("b"), 1), 10);
        assert_eq!(s.lookup(2), Lookup::Hit("b"));
    }
}
