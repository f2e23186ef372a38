//! Code generation for `#[zddm::migrate]`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_quote, FnArg, ItemTrait, Pat, Signature, TraitItem, Type};

use super::ast::{Kind, Method, Repository};
use super::attr::{self, Args};
use super::valid::Table;

/// The trait as the user wrote it, without zddm's method attributes.
pub fn plain_trait(item: &ItemTrait) -> ItemTrait {
    let mut item = item.clone();
    for trait_item in &mut item.items {
        if let TraitItem::Fn(method) = trait_item {
            method.attrs.retain(|attr| !attr::is_zddm(attr));
        }
    }
    item
}

// Input:
//     #[zddm::migrate(old = PgOrders, new = RedisOrders)]
//     pub trait OrderRepo {
//         async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
//         async fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
//         async fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
//         #[zddm(old)]
//         async fn count(&self) -> Result<u64, RepoError>;
//     }
//
// Output:
//     #[diagnostic::on_unimplemented(/* "… use `OrderRepoMigration` instead" */)]
//     pub trait OrderRepo: ::zddm::__private::Registered<OrderRepoMigration> { /* as written */ }
//
//     pub struct OrderRepoMigration {
//         proxy: ::zddm::Proxy<OrderKey, Order, OrderRepoSide<PgOrders>, OrderRepoSide<RedisOrders>>,
//     }
//     impl OrderRepoMigration { pub fn new(old, new, gate) -> Self; pub fn build(…); pub fn proxy(&self) }
//     impl OrderRepo for OrderRepoMigration {
//         async fn get_order(&self, __zddm_arg1: &OrderKey) -> Result<Option<Order>, RepoError> {
//             self.proxy.get(__zddm_arg1).await.map_err(<RepoError as From<zddm::Error>>::from)
//         }
//         …put / delete likewise…
//         async fn count(&self) -> Result<u64, RepoError> {
//             <::zddm::Backend<PgOrders> as OrderRepo>::count(&self.proxy.old().0).await
//         }
//     }
//
//     #[doc(hidden)] pub struct OrderRepoSide<B>(::zddm::Backend<B>);
//     impl ::zddm::Store<OrderKey, Order> for OrderRepoSide<PgOrders> { /* get/put/delete: the trait's
//         methods on the backend; insert_if_absent: get, then put, under the proxy's key lock */ }
//     impl ::zddm::Store<OrderKey, Order> for OrderRepoSide<RedisOrders> { … }
pub fn generate(repository: &Repository, args: &Args, table: &Table) -> TokenStream {
    let item = repository.item;
    let (vis, name) = (&item.vis, &item.ident);
    let migration = format_ident!("{}Migration", name);
    let side = format_ident!("{}Side", name);
    let Table { key, value, .. } = table;
    let (old, new) = (&args.old, &args.new);

    let mut plain = plain_trait(item);
    if plain.colon_token.is_none() {
        plain.colon_token = Some(Default::default());
    }
    plain.supertraits.push(parse_quote!(::zddm::__private::Registered<#migration>));
    let message = format!("`{{Self}}` cannot be used as `{name}` outside the migration `{migration}`");
    let label = format!("read and write `{name}` through `{migration}`");
    let note = format!(
        "the stores of a migration are reachable only through it, so that OLD and NEW stay consistent: \
         `{migration}::new(old, new, gate)` takes them"
    );
    let register = format!("a store implements `{name}` with `#[zddm::backend] impl {name} for Store {{ … }}`");

    let exclusive = repository.exclusive();
    let proxy_ty = quote!(::zddm::__private::Proxy<#key, #value, #side<#old>, #side<#new>>);
    let (inner, wrap) = if exclusive {
        (quote!(::zddm::__private::AsyncMutex<::zddm::Backend<B>>), quote!(::zddm::__private::AsyncMutex::new))
    } else {
        (quote!(::zddm::Backend<B>), quote!())
    };
    // `#[async_trait]` rewrites the trait's async methods; the generated impl of the trait needs the
    // same rewrite (the stores' impls carry their own attribute).
    let async_trait = item
        .attrs
        .iter()
        .filter(|attr| attr.path().segments.last().is_some_and(|segment| segment.ident == "async_trait"));
    let methods =
        repository.methods.iter().filter(|m| m.kind.is_some()).map(|m| method(m, table, old, new, name, exclusive));
    let mut sides = vec![store(table, &side, old, name, exclusive)];
    if old.to_token_stream().to_string() != new.to_token_stream().to_string() {
        sides.push(store(table, &side, new, name, exclusive));
    }
    let doc = format!(
        "The migrating `{name}`: every call is routed between OLD (`{}`) and NEW (`{}`) by a `zddm::Proxy`.",
        old.to_token_stream().to_string().replace(' ', ""),
        new.to_token_stream().to_string().replace(' ', ""),
    );
    let side_doc = format!("A store of `{migration}`, as the proxy sees it.");

    quote! {
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note, note = #register)]
        #plain

        #[doc = #doc]
        #vis struct #migration {
            proxy: #proxy_ty,
        }

        #[automatically_derived]
        impl #migration {
            /// A migration from `old` to `new`, with `gate` deciding which keys take part.
            #vis fn new(old: #old, new: #new, gate: ::zddm::__private::Gate) -> Self {
                #migration {
                    proxy: ::zddm::__private::Proxy::new(
                        #side(#wrap(::zddm::__private::register(old))),
                        #side(#wrap(::zddm::__private::register(new))),
                        gate,
                    ),
                }
            }

            /// Like `new`, with the proxy's options (phase, stripes, shadow sampling, mismatch hook).
            #vis fn build(
                old: #old,
                new: #new,
                gate: ::zddm::__private::Gate,
                options: impl ::core::ops::FnOnce(
                    ::zddm::__private::ProxyBuilder<#key, #value, #side<#old>, #side<#new>>,
                ) -> ::zddm::__private::ProxyBuilder<#key, #value, #side<#old>, #side<#new>>,
            ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
                let builder = ::zddm::__private::Proxy::builder(
                    #side(#wrap(::zddm::__private::register(old))),
                    #side(#wrap(::zddm::__private::register(new))),
                    gate,
                );
                ::zddm::__private::Result::Ok(#migration { proxy: options(builder).build()? })
            }

            /// The proxy: its gate, phase and stats.
            #vis fn proxy(&self) -> &#proxy_ty {
                &self.proxy
            }
        }

        #[automatically_derived]
        impl ::zddm::__private::Registered<#migration> for #migration {}

        #[automatically_derived]
        #(#async_trait)*
        impl #name for #migration {
            #(#methods)*
        }

        #[doc = #side_doc]
        #[doc(hidden)]
        #vis struct #side<B>(#inner);

        #(#sides)*


    }
}

