use zddm_suite::ui::{NewStore, OldStore, Order, OrderKey, RepoError};

#[zddm::migrate(old = OldStore, new = NewStore, mode = versioned)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&mut self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

fn main() {}
