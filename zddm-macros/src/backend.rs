//! `#[zddm::backend]`: registers an impl of a migrating repository as one of its stores.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{parse_quote, ItemImpl};

// Input:
//     #[zddm::backend]
//     impl OrderRepo for PgOrders { … }
//
// Output:
//     impl OrderRepo for ::zddm::Backend<PgOrders> { … }
//
// `Backend<PgOrders>` derefs to `PgOrders`, so the bodies are unchanged; only the migration can make
// one, so nothing else can call the repository on this store.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut error = None;
    if !args.is_empty() {
        error = Some(syn::Error::new_spanned(&args, "#[zddm::backend] takes no arguments: write `#[zddm::backend]`"));
    }
    let mut item = match syn::parse2::<ItemImpl>(item.clone()) {
        Ok(item) if item.trait_.is_some() => item,
        _ => {
            let error = syn::Error::new_spanned(
                &item,
                "#[zddm::backend] goes on an impl of a migrating repository trait: `#[zddm::backend] impl OrderRepo for PgOrders { … }`",
            );
            let mut out = error.to_compile_error();
            out.extend(item);
            return out;
        }
    };
    let self_ty = item.self_ty.clone();
    *item.self_ty = parse_quote!(::zddm::Backend<#self_ty>);
    let error = error.map(|error| error.to_compile_error());
    quote!(#error #item)
}
