//! `#[zddm::backend]`: registers an impl of a migrating repository as one of its stores.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::{parse_quote, ImplItem, ItemImpl, PathArguments};

use crate::errors::Errors;
use crate::receiver;

// Input:
//     #[zddm::backend]
//     impl Orders for PgOrders {
//         async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> { … self.pool … }
//     }
//
// Output:
//     impl OrdersBackend for PgOrders {
//         async fn get_order(__zddm_self: &::zddm::Backend<Self>, key: &OrderKey) -> … { … __zddm_self.pool … }
//     }
//
// `OrdersBackend` is the companion trait `#[zddm::migrate]` declares next to `Orders`, and
// `Backend<T>` implements `Orders` for every `T: OrdersBackend`. A store's methods thus take a
// `Backend`, which only the migration makes: nothing else can call them, in this crate or any
// other, and the impl may live in the store's crate (`impl Orders for Backend<PgOrders>` there
// would break the orphan rule). `Backend` derefs to the store, so the bodies are unchanged.
//
// zddm's own store traits (`Source<K, V>`, `Target<K, V>`, `Cache<K, V>`, `ScanKeys<K>`, all
// generic, which a migrating repository never is) are implemented on `Backend<PgOrders>`.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(&args, "#[zddm::backend] takes no arguments: write `#[zddm::backend]`"));
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
    let generic = item
        .trait_
        .as_ref()
        .and_then(|(path, _)| path.segments.last())
        .is_some_and(|last| !matches!(last.arguments, PathArguments::None));
    if generic {
        let self_ty = item.self_ty.clone();
        *item.self_ty = parse_quote!(::zddm::Backend<#self_ty>);
        let errors = errors.finish().err().map(|error| error.to_compile_error());
        return quote!(#errors #item);
    }
    // The trait as the user named it is still used (its import is not a warning).
    let named = item.trait_.as_ref().map(|(path, _)| path.clone());
    companion(&mut item, &mut errors);
    let errors = errors.finish().err().map(|error| error.to_compile_error());
    quote! {
        #errors
        #item
        const _: () = {
            #[allow(dead_code)]
            fn registered<T: ?::core::marker::Sized + #named>() {}
        };
    }
}

/// `impl Orders for T { … }` as `impl OrdersBackend for T { … }`, each receiver a `Backend<Self>`.
fn companion(item: &mut ItemImpl, errors: &mut Errors) {
    if let Some((path, _)) = &mut item.trait_ {
        if let Some(last) = path.segments.last_mut() {
            last.ident = format_ident!("{}Backend", last.ident, span = last.ident.span());
        }
    }
    // A method whose receiver cannot be lent is reported and left out: the companion trait has no
    // such method either, so keeping it would only add an error.
    item.items.retain_mut(|impl_item| {
        let ImplItem::Fn(method) = impl_item else { return true };
        if !receiver::rewrite_signature(&mut method.sig) {
            if let Some(syn::FnArg::Receiver(receiver)) = method.sig.inputs.first() {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "the migration lends its stores to each call: take `&self` or `&mut self` here",
                ));
            }
            return false;
        }
        receiver::rewrite_items(&mut method.sig);
        // `#[tracing::instrument(skip(self))]` names the receiver too.
        for attr in &mut method.attrs {
            if let syn::Meta::List(list) = &mut attr.meta {
                list.tokens = receiver::rename_self(list.tokens.clone());
            }
        }
        match syn::parse2(receiver::rename_self(method.block.to_token_stream())) {
            Ok(block) => method.block = block,
            Err(error) => errors.push(error),
        }
        true
    });
}