/// The signature with every argument named, so the body can pass them on.
fn named(sig: &Signature) -> (Signature, Vec<Ident>) {
    let mut sig = sig.clone();
    let mut names = Vec::new();
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        if let FnArg::Typed(arg) = input {
            let name = format_ident!("__zddm_arg{}", i);
            *arg.pat = Pat::Ident(syn::PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: name.clone(),
                subpat: None,
            });
            names.push(name);
        }
    }
    (sig, names)
}

/// How a side's store is reached for one call.
#[derive(Clone, Copy)]
struct Access {
    /// The trait method is `async`: its call is awaited.
    call_async: bool,
    /// The caller is async: the store's mutex (if any) is awaited rather than blocked on.
    lock_async: bool,
    /// The stores sit behind a mutex (some method takes `&mut self`).
    exclusive: bool,
}

/// A call of the trait's `ident` on the store of `side` (an expression for a side value).
fn on_store(
    side: TokenStream,
    ty: &Type,
    name: &Ident,
    ident: &Ident,
    args: TokenStream,
    access: Access,
) -> TokenStream {
    let call = |store: TokenStream| {
        let call = quote!(<::zddm::Backend<#ty> as #name>::#ident(#store, #args));
        if access.call_async {
            quote!(#call.await)
        } else {
            call
        }
    };
    if !access.exclusive {
        return call(quote!(&#side.0));
    }
    let lock = if access.lock_async {
        quote!(#side.0.lock().await)
    } else {
        quote!(::zddm::__private::block_on(#side.0.lock()))
    };
    let call = call(quote!(&mut *__zddm_store));
    quote!({
        let mut __zddm_store = #lock;
        #call
    })
}

fn method(method: &Method, table: &Table, old: &Type, new: &Type, name: &Ident, exclusive: bool) -> TokenStream {
    let Some((kind, _)) = method.kind else { return TokenStream::new() };
    let (sig, args) = named(&method.item.sig);
    let is_async = sig.asyncness.is_some();
    let error = table.error;
    // Spanned at the method's key type: a key that is not a `MigrationKey` is reported there, with
    // that trait's message.
    let key = method_key(method).unwrap_or(table.key);
    let call = match kind {
        Kind::Read => quote_spanned!(key.span()=> ::zddm::__private::Proxy::get(&self.proxy, #(#args),*)),
        Kind::Write => quote_spanned!(key.span()=> ::zddm::__private::Proxy::put(&self.proxy, #(#args),*)),
        Kind::Delete => quote_spanned!(key.span()=> ::zddm::__private::Proxy::delete(&self.proxy, #(#args),*)),
        Kind::Old | Kind::New => {
            let (store, ty) = if kind == Kind::Old { (quote!(old), old) } else { (quote!(new_store), new) };
            let access = Access { call_async: is_async, lock_async: is_async, exclusive };
            let call = on_store(quote!(self.proxy.#store()), ty, name, &sig.ident, quote!(#(#args),*), access);
            return quote!(#sig { #call });
        }
    };
    let call = if is_async { quote!(#call.await) } else { quote!(::zddm::__private::block_on(#call)) };
    // Spanned at the error type: an error type without `From<zddm::Error>` is reported once, there.
    let convert = quote_spanned!(error.span()=> ::zddm::__private::carry::<_, #error>(__zddm_result));
    quote!(#sig {
        let __zddm_result = #call;
        #convert
    })
}

/// The key type of a read, write or delete: the referent of its first argument.
fn method_key<'a>(method: &'a Method) -> Option<&'a Type> {
    match method.item.sig.inputs.iter().nth(1)? {
        FnArg::Typed(arg) => match &*arg.ty {
            Type::Reference(reference) => Some(&reference.elem),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    }
}

/// `Store` for one side, through the trait's methods on the registered backend.
fn store(table: &Table, side: &Ident, ty: &Type, name: &Ident, exclusive: bool) -> TokenStream {
    let Table { key, value, error, read, write, delete } = table;
    let call = |method: &Method, args: TokenStream| {
        // `Store`'s methods are async: the mutex is awaited even for a synchronous trait method.
        let access = Access { call_async: method.item.sig.asyncness.is_some(), lock_async: true, exclusive };
        on_store(quote!(self), ty, name, &method.item.sig.ident, args, access)
    };
    let get = call(read, quote!(key));
    let get_again = get.clone();
    let put = call(write, quote!(key, value));
    let put_again = put.clone();
    let remove = call(delete, quote!(key));
    quote! {
        #[automatically_derived]
        impl ::zddm::__private::Store<#key, #value> for #side<#ty> {
            type Error = #error;

            async fn get(&self, key: &#key) -> ::zddm::__private::Result<::zddm::__private::Option<#value>, #error> {
                #get
            }

            async fn put(&self, key: &#key, value: &#value) -> ::zddm::__private::Result<(), #error> {
                #put
            }

            // The proxy holds the key's lock around this, so no write of this process can come between
            // the two calls; across processes a repository needs its own conditional insert.
            async fn insert_if_absent(&self, key: &#key, value: &#value) -> ::zddm::__private::Result<bool, #error> {
                if #get_again?.is_some() {
                    return ::zddm::__private::Result::Ok(false);
                }
                #put_again?;
                ::zddm::__private::Result::Ok(true)
            }

            async fn delete(&self, key: &#key) -> ::zddm::__private::Result<(), #error> {
                #remove
            }
        }
    }
}
