// Building the backend a store is registered as by hand, to call the repository on it directly:
// its field is private to zddm.
use zddm_suite::orders::{LegacyOrders, Order, OrderKey, Orders};

fn main() {
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let forged = zddm::Backend { __zddm_store: LegacyOrders::default() };
    Orders::put_order(&forged, &key, &Order { items: 1 }).unwrap();
}
