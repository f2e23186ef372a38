use zddm_suite::ui::{Order, OrderKey, RepoError};

pub struct OldStore;
pub struct NewStore;

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    // Another key type.
    #[zddm(delete)]
    fn purge(&self, ids: impl IntoIterator<Item = u64>) -> Result<(), RepoError>;
    // An entry that is half borrowed.
    #[zddm(write)]
    fn put_each<'a>(&self, entries: impl Iterator<Item = (&'a OrderKey, Order)>) -> Result<(), RepoError>;
}

fn main() {}
