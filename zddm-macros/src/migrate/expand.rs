//! Code generation for `#[zddm::migrate]`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_quote, FnArg, ItemTrait, Pat, ReturnType, Signature, TraitItem, TraitItemFn, Type};

use super::ast::{self, Kind, Method, Repository};
use super::attr::{self, Args, Mode};
use super::valid::{Item, Keys, Table};
use crate::receiver;

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
//     pub trait Orders {
//         async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
//         async fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
//         async fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
//         #[zddm(old)]
//         async fn count(&self) -> Result<u64, RepoError>;
//     }
//
// Output:
//     #[diagnostic::on_unimplemented(/* "… use `OrdersMigration` instead" */)]
//     pub trait Orders: ::zddm::__private::Registered<OrdersMigration<(), ()>> { /* as written */ }
//
//     // What a store implements (`#[zddm::backend] impl Orders for PgOrders` writes it): each
//     // method takes the store as a `Backend`, which only the migration makes; routed futures `Send`.
//     pub trait OrdersBackend: Send + Sync {
//         fn get_order(__zddm_self: &Backend<Self>, key: &OrderKey)
//             -> impl Future<Output = Result<Option<Order>, RepoError>> + Send;
//         …
//         async fn count(__zddm_self: &Backend<Self>) -> Result<u64, RepoError>;
//     }
//     impl<S: OrdersBackend> Orders for ::zddm::Backend<S> { /* each method: S::method(self, …) */ }
//
//     // Generic over its stores, so that they may live in crates that depend on this one; the
//     // stores named in the attribute are the defaults, and checked here.
//     pub struct OrdersMigration<Old = PgOrders, New = RedisOrders> {
//         proxy: Controls<Proxy<OrderKey, Order, Arc<OrdersSide<Old>>, Arc<OrdersSide<New>>>>,
//         old: Held<Arc<OrdersSide<Old>>>,   // for `#[zddm(old)]` methods, out of the module's reach
//         new: Held<Arc<OrdersSide<New>>>,
//     }
//     impl<Old: OrdersBackend, New: OrdersBackend> OrdersMigration<Old, New> { new(old, new, gate), build(…), proxy() }
//     impl<Old, New> Migration for OrdersMigration<Old, New> { type Seal = OrdersMigration<(), ()>; }
//     impl<Old: OrdersBackend, New: OrdersBackend> Orders for OrdersMigration<Old, New> {
//         async fn get_order(&self, __zddm_arg1: &OrderKey) -> Result<Option<Order>, RepoError> {
//             carry(Controls::get(&self.proxy, __zddm_arg1).await)   // zddm::Error -> RepoError
//         }
//         …put / delete likewise…
//         async fn count(&self) -> Result<u64, RepoError> {
//             <Old as OrdersBackend>::count(&Held::reach(&self.old).0).await
//         }
//     }
//
//     #[doc(hidden)] pub struct OrdersSide<B>(Backend<B>);
//     impl<B, K> ScanKeys<K> for OrdersSide<B> where Backend<B>: ScanKeys<K> { /* forwarded */ }
//     impl<B: OrdersBackend> Store<OrderKey, Order> for OrdersSide<B> { /* get/put/delete: the
//         store's methods; insert_if_absent: get, then put, under the proxy's key lock */ }
//     const _: () = { /* PgOrders: OrdersBackend, RedisOrders: OrdersBackend, reported at their names */ };
pub fn generate(repository: &Repository, args: &Args, table: &Table) -> TokenStream {
    let item = repository.item;
    let (vis, name) = (&item.vis, &item.ident);
    let names = Names::of(item);
    let Names { migration, old, new, .. } = &names;

    let mut plain = plain_trait(item);
    if plain.colon_token.is_none() {
        plain.colon_token = Some(Default::default());
    }
    plain.supertraits.push(parse_quote!(::zddm::__private::Registered<#migration<(), ()>>));
    // Shown on hover where a call on a bare store fails with rustc's own "no method named …".
    let migrating = format!(
        "**Migrating** (`#[zddm::migrate]`): call it through [`{migration}`], which routes every call between \
         the OLD and NEW stores; a store implements it with `#[zddm::backend] impl {name} for Store {{ … }}` \
         ([`{}`]).",
        names.companion
    );
    plain.attrs.push(parse_quote!(#[doc = ""]));
    plain.attrs.push(parse_quote!(#[doc = #migrating]));
    let message = format!("`{{Self}}` cannot be used as `{name}` outside the migration `{migration}`");
    let label = format!("read and write `{name}` through `{migration}`");
    let note = format!(
        "the stores of a migration are reachable only through it, so that OLD and NEW stay consistent: \
         `{migration}::new(old, new, gate)` takes them"
    );
    let register = format!("a store implements `{name}` with `#[zddm::backend] impl {name} for Store {{ … }}`");

    let exclusive = repository.exclusive();
    let shape = Shape::of(args, table, &names, repository, exclusive);
    // `#[async_trait]` rewrites the trait's async methods; the generated traits and impls need the
    // same rewrite (the stores' impls carry their own attribute).
    let async_trait: Vec<_> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().segments.last().is_some_and(|segment| segment.ident == "async_trait"))
        .collect();
    let companion_trait = companion_trait(repository, table, &names, exclusive, &async_trait);
    let methods = repository.methods.iter().filter(|m| m.kind.is_some()).map(|m| method(m, table, &shape, &names));
    let side_struct = (args.mode != Mode::Versioned).then(|| side(table, &names, vis, exclusive));
    let stores = match &args.stores {
        Some((old_ty, new_ty)) => format!(
            "OLD (`{}`) and NEW (`{}`)",
            old_ty.to_token_stream().to_string().replace(' ', ""),
            new_ty.to_token_stream().to_string().replace(' ', "")
        ),
        None => "the OLD and NEW stores it is made with".to_owned(),
    };
    let doc = format!("The migrating `{name}`: every call is routed between {stores} by a `{}`.", shape.proxy_name);
    let Shape { proxy_ty, fields, stores_impl, bounds, .. } = &shape;
    let defaults = match &args.stores {
        Some((old_ty, new_ty)) => quote!(#old = #old_ty, #new = #new_ty),
        None => quote!(#old, #new),
    };
    let constructors = constructors(args, table, &shape, &names, vis);
    let checks = checks(args, table, &shape, &names);
    // The stores are called through the companion trait: the trait's own methods count as used
    // (for the dead-code lint) because the migration routes every one of them.
    let generic = |m: &&Method| {
        m.item.sig.generics.type_params().next().is_some()
            || m.item
                .sig
                .inputs
                .iter()
                .any(|input| input.to_token_stream().into_iter().any(|t| t.to_string() == "impl"))
    };
    let used = repository.methods.iter().filter(|m| m.kind.is_some() && !generic(m)).map(|m| {
        let ident = &m.item.sig.ident;
        let cfgs = m.item.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));
        quote!(#(#cfgs)* let _ = <__ZddmRepository as #name>::#ident;)
    });

    quote! {
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note, note = #register)]
        #plain

        #companion_trait

        #[doc = #doc]
        #vis struct #migration<#defaults> {
            proxy: #proxy_ty,
            #fields
        }

        #[automatically_derived]
        impl<#old, #new> #migration<#old, #new> where #bounds {
            #constructors

            /// The migration's controls: its gate, phase and stats, keys in doubt, and what a
            /// backfill and a verification need. Never a store: a write to one alone would leave
            /// OLD and NEW out of step.
            #vis fn proxy(&self) -> &#proxy_ty {
                &self.proxy
            }
        }

        #[automatically_derived]
        impl<#old, #new> ::zddm::__private::Migration for #migration<#old, #new> {
            type Seal = #migration<(), ()>;
        }

        #stores_impl

        #[automatically_derived]
        #(#async_trait)*
        impl<#old, #new> #name for #migration<#old, #new> where #bounds {
            #(#methods)*
        }

        #side_struct

        #checks

        const _: () = {
            #[allow(dead_code)]
            fn routed<__ZddmRepository: #name>() {
                #(#used)*
            }
        };
    }
}

