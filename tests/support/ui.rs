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
