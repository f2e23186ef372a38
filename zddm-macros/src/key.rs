//! `#[derive(MigrationKey)]`: parse (`ast`, `attr`) → validate (`valid`) → generate (`expand`).

mod ast;
mod attr;
mod expand;
mod valid;

pub use expand::derive;
