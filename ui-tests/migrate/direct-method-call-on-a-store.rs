use zddm_suite::orders::{LegacyOrders, Order, OrderKey};

fn main() {
    let legacy = LegacyOrders::default();
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    legacy.put_order(&key, &Order { items: 1 }).unwrap();
}
