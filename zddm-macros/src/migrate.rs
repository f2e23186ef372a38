//! `#[zddm::migrate(old = …, new = …)]` on a repository trait: parse (`ast`, `attr`) → validate
//! (`valid`) → generate (`expand`).

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ItemTrait;

use crate::errors::Errors;

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let trait_item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(trait_item) => trait_item,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "#[zddm::migrate] goes on a repository trait: `#[zddm::migrate(old = OldStore, new = NewStore)] trait Repo { … }`",
            );
            let mut out = error.to_compile_error();
            out.extend(item);
            return out;
        }
    };
    let mut errors = Errors::default();
    let parsed = attr::parse_args(args, &mut errors);
    let repository = ast::Repository::from_syn(&trait_item, &mut errors);
    let table = repository.validate(parsed.mode, &mut errors);
    match (errors.finish(), parsed.complete(), table) {
        (Ok(()), Some(args), Some(table)) => expand::generate(&repository, &args, &table),
        (result, _, _) => {
            // The trait itself is still emitted (without zddm's attributes), so code using it does not
            // add errors of its own on top of the real one.
            let mut out = result.err().map(|error| error.to_compile_error()).unwrap_or_default();
            out.extend(expand::plain_trait(&trait_item).into_token_stream());
            // The store types are still used, so their imports do not turn into warnings too.
            for store in [&parsed.old, &parsed.new].into_iter().flatten() {
                out.extend(quote::quote! {
                    const _: ::core::marker::PhantomData<#store> = ::core::marker::PhantomData;
                });
            }
            out
        }
    }
}
