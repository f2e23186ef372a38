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

    #[zddm::backend]
    impl Orders for Primary {
        fn get(&self, _: &OrderKey) -> Result<Option<Order>, RepoError> {
            Ok(None)
        }
        fn put(&self, _: &OrderKey, _: &Order) -> Result<(), RepoError> {
            Ok(())
        }
        fn delete(&self, _: &OrderKey) -> Result<(), RepoError> {
            Ok(())
        }
    }

    #[zddm::backend]
    impl Orders for Replica {
        fn get(&self, _: &OrderKey) -> Result<Option<Order>, RepoError> {
            Ok(None)
        }
        fn put(&self, _: &OrderKey, _: &Order) -> Result<(), RepoError> {
            Ok(())
        }
        fn delete(&self, _: &OrderKey) -> Result<(), RepoError> {
            Ok(())
        }
    }
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