/// The generated items' names, and type parameters that cannot shadow a type the trait names.
struct Names {
    migration: Ident,
    side: Ident,
    companion: Ident,
    /// The migrating type's parameters for its stores (`Old`, `New`).
    old: Ident,
    new: Ident,
    /// The companion's blanket impl's parameter.
    store: Ident,
    /// The trait itself.
    name: Ident,
}

impl Names {
    fn of(item: &ItemTrait) -> Names {
        let mut used = std::collections::HashSet::new();
        collect_idents(item.to_token_stream(), &mut used);
        let fresh = |wanted: &str| {
            if used.contains(wanted) {
                format_ident!("__Zddm{}", wanted)
            } else {
                format_ident!("{}", wanted)
            }
        };
        let name = &item.ident;
        Names {
            migration: format_ident!("{}Migration", name),
            side: format_ident!("{}Side", name),
            companion: format_ident!("{}Backend", name),
            old: fresh("Old"),
            new: fresh("New"),
            store: fresh("S"),
            name: name.clone(),
        }
    }
}

fn collect_idents(tokens: TokenStream, into: &mut std::collections::HashSet<String>) {
    for token in tokens {
        match token {
            proc_macro2::TokenTree::Ident(ident) => {
                into.insert(ident.to_string());
            }
            proc_macro2::TokenTree::Group(group) => collect_idents(group.stream(), into),
            _ => {}
        }
    }
}

