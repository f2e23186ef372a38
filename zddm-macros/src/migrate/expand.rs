//! Code generation for `#[zddm::migrate]`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_quote, FnArg, ItemTrait, Pat, Signature, TraitItem, Type};

use super::ast::{Kind, Method, Repository};
use super::attr::{self, Args, Mode};
use super::valid::{Keys, Table};

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
//         // `Controls` gives gate, phase and stats through `proxy()`, never a store.
//         proxy: ::zddm::Controls<::zddm::Proxy<OrderKey, Order, Arc<OrderRepoSide<PgOrders>>, Arc<…>>>,
//         old: Arc<OrderRepoSide<PgOrders>>,   // for `#[zddm(old)]` methods
//         new: Arc<OrderRepoSide<RedisOrders>>,
//     }
//     impl OrderRepoMigration { pub fn new(old, new, gate) -> Self; pub fn build(…); pub fn proxy(&self) }
//     impl ::zddm::__private::Migration for OrderRepoMigration {}   // registered with itself
//     impl OrderRepo for OrderRepoMigration {
//         async fn get_order(&self, __zddm_arg1: &OrderKey) -> Result<Option<Order>, RepoError> {
//             carry(::zddm::Controls::get(&self.proxy, __zddm_arg1).await)   // zddm::Error -> RepoError
//         }
//         …put / delete likewise…
//         async fn count(&self) -> Result<u64, RepoError> {
//             <::zddm::Backend<PgOrders> as OrderRepo>::count(&self.old.0).await
//         }
//     }
//
//     #[doc(hidden)] pub struct OrderRepoSide<B>(::zddm::Backend<B>);
//     impl<B, K> ScanKeys<K> for OrderRepoSide<B> where Backend<B>: ScanKeys<K> { /* forwarded */ }
//     impl ::zddm::Store<OrderKey, Order> for OrderRepoSide<PgOrders> { /* get/put/delete: the trait's
//         methods on the backend; insert_if_absent: get, then put, under the proxy's key lock */ }
//     impl ::zddm::Store<OrderKey, Order> for OrderRepoSide<RedisOrders> { … }
pub fn generate(repository: &Repository, args: &Args, table: &Table) -> TokenStream {
    let item = repository.item;
    let (vis, name) = (&item.vis, &item.ident);
    let migration = format_ident!("{}Migration", name);
    let side = format_ident!("{}Side", name);
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
    let shape = Shape::of(args, table, &side, &migration, exclusive);
    // `#[async_trait]` rewrites the trait's async methods; the generated impl of the trait needs the
    // same rewrite (the stores' impls carry their own attribute).
    let async_trait = item
        .attrs
        .iter()
        .filter(|attr| attr.path().segments.last().is_some_and(|segment| segment.ident == "async_trait"));
    let methods = repository.methods.iter().filter(|m| m.kind.is_some()).map(|m| method(m, table, &shape, name));
    let mut sides = Vec::new();
    if args.mode != Mode::Versioned {
        sides.push(store(table, &side, old, name, exclusive));
    }
    if args.mode == Mode::Local && old.to_token_stream().to_string() != new.to_token_stream().to_string() {
        sides.push(store(table, &side, new, name, exclusive));
    }
    let side_struct = (args.mode != Mode::Versioned).then(|| {
        let side_doc = format!("A store of `{migration}`, as the proxy sees it.");
        let inner = if exclusive {
            quote!(::zddm::__private::AsyncMutex<::zddm::Backend<B>>)
        } else {
            quote!(::zddm::Backend<B>)
        };
        let store = if exclusive { quote!(&*self.0.lock().await) } else { quote!(&self.0) };
        quote! {
            #[doc = #side_doc]
            #[doc(hidden)]
            #vis struct #side<B>(#inner);

            // A store that scans its keys (`zddm::cached::ScanKeys`) can be backfilled and verified.
            #[automatically_derived]
            // Generic over the key, so that a key type without a size (`str`) needs no scan.
            impl<B, K> ::zddm::__private::ScanKeys<K> for #side<B>
            where
                ::zddm::Backend<B>: ::zddm::__private::ScanKeys<K>,
            {
                type Error = <::zddm::Backend<B> as ::zddm::__private::ScanKeys<K>>::Error;

                async fn scan_keys(
                    &self,
                    after: ::zddm::__private::Option<&[u8]>,
                    limit: usize,
                ) -> ::zddm::__private::Result<::zddm::__private::Page<K, ()>, Self::Error> {
                    ::zddm::__private::ScanKeys::scan_keys(#store, after, limit).await
                }
            }
        }
    });
    let doc = format!(
        "The migrating `{name}`: every call is routed between OLD (`{}`) and NEW (`{}`) by a `{}`.",
        old.to_token_stream().to_string().replace(' ', ""),
        new.to_token_stream().to_string().replace(' ', ""),
        shape.proxy_name,
    );
    let Shape { proxy_ty, fields, stores_impl, .. } = &shape;
    let constructors = constructors(args, table, &shape, &migration, vis);

    quote! {
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note, note = #register)]
        #plain

        #[doc = #doc]
        #vis struct #migration {
            proxy: #proxy_ty,
            #fields
        }

        #[automatically_derived]
        impl #migration {
            #constructors

            /// The migration's controls: its gate, phase and stats, keys in doubt, and what a
            /// backfill and a verification need. Never a store: a write to one alone would leave
            /// OLD and NEW out of step.
            #vis fn proxy(&self) -> &#proxy_ty {
                &self.proxy
            }
        }

        #[automatically_derived]
        impl ::zddm::__private::Migration for #migration {}

        #stores_impl

        #[automatically_derived]
        #(#async_trait)*
        impl #name for #migration {
            #(#methods)*
        }

        #side_struct

        #(#sides)*
    }
}

