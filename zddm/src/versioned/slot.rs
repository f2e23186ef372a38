//! What NEW keeps for one key in versioned mode, and every change to it, as pure functions: the
//! protocol without I/O. The memory and SQLite targets run these very functions under their lock or
//! transaction; the networked targets implement the same table in one statement or script each, and
//! the conformance tests hold them to it.

use crate::versioned::{Change, Filled, Lookup};

/// NEW's state for one key. A key NEW has never seen is [`Slot::default`]: nothing, version 0, not
/// pending.
///
/// Without a value, a slot is either a delete (`deleted`: the key is gone as of `version`, and a
/// read may answer so without asking OLD) or nothing known (never copied, or invalidated by a
/// write at `version` whose value NEW was not given: OLD answers, and a copy of that very version
/// may fill it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slot<V> {
    /// The value, if NEW holds one.
    pub value: Option<V>,
    /// Whether the key was deleted at `version` (never with a value).
    pub deleted: bool,
    /// OLD's version of what the slot holds.
    pub version: u64,
    /// Writes that marked the key and have not settled it: while non-zero, nobody serves the slot.
    pub pending: u32,
    /// The latest deadline (store clock, ms) by which every marking write has finished; it also
    /// names the set of marks, so a repair can tell that no write marked the key since it looked.
    pub pending_until: u64,
    /// When the slot's contents last changed (store clock, ms), for purging tombstones.
    pub changed_at: u64,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Slot { value: None, deleted: false, version: 0, pending: 0, pending_until: 0, changed_at: 0 }
    }
}

impl<V: Clone> Slot<V> {
    /// What a read sees at `now`.
    pub fn lookup(&self, now: u64) -> Lookup<V> {
        if self.pending > 0 {
            return Lookup::Pending { token: self.pending_until, expired: now >= self.pending_until };
        }
        match (&self.value, self.deleted) {
            (Some(value), _) => Lookup::Hit(value.clone()),
            (None, true) => Lookup::Deleted,
            (None, false) => Lookup::Miss,
        }
    }

    /// A write is about to change OLD: until it settles (or `grace_ms` passes and a read repairs
    /// the key), nobody serves the slot.
    pub fn mark(&mut self, now: u64, grace_ms: u64) {
        self.pending = self.pending.saturating_add(1);
        self.pending_until = self.pending_until.max(now.saturating_add(grace_ms));
    }

