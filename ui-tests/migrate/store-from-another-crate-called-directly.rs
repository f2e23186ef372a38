// The trait in `shop-domain`, its store registered in `shop-stores`: the application holds the
// store, and neither the trait nor the store's companion impl lets it write around the migration.
use shop_domain::{Order, OrderKey, Orders, OrdersBackend};
use shop_stores::SqliteOrders;

fn main() {
    let store = SqliteOrders::open(std::path::Path::new("orders.db")).unwrap();
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let order = Order { items: 1, archived: false };
    let _ = Orders::save_order(&store, &key, &order);
    let _ = OrdersBackend::save_order(&store, &key, &order);
}
