//! The order repository as an application has it: a trait and two stores implementing it. The zddm
//! attributes are the only migration-specific lines; `tests/repository_without_attributes.rs`
//! removes them and checks that what is left compiles as plain Rust.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

/// Orders are keyed by tenant and order number.
#[derive(zddm::MigrationKey, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    pub tenant: u32,
    pub number: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub items: u32,
    pub total_cents: u64,
}

#[derive(Debug)]
pub struct RepoError(pub String);

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order repository: {}", self.0)
    }
}

impl std::error::Error for RepoError {}

impl From<zddm::Error> for RepoError {
    fn from(error: zddm::Error) -> Self {
        RepoError(error.to_string())
    }
}

#[zddm::migrate(old = LegacyOrders, new = OrderService)]
#[allow(async_fn_in_trait)]
pub trait Orders {
    async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    async fn save_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    async fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    /// Not keyed: answered by the OLD store, which still has every order.
    #[zddm(old)]
    async fn count_orders(&self) -> Result<usize, RepoError>;
}

/// The store being retired: a table behind a lock.
#[derive(Default)]
pub struct LegacyOrders {
    rows: Mutex<BTreeMap<(u32, String), Order>>,
}

/// The store being migrated to.
#[derive(Default)]
pub struct OrderService {
    documents: Mutex<BTreeMap<OrderKey, Order>>,
}

#[zddm::backend]
impl Orders for LegacyOrders {
    async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
        Ok(self.rows.lock().map_err(|_| RepoError("poisoned".into()))?.get(&(key.tenant, key.number.clone())).cloned())
    }

    async fn save_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
        self.rows
            .lock()
            .map_err(|_| RepoError("poisoned".into()))?
            .insert((key.tenant, key.number.clone()), order.clone());
        Ok(())
    }

    async fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError> {
        self.rows.lock().map_err(|_| RepoError("poisoned".into()))?.remove(&(key.tenant, key.number.clone()));
        Ok(())
    }

    async fn count_orders(&self) -> Result<usize, RepoError> {
        Ok(self.rows.lock().map_err(|_| RepoError("poisoned".into()))?.len())
    }
}

#[zddm::backend]
impl Orders for OrderService {
    async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
        Ok(self.documents.lock().map_err(|_| RepoError("poisoned".into()))?.get(key).cloned())
    }

    async fn save_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
        self.documents.lock().map_err(|_| RepoError("poisoned".into()))?.insert(key.clone(), order.clone());
        Ok(())
    }

    async fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError> {
        self.documents.lock().map_err(|_| RepoError("poisoned".into()))?.remove(key);
        Ok(())
    }

    async fn count_orders(&self) -> Result<usize, RepoError> {
        Ok(self.documents.lock().map_err(|_| RepoError("poisoned".into()))?.len())
    }
}

impl LegacyOrders {
    /// The store as it is before the migration, with its existing rows.
    pub fn with_rows(rows: impl IntoIterator<Item = (OrderKey, Order)>) -> Self {
        let rows = rows.into_iter().map(|(key, order)| ((key.tenant, key.number), order)).collect();
        LegacyOrders { rows: Mutex::new(rows) }
    }

    /// A bulk loader the application had before the migration: a write no macro can see, as it
    /// is not the trait's. `clippy.toml` lists it in `disallowed-methods`, so that `cargo clippy`
    /// flags every call of it (docs/repository-macro.md).
    pub fn import(&self, rows: impl IntoIterator<Item = (OrderKey, Order)>) {
        let mut table = self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.extend(rows.into_iter().map(|(key, order)| ((key.tenant, key.number), order)));
    }
}
