use zddm_suite::ui::{NewStore, OldStore, Order, RepoError};

pub struct Sku(f64);

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get(&self, key: &Sku) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &Sku, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &Sku) -> Result<(), RepoError>;
}

zddm_suite::null_backend!(Orders for OldStore, key = Sku, error = RepoError);
zddm_suite::null_backend!(Orders for NewStore, key = Sku, error = RepoError);

fn main() {}
