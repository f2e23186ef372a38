use zddm_suite::ui::{NewStore, OldStore, Order, OrderKey, RepoError};

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
    fn items(&self, key: &OrderKey) -> Result<u32, RepoError> {
        let order = self.get(key)?;
        Ok(order)
    }
}

zddm_suite::null_backend!(Orders for OldStore, key = OrderKey, error = RepoError);
zddm_suite::null_backend!(Orders for NewStore, key = OrderKey, error = RepoError);

fn main() {}
