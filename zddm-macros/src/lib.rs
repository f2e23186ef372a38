//! Procedural macros for `zddm`. Use them through the `zddm` crate, which re-exports them and holds
//! the runtime their expansions call.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// See `zddm::MigrationKey`.
#[proc_macro_derive(MigrationKey, attributes(zddm))]
pub fn derive_migration_key(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
