//! The shop's stores: SQLite tables behind `shop_domain::Orders`. `#[zddm::backend]` registers
//! them from this crate, which the domain crate does not depend on.

use shop_domain::{Order, OrderKey, Orders, OrdersBackend, RepoError};
use zddm::{SqliteError, SqliteStore, Store};

/// Orders in one SQLite table.
pub struct SqliteOrders {
    table: SqliteStore<OrderKey, Order>,
}

impl SqliteOrders {
    pub fn open(path: &std::path::Path) -> Result<Self, SqliteError> {
        Ok(SqliteOrders { table: SqliteStore::open(path, "orders")? })
    }

    /// How many orders the table holds, read by the store itself (as a test would).
    pub async fn rows(&self) -> Result<usize, SqliteError> {
        self.table.len().await
    }
}

fn failed(error: SqliteError) -> RepoError {
    RepoError::Store(error.to_string())
}

#[zddm::backend]
impl Orders for SqliteOrders {
    async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
        self.table.get(key).await.map_err(failed)
    }

    async fn save_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
        self.table.put(key, order).await.map_err(failed)
    }

    async fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError> {
        self.table.delete(key).await.map_err(failed)
    }

    async fn archive(&self, key: &OrderKey) -> Result<bool, RepoError> {
        // The store's own methods, through `self`, as in any impl.
        let Some(order) = self.get_order(key).await? else { return Ok(false) };
        self.save_order(key, &Order { archived: true, ..order }).await?;
        Ok(true)
    }

    async fn count(&self) -> Result<usize, RepoError> {
        self.table.len().await.map_err(failed)
    }
}

/// Its keys in canonical order, so that a migration from or to it can be backfilled and verified.
impl zddm::cached::ScanKeys<OrderKey> for SqliteOrders {
    type Error = SqliteError;

    async fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<zddm::versioned::Page<OrderKey, ()>, SqliteError> {
        zddm::cached::ScanKeys::scan_keys(&self.table, after, limit).await
    }
}
