use zddm_suite::ui::{OldStore, Order, OrderKey, RepoError};

#[zddm::migrate(old = OldStore)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

fn main() {}
