use zddm_suite::ui::{Order, OrderKey};

#[derive(Debug)]
pub struct RepoError(String);

impl From<zddm::Error> for RepoError {
    fn from(error: zddm::Error) -> Self {
        RepoError(error.to_string())
    }
}

#[zddm::migrate(old = Primary, new = Primary)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

pub struct Primary;

zddm_suite::null_backend!(Orders for Primary, key = OrderKey, error = RepoError);

fn main() {}
