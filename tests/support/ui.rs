//! Small pieces the ui-tests share (each ui-test compiles as its own crate).

use std::fmt;

use zddm::MigrationKey;

/// A store type for the OLD side of a repository.
pub struct OldStore;
/// A store type for the NEW side of a repository.
pub struct NewStore;

/// A repository error that can carry a migration failure.
#[derive(Debug)]
pub struct RepoError;

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("repository error")
    }
}

impl std::error::Error for RepoError {}

impl From<zddm::Error> for RepoError {
    fn from(_: zddm::Error) -> Self {
        RepoError
    }
}

#[derive(MigrationKey, Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub tenant: u32,
    pub order: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub items: u32,
}

/// `#[zddm::backend] impl $repository for $store` with a `get`, `put` and `delete` that do nothing:
/// for ui-tests whose mistake lies elsewhere, so each shows only its own error.
#[macro_export]
macro_rules! null_backend {
    ($repository:ident for $store:ty, key = $key:ty, error = $error:ty) => {
        #[zddm::backend]
        impl $repository for $store {
            fn get(&self, _: &$key) -> Result<Option<$crate::ui::Order>, $error> {
                Ok(None)
            }
            fn put(&self, _: &$key, _: &$crate::ui::Order) -> Result<(), $error> {
                Ok(())
            }
            fn delete(&self, _: &$key) -> Result<(), $error> {
                Ok(())
            }
        }
    };
}
