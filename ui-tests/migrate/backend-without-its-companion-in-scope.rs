// `#[zddm::backend] impl Orders for Store` implements `OrdersBackend`, which `#[zddm::migrate]`
// declares beside `Orders`: importing `Orders` alone is not enough.
mod repository {
    use zddm_suite::ui::{Order, OrderKey, RepoError};

    #[zddm::migrate]
    pub trait Orders {
        fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
        fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
        fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
    }
}

mod stores {
    use crate::repository::Orders;
    use zddm_suite::ui::{Order, OrderKey, RepoError};

    pub struct Primary;

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
}

fn main() {}
