//! Procedural macros for `zddm`. Use them through the `zddm` crate, which re-exports them and holds
//! the runtime their expansions call.

mod backend;
mod errors;
mod key;
mod migrate;
mod receiver;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// See `zddm::MigrationKey`.
#[proc_macro_derive(MigrationKey, attributes(zddm))]
pub fn derive_migration_key(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    key::derive(&input).into()
}

/// See `zddm::migrate`.
#[proc_macro_attribute]
pub fn migrate(args: TokenStream, item: TokenStream) -> TokenStream {
    migrate::expand(args.into(), item.into()).into()
}

/// See `zddm::backend`.
#[proc_macro_attribute]
pub fn backend(args: TokenStream, item: TokenStream) -> TokenStream {
    backend::expand(args.into(), item.into()).into()
}