// Input (the trait above):
//     async fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
//     async fn total(&self) -> u64 { self.count().await.unwrap_or(0) }
//
// Output:
//     pub trait OrdersBackend: Send + Sync {
//         fn get_order(__zddm_self: &Backend<Self>, key: &OrderKey)
//             -> impl Future<Output = Result<Option<Order>, RepoError>> + Send;
//         async fn total(__zddm_self: &Backend<Self>) -> u64 { __zddm_self.count().await.unwrap_or(0) }
//     }
//     impl<S: OrdersBackend> Orders for Backend<S> {
//         async fn get_order(&self, __zddm_arg1: &OrderKey) -> … { <S as OrdersBackend>::get_order(self, __zddm_arg1).await }
//         async fn total(&self) -> u64 { <S as OrdersBackend>::total(self).await }
//     }
//
// The read, write and delete promise `Send` futures, which the proxy needs from a store whatever
// its type; a store's `async fn` keeps its own signature. Methods without a receiver stay out.
fn companion_trait(
    repository: &Repository,
    table: &Table,
    names: &Names,
    exclusive: bool,
    async_trait: &[&syn::Attribute],
) -> TokenStream {
    let item = repository.item;
    let Names { companion, store, name, .. } = names;
    let vis = &item.vis;
    let routed = |method: &TraitItemFn| {
        [table.read, table.write, table.delete].iter().any(|routed| std::ptr::eq(routed.item, method))
    };
    let mut declared = Vec::new();
    let mut forwards = Vec::new();
    for trait_item in &item.items {
        let TraitItem::Fn(method) = trait_item else { continue };
        let mut copy = method.clone();
        copy.attrs.retain(|attr| !attr::is_zddm(attr));
        let has_receiver = matches!(copy.sig.inputs.first(), Some(FnArg::Receiver(_)));
        if !has_receiver || !receiver::rewrite_signature(&mut copy.sig) {
            continue;
        }
        receiver::rewrite_items(&mut copy.sig);
        for attr in &mut copy.attrs {
            if let syn::Meta::List(list) = &mut attr.meta {
                list.tokens = receiver::rename_self(list.tokens.clone());
            }
        }
        if let Some(block) = &copy.default {
            copy.default = syn::parse2(receiver::rename_self(block.to_token_stream())).ok();
        }
        if async_trait.is_empty() && ast::is_async(&copy.sig) && routed(method) {
            let output = match (ast::future_output(&copy.sig), &copy.sig.output) {
                (Some(output), _) => output.to_token_stream(),
                (None, ReturnType::Default) => quote!(()),
                (None, ReturnType::Type(_, ty)) => ty.to_token_stream(),
            };
            if let (Some(block), Some(_)) = (&copy.default, copy.sig.asyncness) {
                copy.default = Some(parse_quote!({ async move #block }));
            }
            copy.sig.asyncness = None;
            copy.sig.output = parse_quote!(
                -> impl ::zddm::__private::Future<Output = #output> + ::zddm::__private::Send
            );
        }
        declared.push(copy);

        let cfgs = method.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));
        let (sig, args) = named(&method.sig);
        let ident = &sig.ident;
        let args = passed(&sig, &args);
        let call = quote!(<#store as #companion>::#ident(self, #(#args),*));
        let call = if sig.asyncness.is_some() { quote!(#call.await) } else { call };
        forwards.push(quote!(#(#cfgs)* #sig { #call }));
    }
    // Sized, to be a `Backend`'s store.
    let supertraits = if exclusive {
        quote!(::zddm::__private::Sized + ::zddm::__private::Send)
    } else {
        quote!(::zddm::__private::Sized + ::zddm::__private::Send + ::zddm::__private::Sync)
    };
    let doc = format!(
        "What a store implements to be a backend of [`{name}`]'s migration: `#[zddm::backend] impl {name} for \
         Store {{ … }}` writes this impl from the store's own methods. Each method takes the store as a \
         `zddm::Backend`, which only the migration makes, so that no code can call the store around it."
    );
    let message = format!("`{{Self}}` is not a store of `{name}`");
    let label = format!("not registered as a backend of `{name}`");
    // Braces doubled once for `format!` and once for `on_unimplemented`.
    let note = format!("register the store with `#[zddm::backend] impl {name} for {{Self}} {{{{ … }}}}`");
    quote! {
        #[doc = #doc]
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
        // Its futures are as `Send` as the trait's own (the routed ones always are).
        #[allow(async_fn_in_trait)]
        #(#async_trait)*
        #vis trait #companion: #supertraits {
            #(#declared)*
        }

        #[automatically_derived]
        #(#async_trait)*
        impl<#store: #companion> #name for ::zddm::Backend<#store> {
            #(#forwards)*
        }
    }
}

/// What the migrating type holds in its mode, and how a call reaches each store.
struct Shape {
    /// `Proxy`, `VersionedProxy` or `CachedProxy`, for docs.
    proxy_name: &'static str,
    /// Where the routed calls are (`get`, `put`, `delete`), and their generic arguments.
    proxy_path: TokenStream,
    turbofish: TokenStream,
    /// The impl naming the stores' types once (fleet modes).
    stores_impl: TokenStream,
    /// The proxy's full type.
    proxy_ty: TokenStream,
    /// The fields besides `proxy`.
    fields: TokenStream,
    /// Places of type `Backend<Old>` / `Backend<New>` (or their mutexes), for passed-through calls.
    old_place: TokenStream,
    new_place: TokenStream,
    exclusive: bool,
    /// Which proxy: the fleet modes route updates through their own calls.
    mode: Mode,
    /// What each store must be, as where-clause predicates on `Old` and on `New`, and both.
    old_bounds: TokenStream,
    new_bounds: TokenStream,
    bounds: TokenStream,
}

/// What a store must be: the companion trait (reached through the repository trait), or zddm's
/// `store` trait on its `Backend` — and the companion too where a method is passed through to it.
fn bound(param: &Ident, names: &Names, table: &Table, store: Option<&str>, passed: bool) -> TokenStream {
    let companion = &names.companion;
    let Some(store) = store else { return quote!(#param: #companion,) };
    let store = format_ident!("{}", store);
    let Table { key, value, .. } = table;
    let also = passed.then(|| quote!(#param: #companion,));
    quote!(::zddm::Backend<#param>: ::zddm::__private::#store<#key, #value>, #also)
}

impl Shape {
    fn of(args: &Args, table: &Table, names: &Names, repository: &Repository, exclusive: bool) -> Shape {
        let Table { key, value, .. } = table;
        let Names { migration, side, old, new, .. } = names;
        let passed = |kind: Kind| repository.methods.iter().any(|m| m.kind.map(|(k, _)| k) == Some(kind));
        // Updates run the companion's method on OLD, as a passed-through call does.
        let (old_passed, new_passed) = (passed(Kind::Old) || !table.updates.is_empty(), passed(Kind::New));
        let reach = |field: TokenStream| quote!(::zddm::__private::Held::reach(&#field));
        let (old_reach, new_reach) = (reach(quote!(self.old)), reach(quote!(self.new)));
        let held = |ty: TokenStream| quote!(::zddm::__private::Held<::zddm::__private::Arc<#ty>>);
        let fields = |old_ty: TokenStream, new_ty: TokenStream| {
            let (old_ty, new_ty) = (held(old_ty), held(new_ty));
            quote!(old: #old_ty, new: #new_ty,)
        };
        let stores_impl = |repository: TokenStream, old_ty: TokenStream, new_ty: TokenStream, bounds: &TokenStream| {
            let updates = (args.mode == Mode::Versioned).then(|| {
                let any = !table.updates.is_empty();
                quote!(const UPDATES: bool = #any;)
            });
            quote! {
                #[automatically_derived]
                impl<#old, #new> ::zddm::__private::#repository for #migration<#old, #new> where #bounds {
                    type Key = #key;
                    type Value = #value;
                    type Old = #old_ty;
                    type New = #new_ty;
                    #updates
                }
            }
        };
        let mut shape = match args.mode {
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
                fields: fields(quote!(#side<#old>), quote!(#side<#new>)),
                old_place: quote!(#old_reach.0),
                new_place: quote!(#new_reach.0),
                exclusive,
                mode: args.mode,
                old_bounds: TokenStream::new(),
                new_bounds: TokenStream::new(),
                bounds: TokenStream::new(),
            },
            Mode::Versioned => Shape {
                proxy_name: "zddm::versioned::VersionedProxy",
                proxy_path: quote!(::zddm::__private::versioned),
                turbofish: quote!(::<Self>),
                stores_impl: TokenStream::new(),
                proxy_ty: quote!(::zddm::Controls<::zddm::__private::VersionedProxy<
                    #key, #value,
                    ::zddm::__private::Arc<::zddm::Backend<#old>>,
                    ::zddm::__private::Arc<::zddm::Backend<#new>>,
                >>),
                fields: fields(quote!(::zddm::Backend<#old>), quote!(::zddm::Backend<#new>)),
                old_place: quote!((**#old_reach)),
                new_place: quote!((**#new_reach)),
                exclusive: false,
                mode: args.mode,
                old_bounds: TokenStream::new(),
                new_bounds: TokenStream::new(),
                bounds: TokenStream::new(),
            },
            Mode::Cached => Shape {
                proxy_name: "zddm::cached::CachedProxy",
                proxy_path: quote!(::zddm::__private::cached),
                turbofish: quote!(::<Self>),
                stores_impl: TokenStream::new(),
                proxy_ty: quote!(::zddm::Controls<::zddm::__private::CachedProxy<
                    #key, #value,
                    ::zddm::__private::Arc<#side<#old>>,
                    ::zddm::__private::Arc<::zddm::Backend<#new>>,
                >>),
                fields: fields(quote!(#side<#old>), quote!(::zddm::Backend<#new>)),
                old_place: quote!(#old_reach.0),
                new_place: quote!((**#new_reach)),
                exclusive: false,
                mode: args.mode,
                old_bounds: TokenStream::new(),
                new_bounds: TokenStream::new(),
                bounds: TokenStream::new(),
            },
        };
        let (old_store, new_store) = match args.mode {
            Mode::Local => (None, None),
            Mode::Versioned => (Some("Source"), Some("Target")),
            Mode::Cached => (None, Some("Cache")),
        };
        let old_bounds = bound(old, names, table, old_store, old_passed);
        let new_bounds = bound(new, names, table, new_store, new_passed);
        shape.bounds = quote!(#old_bounds #new_bounds);
        (shape.old_bounds, shape.new_bounds) = (old_bounds, new_bounds);
        shape.stores_impl = match args.mode {
            Mode::Local => TokenStream::new(),
            Mode::Versioned => stores_impl(
                quote!(VersionedRepository),
                quote!(::zddm::__private::Arc<::zddm::Backend<#old>>),
                quote!(::zddm::__private::Arc<::zddm::Backend<#new>>),
                &shape.bounds,
            ),
            Mode::Cached => stores_impl(
                quote!(CachedRepository),
                quote!(::zddm::__private::Arc<#side<#old>>),
                quote!(::zddm::__private::Arc<::zddm::Backend<#new>>),
                &shape.bounds,
            ),
        };
        shape
    }
}

// Input:
//     #[zddm::migrate(old = PgOrders, new = RedisOrders)]
//
// Output:
//     const _: () = {
//         fn old_store<Old>() where Old: OrdersBackend {}
//         fn new_store<New>() where New: OrdersBackend {}
//         let _ = old_store::<PgOrders>;     // spanned at `PgOrders`
//         let _ = new_store::<RedisOrders>;
//     };
//
// A store named in the attribute without its impl is reported there, with the companion's (or
// `Source`'s, `Target`'s, `Cache`'s) message; without named stores, where the migration is made.
fn checks(args: &Args, table: &Table, shape: &Shape, names: &Names) -> TokenStream {
    // The stores behind the proxy report their failures as the trait's error type: in the modes
    // that reach them through the trait, it must be a `std::error::Error` (said once, at the type).
    let error = table.error;
    let error_check = (args.mode != Mode::Versioned).then(|| {
        let call = quote_spanned!(error.span()=> error_type::<#error>);
        quote! {
            const _: () = {
                fn error_type<E: ::zddm::__private::RepositoryError>() {}
                let _ = #call;
            };
        }
    });
    let Some((old_ty, new_ty)) = &args.stores else { return quote!(#error_check) };
    let Names { old, new, .. } = names;
    let (old_bounds, new_bounds) = (&shape.old_bounds, &shape.new_bounds);
    let old_call = quote_spanned!(old_ty.span()=> old_store::<#old_ty>);
    let new_call = quote_spanned!(new_ty.span()=> new_store::<#new_ty>);
    quote! {
        #error_check
        const _: () = {
            fn old_store<#old>() where #old_bounds {}
            fn new_store<#new>() where #new_bounds {}
            let _ = #old_call;
            let _ = #new_call;
        };
    }
}

// Input:
//     #[zddm::migrate(old = PgOrders, new = NewOrders, mode = versioned)]
//
// Output (the traits, the seal and the checks as above):
//     pub struct OrderRepoMigration<Old = PgOrders, New = NewOrders> {
//         proxy: Controls<VersionedProxy<OrderKey, Order, Arc<Backend<Old>>, Arc<Backend<New>>>>,
//         old: Held<Arc<Backend<Old>>>,   // for `#[zddm(old)]` methods
//         new: Held<Arc<Backend<New>>>,
//     }
//     impl<Old, New> OrderRepoMigration<Old, New>
//     where Backend<Old>: Source<OrderKey, Order>, Backend<New>: Target<OrderKey, Order> {
//         new(old, new, gate), in_fleet(old, new, &fleet), build(…), build_in_fleet(…)
//     }
//     impl<Old, New> VersionedRepository for OrderRepoMigration<Old, New> where … {
//         type Key = OrderKey; type Value = Order;
//         type Old = Arc<Backend<Old>>; type New = Arc<Backend<New>>;
//     }
//     // calls: ::zddm::__private::versioned::get::<Self>(&self.proxy, key), …
//
// `Backend<PgOrders>` is a `Source` and `Backend<NewOrders>` a `Target` through the user's
// `#[zddm::backend] impl Source<OrderKey, Order> for PgOrders` (or an impl on the store itself).
// With `mode = cached`, OLD is reached through the trait as in the local mode, and NEW is a `Cache`.
fn constructors(args: &Args, table: &Table, shape: &Shape, names: &Names, vis: &syn::Visibility) -> TokenStream {
    if args.mode == Mode::Local {
        return local_constructors(table, shape, names, vis);
    }
    let Names { side, old: old_param, new: new_param, .. } = names;
    let Shape { proxy_path, turbofish, .. } = shape;
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
        let (old, new) = (::zddm::__private::Held::new(old), ::zddm::__private::Held::new(new));
    };
    let options = if args.mode == Mode::Versioned {
        let builder = quote!(::zddm::__private::versioned::Builder<Self>);
        quote! {
            /// Like `new`, with the proxy's options (phase, grace period).
            #vis fn build(
                old: #old_param,
                new: #new_param,
                gate: ::zddm::__private::Gate,
                options: impl ::core::ops::FnOnce(#builder) -> #builder,
            ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
                #handles
                let proxy = #proxy_path::build #turbofish(options(#proxy_path::builder #turbofish(stores.0, stores.1, gate)))?;
                ::zddm::__private::Result::Ok(Self { proxy, old, new })
            }

            /// Like `in_fleet`, with the proxy's options (grace period).
            #vis fn build_in_fleet<C: ::zddm::__private::Control>(
                old: #old_param,
                new: #new_param,
                fleet: &::zddm::__private::Fleet<C>,
                options: impl ::core::ops::FnOnce(#builder) -> #builder,
            ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
                #handles
                let proxy = #proxy_path::build #turbofish(options(#proxy_path::fleet_builder::<Self, _>(stores.0, stores.1, fleet)))?;
                ::zddm::__private::Result::Ok(Self { proxy, old, new })
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
                ::zddm::__private::Result::Ok(Self { proxy, old: self.old, new: self.new })
            }
        }
    };
    quote! {
        /// A migration for one process, with `gate` deciding which keys take part. A fleet of
        /// instances uses `in_fleet`.
        #vis fn new(old: #old_param, new: #new_param, gate: ::zddm::__private::Gate) -> Self {
            #handles
            Self { proxy: #proxy_path::new #turbofish(stores.0, stores.1, gate), old, new }
        }

        /// A migration that follows `fleet`'s plan: gate and phase move fleet-wide.
        #vis fn in_fleet<C: ::zddm::__private::Control>(
            old: #old_param,
            new: #new_param,
            fleet: &::zddm::__private::Fleet<C>,
        ) -> Self {
            #handles
            Self { proxy: #proxy_path::in_fleet::<Self, _>(stores.0, stores.1, fleet), old, new }
        }

        #options
    }
}

fn local_constructors(table: &Table, shape: &Shape, names: &Names, vis: &syn::Visibility) -> TokenStream {
    let Table { key, value, .. } = table;
    let Names { side, old: old_param, new: new_param, .. } = names;
    let wrap = if shape.exclusive { quote!(::zddm::__private::AsyncMutex::new) } else { quote!() };
    let sides = quote! {
        let old = ::zddm::__private::Arc::new(#side(#wrap(::zddm::Backend::unguarded(old))));
        let new = ::zddm::__private::Arc::new(#side(#wrap(::zddm::Backend::unguarded(new))));
        let stores = (::zddm::__private::Arc::clone(&old), ::zddm::__private::Arc::clone(&new));
        let (old, new) = (::zddm::__private::Held::new(old), ::zddm::__private::Held::new(new));
    };
    let builder = quote!(::zddm::__private::ProxyBuilder<
        #key, #value, ::zddm::__private::Arc<#side<#old_param>>, ::zddm::__private::Arc<#side<#new_param>>,
    >);
    quote! {
        /// A migration from `old` to `new`, with `gate` deciding which keys take part.
        #vis fn new(old: #old_param, new: #new_param, gate: ::zddm::__private::Gate) -> Self {
            #sides
            Self { proxy: ::zddm::__private::local::new(stores.0, stores.1, gate), old, new }
        }

        /// Like `new`, with the proxy's options (phase, stripes, shadow sampling, mismatch hook).
        #vis fn build(
            old: #old_param,
            new: #new_param,
            gate: ::zddm::__private::Gate,
            options: impl ::core::ops::FnOnce(#builder) -> #builder,
        ) -> ::zddm::__private::Result<Self, ::zddm::__private::ConfigError> {
            #sides
            let builder = ::zddm::__private::local::builder(stores.0, stores.1, gate);
            let proxy = ::zddm::__private::local::build(options(builder))?;
            ::zddm::__private::Result::Ok(Self { proxy, old, new })
        }
    }
}

/// The wrapper that gives a store reached through the trait a `Store` impl.
fn side(table: &Table, names: &Names, vis: &syn::Visibility, exclusive: bool) -> TokenStream {
    let Names { side, migration, store: param, .. } = names;
    let side_doc = format!("A store of `{migration}`, as the proxy sees it.");
    let inner = if exclusive {
        quote!(::zddm::__private::AsyncMutex<::zddm::Backend<#param>>)
    } else {
        quote!(::zddm::Backend<#param>)
    };
    let scanned = if exclusive { quote!(&*self.0.lock().await) } else { quote!(&self.0) };
    let store = store(table, names, exclusive);
    quote! {
        #[doc = #side_doc]
        #[doc(hidden)]
        #vis struct #side<#param>(#inner);

        // A store that scans its keys (`zddm::cached::ScanKeys`) can be backfilled and verified.
        #[automatically_derived]
        // Generic over the key, so that a key type without a size (`str`) needs no scan.
        impl<#param, K> ::zddm::__private::ScanKeys<K> for #side<#param>
        where
            ::zddm::Backend<#param>: ::zddm::__private::ScanKeys<K>,
        {
            type Error = <::zddm::Backend<#param> as ::zddm::__private::ScanKeys<K>>::Error;

            async fn scan_keys(
                &self,
                after: ::zddm::__private::Option<&[u8]>,
                limit: usize,
            ) -> ::zddm::__private::Result<::zddm::__private::Page<K, ()>, Self::Error> {
                ::zddm::__private::ScanKeys::scan_keys(#scanned, after, limit).await
            }
        }

        #store
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

/// `args` (as `named` names them) as the companion's methods take them.
fn passed(sig: &Signature, args: &[Ident]) -> Vec<TokenStream> {
    let types = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(arg) => Some(&*arg.ty),
        FnArg::Receiver(_) => None,
    });
    types.zip(args).map(|(ty, arg)| receiver::pass(ty, arg)).collect()
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

/// A call of the store's `ident` (through the companion trait) on the store at `place` (a place of
/// type `Backend<ty>`, or its mutex when the stores are exclusive).
fn on_store(
    place: TokenStream,
    ty: &Ident,
    companion: &Ident,
    ident: &Ident,
    args: TokenStream,
    access: Access,
) -> TokenStream {
    let call = |store: TokenStream| {
        let call = quote!(<#ty as #companion>::#ident(#store, #args));
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

fn method(method: &Method, table: &Table, shape: &Shape, names: &Names) -> TokenStream {
    // A method that exists only under a condition (`#[cfg(test)]`) is implemented under it too.
    let cfgs = method.item.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));
    let body = method_body(method, table, shape, names);
    if body.is_empty() {
        return body;
    }
    quote!(#(#cfgs)* #body)
}

fn method_body(method: &Method, table: &Table, shape: &Shape, names: &Names) -> TokenStream {
    let Some((kind, _)) = method.kind else { return TokenStream::new() };
    let key_span = method_key(method).unwrap_or(table.key).span();
    let (proxy, turbofish) = (respan(&shape.proxy_path, key_span), respan(&shape.turbofish, key_span));
    let (sig, args) = named(&method.item.sig);
    let is_async = ast::is_async(&sig);
    let error = table.error;
    // Spanned at the method's key type: a key that is not a `MigrationKey` is reported there, with
    // that trait's message.
    let key = method_key(method).unwrap_or(table.key);
    if let Some((_, keys)) = table.updates.iter().find(|(update, _)| std::ptr::eq(update.item, method.item)) {
        return update(&sig, &args, *keys, shape, names, error);
    }
    let call = match kind {
        Kind::Read => quote_spanned!(key.span()=> #proxy::get #turbofish(&self.proxy, #(#args),*)),
        Kind::Write => quote_spanned!(key.span()=> #proxy::put #turbofish(&self.proxy, #(#args),*)),
        Kind::Delete => quote_spanned!(key.span()=> #proxy::delete #turbofish(&self.proxy, #(#args),*)),
        Kind::Old | Kind::New => {
            let (place, ty) =
                if kind == Kind::Old { (&shape.old_place, &names.old) } else { (&shape.new_place, &names.new) };
            let access = Access { call_async: is_async, lock_async: is_async, exclusive: shape.exclusive };
            let args = passed(&sig, &args);
            let call = on_store(place.clone(), ty, &names.companion, &sig.ident, quote!(#(#args),*), access);
            return body(&sig, call);
        }
    };
    let call = if is_async { quote!(#call.await) } else { quote!(::zddm::__private::block_on(#call)) };
    // Spanned at the error type: an error type without `From<zddm::Error>` is reported once, there.
    let convert = quote_spanned!(error.span()=> ::zddm::__private::carry::<_, #error>(__zddm_result));
    body(
        &sig,
        quote! {
            let __zddm_result = #call;
            #convert
        },
    )
}

/// The method with `statements` as its body; a method declared `-> impl Future<…>` returns them as
/// an `async` block.
fn body(sig: &Signature, statements: TokenStream) -> TokenStream {
    if sig.asyncness.is_none() && ast::future_output(sig).is_some() {
        quote!(#sig { async move { #statements } })
    } else {
        quote!(#sig { #statements })
    }
}

// Input:
//     #[zddm(write)] async fn archive(&self, key: &OrderKey, reason: &str) -> Result<u32, RepoError>;
//
// Output (a second write, in one process):
//     async fn archive(&self, __zddm_arg1: &OrderKey, __zddm_arg2: &str) -> Result<u32, RepoError> {
//         carry_update(::zddm::Controls::update(&self.proxy, __zddm_arg1,
//             async { <Old as OrdersBackend>::archive(&Held::reach(&self.old).0, __zddm_arg1, __zddm_arg2).await },
//             async { <New as OrdersBackend>::archive(&Held::reach(&self.new).0, __zddm_arg1, __zddm_arg2).await },
//         ).await)
//     }
//
// With `keys: &[K]` (or `entries: &[(K, V)]`), every key's lock, and every key's copy removed:
//         let __zddm_keys: Vec<&OrderKey> = __zddm_arg1.iter().collect();   // .map(|(key, _)| key)
//         carry_update(::zddm::Controls::update_many(&self.proxy, &__zddm_keys, async { … }, async { … }).await)
//
// With `keys: impl IntoIterator<Item = &'a OrderKey>`, the items first, then the same:
//         let __zddm_items: Vec<_> = IntoIterator::into_iter(__zddm_arg1).collect();
//         let __zddm_keys: Vec<_> = __zddm_items.iter().map(|item| *item).collect();
//         … update_many(&self.proxy, &__zddm_keys, async { <Old as OrdersBackend>::purge(…, __zddm_items.clone().into_iter()) }, …)
//
// In a fleet mode, OLD alone, with the keys marked in NEW around it:
//         carry_update(::zddm::__private::versioned::update::<Self, _>(&self.proxy, __zddm_arg1, async { … }).await)
fn update(sig: &Signature, args: &[Ident], keys: Keys, shape: &Shape, names: &Names, error: &Type) -> TokenStream {
    let is_async = ast::is_async(sig);
    let access = Access { call_async: is_async, lock_async: true, exclusive: shape.exclusive };
    let key = &args[0];
    // An iterator is consumed here, to lock its keys first; each side gets it again from the items.
    let (first, items) = match keys {
        Keys::Iter(item) => {
            // A `vec::IntoIter` of the items, which is what the companion takes for borrowed items
            // (`receiver::rewrite_items`); cloned, as the call is prepared for both stores.
            let again = quote!(::core::iter::IntoIterator::into_iter(::core::clone::Clone::clone(&__zddm_items)));
            let each = match item {
                Item::KeyRef => quote!(|item| *item),
                Item::Key => quote!(|item| item),
                Item::PairOfRefs => quote!(|item| item.0),
                Item::PairRef => quote!(|item| &item.0),
                Item::Pair => quote!(|item| &item.0),
            };
            let items = quote! {
                let __zddm_items: ::std::vec::Vec<_> = ::core::iter::IntoIterator::into_iter(#key).collect();
                let __zddm_keys: ::std::vec::Vec<_> = __zddm_items.iter().map(#each).collect();
            };
            (again, Some(items))
        }
        _ => (quote!(#key), None),
    };
    let rest = &passed(sig, args)[1..];
    let on = |place: &TokenStream, ty: &Ident| {
        on_store(place.clone(), ty, &names.companion, &sig.ident, quote!(#first #(, #rest)*), access)
    };
    let (on_old, on_new) = (on(&shape.old_place, &names.old), on(&shape.new_place, &names.new));
    // The fleet modes run the call on OLD alone, with the keys marked in NEW around it.
    let fleet = shape.mode != Mode::Local;
    let proxy = &shape.proxy_path;
    let many = |prelude: TokenStream| {
        let call = if fleet {
            quote!(#proxy::update_many::<Self, _>(&self.proxy, &__zddm_keys, async { #on_old }))
        } else {
            quote!(::zddm::Controls::update_many(&self.proxy, &__zddm_keys, async { #on_old }, async { #on_new }))
        };
        (prelude, call)
    };
    let (prelude, call) = match keys {
        Keys::One if fleet => (quote!(), quote!(#proxy::update::<Self, _>(&self.proxy, #key, async { #on_old }))),
        Keys::One => {
            (quote!(), quote!(::zddm::Controls::update(&self.proxy, #key, async { #on_old }, async { #on_new })))
        }
        Keys::Slice => many(quote!(let __zddm_keys: ::std::vec::Vec<_> = #key.iter().collect();)),
        Keys::Pairs => many(quote!(let __zddm_keys: ::std::vec::Vec<_> = #key.iter().map(|(key, _)| key).collect();)),
        Keys::Iter(_) => many(items.unwrap_or_default()),
    };
    let call = if is_async { quote!(#call.await) } else { quote!(::zddm::__private::block_on(#call)) };
    body(
        sig,
        quote! {
            #prelude
            ::zddm::__private::carry_update::<_, #error>(#call)
        },
    )
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

/// `Store` for either side, through the store's methods on its backend.
fn store(table: &Table, names: &Names, exclusive: bool) -> TokenStream {
    let Table { key, value, error, read, write, delete, .. } = table;
    let Names { side, companion, store, .. } = names;
    let call = |method: &Method, args: TokenStream| {
        // `Store`'s methods are async: the mutex is awaited even for a synchronous trait method.
        let access = Access { call_async: ast::is_async(&method.item.sig), lock_async: true, exclusive };
        on_store(quote!(self.0), store, companion, &method.item.sig.ident, args, access)
    };
    let get = call(read, quote!(key));
    let get_again = get.clone();
    let put = call(write, quote!(key, value));
    let put_again = put.clone();
    let remove = call(delete, quote!(key));
    quote! {
        #[automatically_derived]
        impl<#store: #companion> ::zddm::__private::Store<#key, #value> for #side<#store> {
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
