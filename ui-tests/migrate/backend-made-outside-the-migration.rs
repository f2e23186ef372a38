// Making the backend a store is registered as, to call the repository on it directly: the
// migration's own constructor is not public, nor is the field. (`zddm::Backend::unguarded` is,
// named as the escape hatch it is, for test doubles.)
use zddm_suite::orders::{LegacyOrders, Order, OrderKey, Orders};

fn main() {
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let forged = zddm::__private::register(LegacyOrders::default());
    Orders::put_order(&forged, &key, &Order { items: 1 }).unwrap();
}
