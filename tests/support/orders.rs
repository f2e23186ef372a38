//! A complete migrating repository, defined in this crate so that tests in other crates (the
//! ui-tests) can try to bypass it.

use std::collections::HashMap;
use std::sync::Mutex;

pub use crate::ui::{Order, OrderKey, RepoError};

#[zddm::migrate(old = LegacyOrders, new = ModernOrders)]
pub trait Orders {
    fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
}

/// The OLD store.
#[derive(Default)]
pub struct LegacyOrders(Mutex<HashMap<(u32, String), Order>>);
/// The NEW store.
#[derive(Default)]
pub struct ModernOrders(Mutex<HashMap<(u32, String), Order>>);

macro_rules! map_backend {
    ($store:ident) => {
        #[zddm::backend]
        impl Orders for $store {
            fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
                Ok(self.0.lock().unwrap().get(&(key.tenant, key.order.clone())).cloned())
            }
            fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
                self.0.lock().unwrap().insert((key.tenant, key.order.clone()), order.clone());
                Ok(())
            }
            fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError> {
                self.0.lock().unwrap().remove(&(key.tenant, key.order.clone()));
                Ok(())
            }
        }
    };
}

map_backend!(LegacyOrders);
map_backend!(ModernOrders);

/// A test double of the repository: registered like a store, it stands in for `OrdersMigration`
/// as `zddm::Backend::unguarded(FakeOrders::default())`, and records the calls it gets.
#[derive(Default)]
pub struct FakeOrders {
    pub rows: Mutex<HashMap<(u32, String), Order>>,
    pub calls: Mutex<Vec<&'static str>>,
}

#[zddm::backend]
impl Orders for FakeOrders {
    fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
        self.calls.lock().unwrap().push("get");
        Ok(self.rows.lock().unwrap().get(&(key.tenant, key.order.clone())).cloned())
    }
    fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
        self.calls.lock().unwrap().push("put");
        self.rows.lock().unwrap().insert((key.tenant, key.order.clone()), order.clone());
        Ok(())
    }
    fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError> {
        self.calls.lock().unwrap().push("delete");
        self.rows.lock().unwrap().remove(&(key.tenant, key.order.clone()));
        Ok(())
    }
}
