use zddm_suite::ui::{NewStore, OldStore, Order, OrderKey, RepoError};

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

#[zddm::backend]
impl Orders for OldStore {
    fn get(&self, _: &OrderKey) -> Result<Option<Order>, RepoError> {
        Ok(Some(3))
    }
    fn put(&self, _: &OrderKey, _: &Order) -> Result<(), RepoError> {
        Ok(())
    }
    fn delete(&self, _: &OrderKey) -> Result<(), RepoError> {
        Ok(())
    }
}

zddm_suite::null_backend!(Orders for NewStore, key = OrderKey, error = RepoError);

fn main() {}
