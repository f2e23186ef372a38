//! A layered application: the repository trait in a domain crate (`shop-domain`, whose
//! `#[zddm::migrate]` names no store), its stores registered with `#[zddm::backend]` in an
//! infrastructure crate that depends on it (`shop-stores`), and the migration made here, in the
//! application, from two of them. Over real SQLite files: every routed kind keeps OLD and NEW in
//! step, and the migration is backfilled, verified and completed.

use shop_domain::{Order, OrderKey, Orders, OrdersMigration};
use shop_stores::SqliteOrders;
use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::verify::Verify;
use zddm::{block_on, Gate, Phase, Rate, SqliteStore, Store};

fn key(n: u32) -> OrderKey {
    OrderKey { tenant: n % 3, order: format!("A-{n}") }
}

fn order(items: u32) -> Order {
    Order { items, archived: false }
}

/// What a table holds, read beside the migration (as an operator would, not through it).
fn table(path: &std::path::Path) -> SqliteStore<OrderKey, Order> {
    SqliteStore::open(path, "orders").unwrap()
}

/// Every key NEW holds has OLD's value: NEW is a cache of OLD that is never wrong.
fn in_step(
    old: &SqliteStore<OrderKey, Order>,
    new: &SqliteStore<OrderKey, Order>,
    keys: impl Iterator<Item = OrderKey>,
) {
    for key in keys {
        if let Some(cached) = block_on(new.get(&key)).unwrap() {
            assert_eq!(block_on(old.get(&key)).unwrap(), Some(cached), "{key:?}: NEW serves a value OLD does not hold");
        }
    }
}

#[tokio::test]
async fn stores_registered_in_another_crate_are_migrated_and_completed() {
    let dir = tempfile::tempdir().unwrap();
    let (old_path, new_path) = (dir.path().join("legacy.db"), dir.path().join("modern.db"));
    let (old_rows, new_rows) = (table(&old_path), table(&new_path));
    for n in 0..30 {
        block_on(old_rows.put(&key(n), &order(n))).unwrap();
    }

    // The application picks the stores; the domain crate never named them.
    let orders: OrdersMigration<SqliteOrders, SqliteOrders> = OrdersMigration::new(
        SqliteOrders::open(&old_path).unwrap(),
        SqliteOrders::open(&new_path).unwrap(),
        Gate::new("orders", Rate::ALL),
    );

    // Read-through: OLD's value, and NEW now holds it.
    assert_eq!(orders.get_order(&key(4)).await.unwrap(), Some(order(4)));
    assert_eq!(block_on(new_rows.get(&key(4))).unwrap(), Some(order(4)));
    // Write-through, on both.
    orders.save_order(&key(4), &order(40)).await.unwrap();
    assert_eq!(
        (block_on(old_rows.get(&key(4))).unwrap(), block_on(new_rows.get(&key(4))).unwrap()),
        (Some(order(40)), Some(order(40)))
    );
    // The update the store implements with its own methods: OLD changes, NEW's copy goes.
    assert!(orders.archive(&key(4)).await.unwrap());
    assert_eq!(block_on(old_rows.get(&key(4))).unwrap(), Some(Order { items: 40, archived: true }));
    assert_eq!(block_on(new_rows.get(&key(4))).unwrap(), None);
    assert_eq!(orders.get_order(&key(4)).await.unwrap(), Some(Order { items: 40, archived: true }));
    // Delete, from both.
    orders.get_order(&key(5)).await.unwrap();
    orders.delete_order(&key(5)).await.unwrap();
    assert_eq!((block_on(old_rows.get(&key(5))).unwrap(), block_on(new_rows.get(&key(5))).unwrap()), (None, None));
    // Passed through to OLD, and a default method over the routed read.
    assert_eq!(orders.count().await.unwrap(), 29);
    assert_eq!(orders.items_of(&[key(1), key(2), key(5)]).await.unwrap(), 3);
    in_step(&old_rows, &new_rows, (0..30).map(key));

    // Finished like any migration: backfill, verify, complete.
    orders.proxy().set_phase(Phase::Live).unwrap();
    let done = Backfill::new(orders.proxy()).batch(7).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await;
    assert_eq!(done.unwrap().scanned, 29);
    let report = Verify::new(orders.proxy()).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    orders.proxy().set_phase(Phase::Complete).unwrap();
    assert_eq!(block_on(new_rows.len()).unwrap(), 29);
    in_step(&old_rows, &new_rows, (0..30).map(key));
    for n in (0..30).filter(|n| *n != 5) {
        assert!(orders.get_order(&key(n)).await.unwrap().is_some(), "{n}");
    }
}

#[tokio::test]
async fn two_migrations_over_different_stores_share_one_trait() {
    // The migrating type is generic over its stores: the same trait migrates between other pairs.
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let first = OrdersMigration::new(
        SqliteOrders::open(&path("a.db")).unwrap(),
        SqliteOrders::open(&path("b.db")).unwrap(),
        Gate::new("orders", Rate::ALL),
    );
    let second = OrdersMigration::new(
        SqliteOrders::open(&path("b.db")).unwrap(),
        SqliteOrders::open(&path("c.db")).unwrap(),
        Gate::new("orders", Rate::ALL),
    );
    first.save_order(&key(1), &order(1)).await.unwrap();
    assert_eq!(second.get_order(&key(1)).await.unwrap(), Some(order(1)));
    assert_eq!(block_on(table(&path("c.db")).get(&key(1))).unwrap(), Some(order(1)));
}
