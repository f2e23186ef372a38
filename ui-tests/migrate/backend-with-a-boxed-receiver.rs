use zddm_suite::ui::{Order, OrderKey, RepoError};

#[zddm::migrate(old = Primary, new = Primary)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
    fn close(self: Box<Self>) {}
}

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
    fn close(self: Box<Self>) {}
}

fn main() {}
