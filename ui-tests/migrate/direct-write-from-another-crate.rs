// The repository, its stores and its migration live in another crate (zddm_suite::orders).
use zddm_suite::orders::{LegacyOrders, Order, OrderKey, Orders};

fn main() {
    let legacy = LegacyOrders::default();
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    // Writing to the OLD store behind the migration's back:
    Orders::put_order(&legacy, &key, &Order { items: 1 }).unwrap();
}
