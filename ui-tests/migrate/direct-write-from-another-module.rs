mod repository {
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
}

use repository::{Orders, Primary};
use zddm_suite::ui::{Order, OrderKey};

fn save_everywhere(orders: &impl Orders, key: &OrderKey) {
    orders.put(key, &Order { items: 1 }).unwrap();
}

fn main() {
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    save_everywhere(&Primary, &key);
}
