//! What a backfill and a verification need from a [`Proxy`] over two plain stores: each key copied,
//! compared or repaired under the key's lock, as a read-through copies it, so that no write of this
//! process can slip between the read of OLD and the change in NEW.

use crate::cached::ScanKeys;
use crate::error::{Error, Op, Side};
use crate::key::MigrationKey;
use crate::store::Store;
use crate::verify::Verdict;
use crate::versioned::{Copied, Lookup, Page};

use super::stats::bump;
use super::Proxy;

impl<K, V, Old, New> Proxy<K, V, Old, New>
where
    K: MigrationKey + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V>,
    New: Store<K, V>,
{
    /// The key's bucket, if the phase and the gate read it from NEW now.
    fn reads_from_new(&self, key: &K) -> Option<u64> {
        let bucket = self.inner.gate.try_bucket(key).ok()?;
        self.reads_through(self.phase(), bucket).then_some(bucket)
    }

    /// A backfill's copy of `key`: OLD's value inserted into NEW if NEW has none, with the key
    /// locked. A key left in doubt is removed from NEW first, as a read would.
    pub(crate) async fn copy_key(&self, key: &K) -> Result<Copied, Error> {
        let Some(bucket) = self.reads_from_new(key) else { return Ok(Copied::Outside) };
        let (mut guard, _) = self.inner.locks.lock(bucket).await;
        if !self.reads_through(self.phase(), bucket) {
            return Ok(Copied::Outside);
        }
        if guard.is_abandoned(key) {
            self.inner.new.delete(key).await.map_err(|e| self.fail(Side::New, Op::Delete, e))?;
            guard.settle(key);
            bump(&self.inner.stats.repairs);
        }
        let Some(value) = self.read_old(key).await? else { return Ok(Copied::Newer) };
        let inserted =
            self.inner.new.insert_if_absent(key, &value).await.map_err(|e| self.fail(Side::New, Op::Insert, e))?;
        bump(if inserted { &self.inner.stats.backfills } else { &self.inner.stats.backfills_skipped });
        Ok(if inserted { Copied::Copied } else { Copied::Newer })
    }

    /// How `key` compares in OLD and NEW now, with the key locked. A key a write left in doubt is
    /// read first (which repairs it, in the phases that read NEW).
    pub(crate) async fn compare(&self, key: &K) -> Result<Verdict, Error> {
        let bucket = self.inner.gate.try_bucket(key).unwrap_or(0);
        let mut guard = self.inner.locks.lock(bucket).await.0;
        if guard.is_abandoned(key) {
            drop(guard);
            self.get(key).await?;
            guard = self.inner.locks.lock(bucket).await.0;
            if guard.is_abandoned(key) {
                return Ok(Verdict::InDoubt);
            }
        }
        let old = self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, Op::Get, e))?;
        let new = self.inner.new.get(key).await.map_err(|e| self.fail(Side::New, Op::Get, e))?;
        drop(guard);
        // A plain store answers a value or nothing: a hit or a miss, in the verifier's one table.
        Ok(Verdict::of(old.as_ref(), &new.map_or(Lookup::Miss, Lookup::Hit)))
    }

    /// Makes NEW hold what OLD holds for `key` (its value, or nothing), with the key locked, where
    /// the phase and the gate read the key from NEW: a verifier's repair.
    pub async fn repair(&self, key: &K) -> Result<Copied, Error> {
        let Some(bucket) = self.reads_from_new(key) else { return Ok(Copied::Outside) };
        let (mut guard, _) = self.inner.locks.lock(bucket).await;
        if !self.reads_through(self.phase(), bucket) {
            return Ok(Copied::Outside);
        }
        match self.read_old(key).await? {
            Some(value) => self.inner.new.put(key, &value).await.map_err(|e| self.fail(Side::New, Op::Put, e))?,
            None => self.inner.new.delete(key).await.map_err(|e| self.fail(Side::New, Op::Delete, e))?,
        }
        guard.settle(key);
        bump(&self.inner.stats.repairs);
        Ok(Copied::Copied)
    }

    /// Whether one side holds `key`.
    pub(crate) async fn holds(&self, side: Side, key: &K) -> Result<bool, Error> {
        let found = match side {
            Side::Old => self.inner.old.get(key).await.map_err(|e| self.fail(side, Op::Get, e))?,
            Side::New => self.inner.new.get(key).await.map_err(|e| self.fail(side, Op::Get, e))?,
        };
        Ok(found.is_some())
    }

    /// Up to `limit` keys after `after`, in canonical order, whose NEW copy is in doubt.
    pub(crate) async fn doubtful_keys(&self, after: Option<&[u8]>, limit: usize) -> Vec<Vec<u8>> {
        let mut keys = self.inner.locks.abandoned_keys().await;
        keys.retain(|key| after.map_or(true, |after| key.as_slice() > after));
        keys.sort_unstable();
        keys.truncate(limit);
        keys
    }

    /// A page of OLD's keys.
    pub(crate) async fn scan_old_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, ()>, Error>
    where
        Old: ScanKeys<K>,
    {
        self.inner.old.scan_keys(after, limit).await.map_err(|e| self.fail(Side::Old, Op::Scan, e))
    }

    /// A page of NEW's keys.
    pub(crate) async fn scan_new_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, ()>, Error>
    where
        New: ScanKeys<K>,
    {
        self.inner.new.scan_keys(after, limit).await.map_err(|e| self.fail(Side::New, Op::Scan, e))
    }
}
