//! The control: a proxy with the seed library's semantics, kept so that each race test shows it
//! catches the defect (the test must fail against this proxy and pass against `zddm::Proxy`).
//!
//! Read-through copies with a plain put; writes go to NEW only while the gate admits the key (no
//! high-water mark); nothing is serialised; NEW failures propagate or leave NEW stale.

use zddm::{BoxError, Gate, MigrationKey, Proxy, Store};

/// What the race tests need of a migrating proxy.
#[allow(async_fn_in_trait)]
pub trait Migrating<K: ?Sized, V> {
    async fn get(&self, key: &K) -> Result<Option<V>, BoxError>;
    async fn put(&self, key: &K, value: &V) -> Result<(), BoxError>;
    async fn delete(&self, key: &K) -> Result<(), BoxError>;
}

pub struct NaiveProxy<Old, New> {
    pub old: Old,
    pub new: New,
    pub gate: Gate,
}

impl<K, V, Old, New> Migrating<K, V> for NaiveProxy<Old, New>
where
    K: MigrationKey + ?Sized + Sync,
    V: Send + Sync,
    Old: Store<K, V>,
    New: Store<K, V>,
{
    async fn get(&self, key: &K) -> Result<Option<V>, BoxError> {
        if !self.gate.admits(key) {
            return Ok(self.old.get(key).await?);
        }
        if let Some(value) = self.new.get(key).await? {
            return Ok(Some(value));
        }
        let value = self.old.get(key).await?;
        if let Some(value) = &value {
            self.new.put(key, value).await?;
        }
        Ok(value)
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), BoxError> {
        self.old.put(key, value).await?;
        if self.gate.admits(key) {
            self.new.put(key, value).await?;
        }
        Ok(())
    }

    async fn delete(&self, key: &K) -> Result<(), BoxError> {
        self.old.delete(key).await?;
        if self.gate.admits(key) {
            self.new.delete(key).await?;
        }
        Ok(())
    }
}

impl<K, V, Old, New> Migrating<K, V> for Proxy<K, V, Old, New>
where
    K: MigrationKey + ?Sized + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V>,
    New: Store<K, V>,
{
    async fn get(&self, key: &K) -> Result<Option<V>, BoxError> {
        Ok(Proxy::get(self, key).await?)
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), BoxError> {
        Ok(Proxy::put(self, key, value).await?)
    }

    async fn delete(&self, key: &K) -> Result<(), BoxError> {
        Ok(Proxy::delete(self, key).await?)
    }
}
