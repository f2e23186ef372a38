//! Test doubles during a migration: code that takes an `impl Orders` is tested with a fake
//! (`zddm_suite::orders::FakeOrders`), registered like any store with `#[zddm::backend]` in the
//! trait's crate and made a backend through the named escape hatch, `zddm::Backend::unguarded`. The
//! same code runs on the migration. A synchronous repository trait stays dyn-compatible, so code
//! that holds a `Box<dyn Orders>` or an `Arc<dyn Orders>` keeps working through the migration.

use zddm::{Backend, Gate, Rate};
use zddm_suite::orders::{FakeOrders, LegacyOrders, ModernOrders, Order, OrderKey, Orders, OrdersMigration, RepoError};

/// The application's code under test: it knows the trait, nothing else.
fn restock<O: Orders + ?Sized>(orders: &O, key: &OrderKey) -> Result<u32, RepoError> {
    let items = orders.get_order(key)?.map_or(0, |order| order.items) + 10;
    orders.put_order(key, &Order { items })?;
    Ok(items)
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

/// The application's code holding the repository as a trait object.
fn restock_dyn(orders: &dyn Orders, key: &OrderKey) -> Result<u32, RepoError> {
    restock(orders, key)
}

#[test]
fn the_migration_and_a_fake_are_both_trait_objects() {
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let migration = OrdersMigration::new(LegacyOrders::default(), ModernOrders::default(), Gate::new("d", Rate::ALL));
    let repositories: Vec<std::sync::Arc<dyn Orders + Send + Sync>> =
        vec![std::sync::Arc::new(migration), std::sync::Arc::new(Backend::unguarded(FakeOrders::default()))];
    for orders in &repositories {
        assert_eq!(restock_dyn(&**orders, &key).unwrap(), 10);
        assert_eq!(restock_dyn(&**orders, &key).unwrap(), 20);
    }
}