/// What the migrating type holds in its mode, and how a call reaches each store.
struct Shape {
    /// `Proxy`, `VersionedProxy` or `CachedProxy`, for docs.
    proxy_name: &'static str,
    /// Where the routed calls are (`get`, `put`, `delete`), and their generic arguments.
    proxy_path: TokenStream,
    turbofish: TokenStream,
    /// The impl naming the stores' types once (fleet modes), so that a missing store impl is
    /// reported there and nowhere else.
    stores_impl: TokenStream,
    /// The proxy's full type.
    proxy_ty: TokenStream,
    /// The fields besides `proxy`.
    fields: TokenStream,
    /// Places of type `Backend<Old>` / `Backend<New>` (or their mutexes), for passed-through calls.
    old_place: TokenStream,
    new_place: TokenStream,
    exclusive: bool,
    /// The wrapper that gives a store reached through the trait a `Store` impl.
    side: Ident,
    old: Type,
    new: Type,
}

impl Shape {
    fn of(args: &Args, table: &Table, side: &Ident, migration: &Ident, exclusive: bool) -> Shape {
        let Table { key, value, .. } = table;
        let (old, new) = (&args.old, &args.new);
        let stores_impl = |repository: TokenStream, old: TokenStream, new: TokenStream| {
            quote! {
                #[automatically_derived]
                impl ::zddm::__private::#repository for #migration {
                    type Key = #key;
                    type Value = #value;
                    type Old = #old;
                    type New = #new;
                }
            }
        };
        match args.mode {
            // The proxy's handle gives out no store: the migration keeps its own handles for the
            // passed-through methods, in every mode.
            Mode::Local => Shape {
                proxy_name: "zddm::Proxy",
                proxy_path: quote!(::zddm::Controls),
                turbofish: TokenStream::new(),
                stores_impl: TokenStream::new(),
                proxy_ty: quote!(::zddm::Controls<::zddm::__private::Proxy<
                    #key, #value,
                    ::zddm::__private::Arc<#side<#old>>,
                    ::zddm::__private::Arc<#side<#new>>,
                >>),
                fields: quote!(
                    old: ::zddm::__private::Arc<#side<#old>>,
                    new: ::zddm::__private::Arc<#side<#new>>,
                ),
                old_place: quote!(self.old.0),
                new_place: quote!(self.new.0),
                exclusive,
                side: side.clone(),
                old: old.clone(),
                new: new.clone(),
            },
            Mode::Versioned => Shape {
                proxy_name: "zddm::versioned::VersionedProxy",
                proxy_path: quote!(::zddm::__private::versioned),
                turbofish: quote!(::<#migration>),
                stores_impl: stores_impl(
                    quote!(VersionedRepository),
                    quote!(::zddm::__private::Arc<::zddm::Backend<#old>>),
                    quote!(::zddm::__private::Arc<::zddm::Backend<#new>>),
                ),
                proxy_ty: quote!(::zddm::Controls<::zddm::__private::VersionedProxy<
                    #key, #value,
                    ::zddm::__private::Arc<::zddm::Backend<#old>>,
                    ::zddm::__private::Arc<::zddm::Backend<#new>>,
                >>),
                fields: quote!(
                    old: ::zddm::__private::Arc<::zddm::Backend<#old>>,
                    new: ::zddm::__private::Arc<::zddm::Backend<#new>>,
                ),
                old_place: quote!((*self.old)),
                new_place: quote!((*self.new)),
                exclusive: false,
                side: side.clone(),
                old: old.clone(),
                new: new.clone(),
            },
            Mode::Cached => Shape {
                proxy_name: "zddm::cached::CachedProxy",
                proxy_path: quote!(::zddm::__private::cached),
                turbofish: quote!(::<#migration>),
                stores_impl: stores_impl(
                    quote!(CachedRepository),
                    quote!(::zddm::__private::Arc<#side<#old>>),
                    quote!(::zddm::__private::Arc<::zddm::Backend<#new>>),
                ),
                proxy_ty: quote!(::zddm::Controls<::zddm::__private::CachedProxy<
                    #key, #value,
                    ::zddm::__private::Arc<#side<#old>>,
                    ::zddm::__private::Arc<::zddm::Backend<#new>>,
                >>),
                fields: quote!(
                    old: ::zddm::__private::Arc<#side<#old>>,
                    new: ::zddm::__private::Arc<::zddm::Backend<#new>>,
                ),
                old_place: quote!(self.old.0),
                new_place: quote!((*self.new)),
                exclusive: false,
                side: side.clone(),
                old: old.clone(),
                new: new.clone(),
            },
        }
    }
}

// Input:
//     #[zddm::migrate(old = PgOrders, new = NewOrders, mode = versioned)]
//
// Output (the trait, its impl and the seal as above):
//     pub struct OrderRepoMigration {
//         proxy: Controls<VersionedProxy<OrderKey, Order, Arc<Backend<PgOrders>>, Arc<Backend<NewOrders>>>>,
//         old: Arc<Backend<PgOrders>>,   // for `#[zddm(old)]` methods
//         new: Arc<Backend<NewOrders>>,
//     }
//     impl OrderRepoMigration { new(old, new, gate), in_fleet(old, new, &fleet), build(…), build_in_fleet(…) }
//     impl ::zddm::__private::VersionedRepository for OrderRepoMigration {
//         type Key = OrderKey; type Value = Order;
//         type Old = Arc<Backend<PgOrders>>; type New = Arc<Backend<NewOrders>>;
//     }
//     // calls: ::zddm::__private::versioned::get::<OrderRepoMigration>(&self.proxy, key), …
//
// `Backend<PgOrders>` is a `Source` and `Backend<NewOrders>` a `Target` through the user's
// `#[zddm::backend] impl Source<OrderKey, Order> for PgOrders` (and `Target` for NEW). The one
// `VersionedRepository` impl is where a missing one is reported; every call relies on it. With
// `mode = cached`, OLD is reached through the trait as in the local mode, and NEW is a `Cache`.
fn constructors(args: &Args, table: &Table, shape: &Shape, migration: &Ident, vis: &syn::Visibility) -> TokenStream {
    let (old, new) = (&args.old, &args.new);
    let Shape { proxy_path, side, turbofish, .. } = shape;
    if args.mode == Mode::Local {
        return local_constructors(args, table, shape, migration, vis);
    }
    // The migration keeps a handle on each store for the passed-through methods.
    let old_handle = if args.mode == Mode::Cached {
        quote!(#side(::zddm::Backend::unguarded(old)))
    } else {
        quote!(::zddm::Backend::unguarded(old))
    };
    let handles = quote! {
        let old = ::zddm::__private::Arc::new(#old_handle);
        let new = ::zddm::__private::Arc::new(::zddm::Backend::unguarded(new));
        let stores = (::zddm::__private::Arc::clone(&old), ::zddm::__private::Arc::clone(&new));
    };
    let options = if args.mode == Mode::Versioned {
        let builder = quote!(::zddm::__private::versioned::Builder<#migration>);
        quote! {
            /// Like `new`, with the proxy's options (phase, grace period).
            #vis fn build(
                old: #old,
                new: #new,
                gate: ::zddm::__private::Gate,
                options: impl ::core::ops::FnOnce(#builder) -> #builder,
            ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
                #handles
                let proxy = #proxy_path::build #turbofish(options(#proxy_path::builder #turbofish(stores.0, stores.1, gate)))?;
                ::zddm::__private::Result::Ok(#migration { proxy, old, new })
            }

            /// Like `in_fleet`, with the proxy's options (grace period).
            #vis fn build_in_fleet<C: ::zddm::__private::Control>(
                old: #old,
                new: #new,
                fleet: &::zddm::__private::Fleet<C>,
                options: impl ::core::ops::FnOnce(#builder) -> #builder,
            ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
                #handles
                let proxy = #proxy_path::build #turbofish(options(#proxy_path::fleet_builder::<#migration, _>(stores.0, stores.1, fleet)))?;
                ::zddm::__private::Result::Ok(#migration { proxy, old, new })
            }
        }
    } else {
        quote! {
            /// The same migration with another grace period (see `CachedProxy::with_grace`).
            #vis fn with_grace(
                self,
                grace: ::zddm::__private::Duration,
            ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
                let proxy = #proxy_path::with_grace #turbofish(self.proxy, grace)?;
                ::zddm::__private::Result::Ok(#migration { proxy, old: self.old, new: self.new })
            }
        }
    };
    quote! {
        /// A migration for one process, with `gate` deciding which keys take part. A fleet of
        /// instances uses `in_fleet`.
        #vis fn new(old: #old, new: #new, gate: ::zddm::__private::Gate) -> Self {
            #handles
            #migration { proxy: #proxy_path::new #turbofish(stores.0, stores.1, gate), old, new }
        }

        /// A migration that follows `fleet`'s plan: gate and phase move fleet-wide.
        #vis fn in_fleet<C: ::zddm::__private::Control>(
            old: #old,
            new: #new,
            fleet: &::zddm::__private::Fleet<C>,
        ) -> Self {
            #handles
            #migration { proxy: #proxy_path::in_fleet::<#migration, _>(stores.0, stores.1, fleet), old, new }
        }

        #options
    }
}

fn local_constructors(
    args: &Args,
    table: &Table,
    shape: &Shape,
    migration: &Ident,
    vis: &syn::Visibility,
) -> TokenStream {
    let Table { key, value, .. } = table;
    let (old, new) = (&args.old, &args.new);
    let side = &shape.side;
    let wrap = if shape.exclusive { quote!(::zddm::__private::AsyncMutex::new) } else { quote!() };
    let sides = quote! {
        let old = ::zddm::__private::Arc::new(#side(#wrap(::zddm::Backend::unguarded(old))));
        let new = ::zddm::__private::Arc::new(#side(#wrap(::zddm::Backend::unguarded(new))));
        let stores = (::zddm::__private::Arc::clone(&old), ::zddm::__private::Arc::clone(&new));
    };
    let builder = quote!(::zddm::__private::ProxyBuilder<
        #key, #value, ::zddm::__private::Arc<#side<#old>>, ::zddm::__private::Arc<#side<#new>>,
    >);
    quote! {
        /// A migration from `old` to `new`, with `gate` deciding which keys take part.
        #vis fn new(old: #old, new: #new, gate: ::zddm::__private::Gate) -> Self {
            #sides
            #migration { proxy: ::zddm::__private::local::new(stores.0, stores.1, gate), old, new }
        }

        /// Like `new`, with the proxy's options (phase, stripes, shadow sampling, mismatch hook).
        #vis fn build(
            old: #old,
            new: #new,
            gate: ::zddm::__private::Gate,
            options: impl ::core::ops::FnOnce(#builder) -> #builder,
        ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
            #sides
            let builder = ::zddm::__private::local::builder(stores.0, stores.1, gate);
            let proxy = ::zddm::__private::local::build(options(builder))?;
            ::zddm::__private::Result::Ok(#migration { proxy, old, new })
        }
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

/// A call of the trait's `ident` on the store at `place` (a place of type `Backend<ty>`, or its
/// mutex when the stores are exclusive).
fn on_store(
    place: TokenStream,
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
        return call(quote!(&#place));
    }
    let lock = if access.lock_async {
        quote!(#place.lock().await)
    } else {
        quote!(::zddm::__private::block_on(#place.lock()))
    };
    let call = call(quote!(&mut *__zddm_store));
    quote!({
        let mut __zddm_store = #lock;
        #call
    })
}

fn method(method: &Method, table: &Table, shape: &Shape, name: &Ident) -> TokenStream {
    // A method that exists only under a condition (`#[cfg(test)]`) is implemented under it too.
    let cfgs = method.item.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));
    let body = method_body(method, table, shape, name);
    if body.is_empty() {
        return body;
    }
    quote!(#(#cfgs)* #body)
}

fn method_body(method: &Method, table: &Table, shape: &Shape, name: &Ident) -> TokenStream {
    let Some((kind, _)) = method.kind else { return TokenStream::new() };
    let key_span = method_key(method).unwrap_or(table.key).span();
    let (proxy, turbofish) = (respan(&shape.proxy_path, key_span), respan(&shape.turbofish, key_span));
    let (sig, args) = named(&method.item.sig);
    let is_async = sig.asyncness.is_some();
    let error = table.error;
    // Spanned at the method's key type: a key that is not a `MigrationKey` is reported there, with
    // that trait's message.
    let key = method_key(method).unwrap_or(table.key);
    if let Some((_, keys)) = table.updates.iter().find(|(update, _)| std::ptr::eq(update.item, method.item)) {
        return update(&sig, &args, *keys, shape, name, error);
    }
    let call = match kind {
        Kind::Read => quote_spanned!(key.span()=> #proxy::get #turbofish(&self.proxy, #(#args),*)),
        Kind::Write => quote_spanned!(key.span()=> #proxy::put #turbofish(&self.proxy, #(#args),*)),
        Kind::Delete => quote_spanned!(key.span()=> #proxy::delete #turbofish(&self.proxy, #(#args),*)),
        Kind::Old | Kind::New => {
            let (place, ty) =
                if kind == Kind::Old { (&shape.old_place, &shape.old) } else { (&shape.new_place, &shape.new) };
            let access = Access { call_async: is_async, lock_async: is_async, exclusive: shape.exclusive };
            let call = on_store(place.clone(), ty, name, &sig.ident, quote!(#(#args),*), access);
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

// Input:
//     #[zddm(write)] async fn archive(&self, key: &OrderKey, reason: &str) -> Result<u32, RepoError>;
//
// Output (a second write, in one process):
//     async fn archive(&self, __zddm_arg1: &OrderKey, __zddm_arg2: &str) -> Result<u32, RepoError> {
//         carry_update(::zddm::Controls::update(&self.proxy, __zddm_arg1,
//             async { <Backend<Old> as Orders>::archive(&self.old.0, __zddm_arg1, __zddm_arg2).await },
//             async { <Backend<New> as Orders>::archive(&self.new.0, __zddm_arg1, __zddm_arg2).await },
//         ).await)
//     }
//
// With `keys: &[K]` (or `entries: &[(K, V)]`), every key's lock, and every key's copy removed:
//         let __zddm_keys: Vec<&OrderKey> = __zddm_arg1.iter().collect();   // .map(|(key, _)| key)
//         carry_update(::zddm::Controls::update_many(&self.proxy, &__zddm_keys, async { … }, async { … }).await)
fn update(sig: &Signature, args: &[Ident], keys: Keys, shape: &Shape, name: &Ident, error: &Type) -> TokenStream {
    let is_async = sig.asyncness.is_some();
    let access = Access { call_async: is_async, lock_async: true, exclusive: shape.exclusive };
    let on = |place: &TokenStream, ty: &Type| on_store(place.clone(), ty, name, &sig.ident, quote!(#(#args),*), access);
    let (on_old, on_new) = (on(&shape.old_place, &shape.old), on(&shape.new_place, &shape.new));
    let key = &args[0];
    let (prelude, call) = match keys {
        Keys::One => {
            (quote!(), quote!(::zddm::Controls::update(&self.proxy, #key, async { #on_old }, async { #on_new })))
        }
        Keys::Slice | Keys::Pairs => {
            let each = if keys == Keys::Slice { quote!() } else { quote!(.map(|(key, _)| key)) };
            (
                quote!(let __zddm_keys: ::std::vec::Vec<_> = #key.iter()#each.collect();),
                quote!(::zddm::Controls::update_many(&self.proxy, &__zddm_keys, async { #on_old }, async { #on_new })),
            )
        }
    };
    let call = if is_async { quote!(#call.await) } else { quote!(::zddm::__private::block_on(#call)) };
    quote!(#sig {
        #prelude
        ::zddm::__private::carry_update::<_, #error>(#call)
    })
}

/// `tokens` with every span set to `span`, so that rustc reports a call's unmet bound there.
fn respan(tokens: &TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner = proc_macro2::Group::new(group.delimiter(), respan(&group.stream(), span));
                inner.set_span(span);
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
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
    let Table { key, value, error, read, write, delete, .. } = table;
    let call = |method: &Method, args: TokenStream| {
        // `Store`'s methods are async: the mutex is awaited even for a synchronous trait method.
        let access = Access { call_async: method.item.sig.asyncness.is_some(), lock_async: true, exclusive };
        on_store(quote!(self.0), ty, name, &method.item.sig.ident, args, access)
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
