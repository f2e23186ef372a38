//! The orders of a shop, as its domain sees them: which stores hold them is decided elsewhere.
//! `#[zddm::migrate]` names no store here, so the migration is generic over them: the crates with
//! the stores depend on this one, register them with `#[zddm::backend]`, and the application
//! makes `OrdersMigration::new(old, new, gate)` from two of them.

use serde::{Deserialize, Serialize};

#[derive(zddm::MigrationKey, Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderKey {
    pub tenant: u32,
    pub order: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub items: u32,
    pub archived: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("the store failed: {0}")]
    Store(String),
    #[error(transparent)]
    Migration(#[from] zddm::Error),
}

#[zddm::migrate]
#[allow(async_fn_in_trait)] // the application calls it from its own tasks; the migration's routed futures are `Send`
pub trait Orders {
    async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    async fn save_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    async fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    /// Another write of the same key: routed as an update.
    #[zddm(write)]
    async fn archive(&self, key: &OrderKey) -> Result<bool, RepoError>;
    #[zddm(old)]
    async fn count(&self) -> Result<usize, RepoError>;

    /// A default method: the migration runs it as written, over its routed methods.
    async fn items_of(&self, keys: &[OrderKey]) -> Result<u32, RepoError> {
        let mut items = 0;
        for key in keys {
            items += self.get_order(key).await?.map_or(0, |order| order.items);
        }
        Ok(items)
    }
}
