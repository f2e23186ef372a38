// A method call on a store, with the trait imported as the application does.
use zddm_suite::orders::{LegacyOrders, Order, OrderKey, Orders};

fn main() {
    let legacy = LegacyOrders::default();
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    legacy.put_order(&key, &Order { items: 1 }).unwrap();
}
