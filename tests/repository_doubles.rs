//! Test doubles during a migration: code that takes an `impl Orders` is tested with a fake, the
//! fake registered like any store (`#[zddm::backend]`, in the trait's crate) and made a backend
//! through the named escape hatch, `zddm::Backend::unguarded`. The same code runs on the migration.

use std::collections::HashMap;
use std::sync::Mutex;

use zddm::{Backend, Gate, Rate};
use zddm_suite::ui::{Order, OrderKey, RepoError};

#[zddm::migrate(old = LegacyOrders, new = ModernOrders)]
pub trait Orders {
    fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
}

#[derive(Default)]
pub struct LegacyOrders(Mutex<HashMap<(u32, String), Order>>);
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

/// The application's code under test: it knows the trait, nothing else.
fn restock(orders: &impl Orders, key: &OrderKey) -> Result<u32, RepoError> {
    let items = orders.get_order(key)?.map_or(0, |order| order.items) + 10;
    orders.put_order(key, &Order { items })?;
    Ok(items)
}

/// A fake that records the calls it gets.
#[derive(Default)]
struct FakeOrders {
    rows: Mutex<HashMap<(u32, String), Order>>,
    calls: Mutex<Vec<&'static str>>,
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

#[test]
fn a_fake_stands_in_for_the_repository_and_the_migration_runs_the_same_code() {
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let fake = Backend::unguarded(FakeOrders::default());
    assert_eq!(restock(&fake, &key).unwrap(), 10);
    assert_eq!(restock(&fake, &key).unwrap(), 20);
    assert_eq!(*fake.calls.lock().unwrap(), ["get", "put", "get", "put"], "the fake saw every call");

    let migration = OrdersMigration::new(LegacyOrders::default(), ModernOrders::default(), Gate::new("d", Rate::ALL));
    assert_eq!(restock(&migration, &key).unwrap(), 10);
    assert_eq!(restock(&migration, &key).unwrap(), 20);
    assert_eq!(migration.proxy().stats().reads_from_new, 1, "the second read was served by NEW");
}
