use zddm_suite::ui::{Order, OrderKey, RepoError};

pub struct OldStore;
pub struct NewStore;

#[async_trait::async_trait]
#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    async fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    async fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    async fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

fn main() {}
