use zddm_suite::ui::{Order, OrderKey, RepoError};

pub struct OldStore;
pub struct NewStore;

#[zddm::migrate(old = OldStore, new = NewStore, mode = versioned)]
pub trait Orders {
    fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    #[zddm(write)]
    fn archive_order(&self, key: &OrderKey) -> Result<(), RepoError>;
}

fn main() {}
