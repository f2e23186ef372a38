// In the trait's own module the migrating type's fields are visible, as any private field is; they
// still do not lead to a store.
use zddm::{Gate, Rate, Store};
use zddm_suite::ui::{Order, OrderKey, RepoError};

#[zddm::migrate(old = Primary, new = Replica)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

pub struct Primary;
pub struct Replica;

zddm_suite::null_backend!(Orders for Primary, key = OrderKey, error = RepoError);
zddm_suite::null_backend!(Orders for Replica, key = OrderKey, error = RepoError);

fn main() {
    let orders = OrdersMigration::new(Primary, Replica, Gate::new("orders", Rate::ALL));
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let _ = orders.old.put(&key, &Order { items: 1 });
    let _ = orders.new.0;
    let _ = orders.proxy.old();
}
