// `proxy()` is the documented handle for the gate, phase and stats. It hands out no store, so a
// write to one side alone (or a second proxy built over the stores) does not compile.
use zddm::{Gate, Rate, Store};
use zddm_suite::orders::{LegacyOrders, ModernOrders, Order, OrderKey, OrdersMigration};

fn main() {
    let orders = OrdersMigration::new(LegacyOrders::default(), ModernOrders::default(), Gate::new("o", Rate::ALL));
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    zddm::block_on(orders.proxy().old().put(&key, &Order { items: 1 })).unwrap();
    zddm::block_on(orders.proxy().new_store().delete(&key)).unwrap();
}