    /// A write's result in OLD at OLD's `version`: taken only if newer than what NEW holds, so
    /// writes landing out of order end in OLD's order. `settle` withdraws the write's mark.
    /// Returns whether the change was taken.
    pub fn apply(&mut self, change: Change<V>, version: u64, settle: bool, now: u64) -> bool {
        let newer = version > self.version;
        if newer {
            (self.value, self.deleted) = match change {
                Change::Put(value) => (Some(value), false),
                Change::Delete => (None, true),
                Change::Invalidate => (None, false),
            };
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
    /// Outside a pending key it copies a value only if NEW holds nothing as new: a value or a
    /// delete must be older, an invalidation no newer (it invalidated this very version). On a
    /// pending key it is a repair, allowed only with the `token` of a lookup that saw every mark
    /// expired: the read then began after every marking write had finished with OLD, so OLD's
    /// state is the truth — its value, or a delete if it has none — and NEW takes it whatever its
    /// version (keeping the larger version, so versions never go back).
    pub fn fill(&mut self, value: Option<V>, version: u64, token: Option<u64>, now: u64) -> Filled {
        if self.pending > 0 {
            if token != Some(self.pending_until) || now < self.pending_until {
                return Filled::Refused;
            }
            self.pending = 0;
            self.pending_until = 0;
            self.deleted = value.is_none();
            self.value = value;
            self.version = self.version.max(version);
            self.changed_at = now;
            return Filled::Repaired;
        }
        let holds = self.value.is_some() || self.deleted;
        match value {
            Some(value) if version > self.version || (!holds && version == self.version && version > 0) => {
                self.value = Some(value);
                self.deleted = false;
                self.version = version;
                self.changed_at = now;
                Filled::Copied
            }
            _ => Filled::Refused,
        }
    }

    /// Whether the slot holds no value, is settled, and has not changed for `older_than_ms` at
    /// `now`: safe to forget.
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
        assert!(s.apply(Change::Put("b"), 2, true, 1));
        assert!(!s.apply(Change::Put("a"), 1, true, 2), "an older write never overwrites a newer one");
        assert_eq!(s.lookup(3), Lookup::Hit("b"));
        assert!(s.apply(Change::Delete, 3, false, 4));
        assert_eq!(s.lookup(5), Lookup::Deleted);
        assert!(!s.apply(Change::Put("a"), 1, false, 6));
        assert_eq!(s.lookup(7), Lookup::Deleted, "a slower put never brings a deleted key back");
    }

    #[test]
    fn a_marked_key_is_served_by_nobody_until_every_write_settles() {
        let mut s = slot();
        assert!(s.apply(Change::Put("a"), 1, false, 0));
        s.mark(10, 100);
        s.mark(20, 100);
        assert_eq!(s.lookup(30), Lookup::Pending { token: 120, expired: false });
        s.apply(Change::Put("b"), 2, true, 40);
        assert!(matches!(s.lookup(50), Lookup::Pending { .. }), "the other write is still in flight");
        s.apply(Change::Put("c"), 3, true, 60);
        assert_eq!(s.lookup(70), Lookup::Hit("c"));
    }

    #[test]
    fn a_fill_never_overwrites_a_newer_value_or_delete() {
        let mut s = slot();
        s.apply(Change::Delete, 5, false, 0);
        assert_eq!(s.fill(Some("old"), 4, None, 1), Filled::Refused);
        assert_eq!(s.fill(Some("same"), 5, None, 1), Filled::Refused);
        assert_eq!(s.lookup(2), Lookup::Deleted);
        assert_eq!(s.fill(Some("new"), 6, None, 3), Filled::Copied);
        assert_eq!(s.lookup(4), Lookup::Hit("new"));
        assert_eq!(s.fill(Some("same version"), 6, None, 5), Filled::Refused);
    }

    #[test]
    fn an_invalidated_key_is_a_miss_that_the_same_version_may_fill() {
        let mut s = slot();
        s.apply(Change::Put("a"), 3, false, 0);
        assert!(s.apply(Change::Invalidate, 4, false, 1));
        assert_eq!(s.lookup(2), Lookup::Miss);
        assert_eq!(s.fill(Some("a"), 3, None, 3), Filled::Refused, "older than the invalidating write");
        assert_eq!(s.fill(Some("b"), 4, None, 4), Filled::Copied, "the invalidating write's own value");
        assert_eq!(s.lookup(5), Lookup::Hit("b"));
        assert_eq!(slot().fill(None, 0, None, 6), Filled::Refused, "nothing to copy");
    }

    #[test]
    fn a_pending_key_is_repaired_only_after_its_marks_expire_and_only_with_their_token() {
        let mut s = slot();
        s.apply(Change::Put("a"), 1, false, 0);
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
    fn a_repair_takes_olds_absence_as_a_delete_and_never_lowers_the_version() {
        let mut s = slot();
        s.apply(Change::Put("a"), 7, false, 0);
        s.mark(0, 10);
        assert_eq!(s.fill(None, 0, Some(10), 20), Filled::Repaired);
        assert_eq!(s.lookup(21), Lookup::Deleted);
        assert_eq!(s.version, 7);
        assert_eq!(s.fill(Some("old"), 7, None, 22), Filled::Refused);
    }

    #[test]
    fn tombstones_are_purged_only_when_settled_and_old_enough() {
        let mut s = slot();
        s.mark(0, 10);
        s.apply(Change::Delete, 3, false, 5);
        assert!(!s.purgeable(1_000, 100), "still pending");
        s.apply(Change::Delete, 3, true, 6);
        assert!(!s.purgeable(50, 100));
        assert!(s.purgeable(106, 100));
        s.apply(Change::Put("v"), 4, false, 200);
        assert!(!s.purgeable(10_000, 100), "a value is never purged");
    }
}
