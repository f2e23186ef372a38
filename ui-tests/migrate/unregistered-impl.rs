use zddm_suite::ui::{NewStore, OldStore, Order, OrderKey, RepoError};

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

zddm_suite::null_backend!(Orders for OldStore, key = OrderKey, error = RepoError);
zddm_suite::null_backend!(Orders for NewStore, key = OrderKey, error = RepoError);

/// Not a store of the migration, but it implements the repository anyway.
pub struct Cache;

impl Orders for Cache {
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

fn main() {}
