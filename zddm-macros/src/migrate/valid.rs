//! Checks that need the whole trait: every method classified, one table (key, value and error types
//! shared by the read, write and delete methods), and signatures the migration can route.

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Error, FnArg, GenericArgument, PathArguments, ReceiverKind, ReturnType, Type};

use super::ast::{self, Kind, Method, Named, Repository};
use super::attr::Mode;
use crate::errors::Errors;
use crate::receiver::iterated;

/// The one table a repository migrates.
pub struct Table<'a> {
    pub key: &'a Type,
    pub value: &'a Type,
    pub error: &'a Type,
    pub read: &'a Method<'a>,
    pub write: &'a Method<'a>,
    pub delete: &'a Method<'a>,
    /// Other keyed writes, routed as updates, and how each names its keys.
    pub updates: Vec<(&'a Method<'a>, Keys)>,
}

/// How a routed update names the keys it writes: its first argument.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// `key: &K`.
    One,
    /// `keys: &[K]` (or `&Vec<K>`).
    Slice,
    /// `entries: &[(K, V)]` (or `&Vec<(K, V)>`).
    Pairs,
    /// `keys: impl IntoIterator<Item = …>` (or `impl Iterator`): collected first, so that every key
    /// is locked before the store's method runs, then handed to it as an iterator again.
    Iter(Item),
}

/// What an iterator of keys yields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// `&K`.
    KeyRef,
    /// `K` (cloned for each side the call is prepared for).
    Key,
    /// `(&K, &V)`.
    PairOfRefs,
    /// `&(K, V)`.
    PairRef,
    /// `(K, V)` (cloned likewise).
    Pair,
}

const CHOICES: &str = "mark it `#[zddm(read)]`, `#[zddm(write)]` or `#[zddm(delete)]`, or `#[zddm(old)]` / \
                       `#[zddm(new)]` to pass it through to one store, or name it get_…, put_… or delete_… \
                       (see docs/repository-macro.md)";

impl<'a> Repository<'a> {
    pub fn validate(&'a self, mode: Mode, errors: &mut Errors) -> Option<Table<'a>> {
        let trait_item = self.item;
        // `#[async_trait]` above this attribute has already turned each `async fn` into a `fn`
        // returning a boxed future, with an `'async_trait` lifetime: say so once, not as ten
        // signature errors.
        let rewritten = self.methods.iter().find(|method| {
            method.item.sig.generics.lifetimes().any(|lifetime| lifetime.lifetime.ident == "async_trait")
        });
        if let Some(method) = rewritten {
            errors.push(Error::new_spanned(
                &method.item.sig.ident,
                "`#[async_trait]` has already rewritten this trait's `async fn`s: put `#[zddm::migrate(…)]` above \
                 `#[async_trait]`, so that it sees them as written (the generated impl gets `#[async_trait]` too)",
            ));
            return None;
        }
        if mode != Mode::Local {
            self.check_shared(mode, errors);
        }
        if !trait_item.generics.params.is_empty() {
            errors.push(Error::new_spanned(
                &trait_item.generics,
                "a migrating repository trait cannot be generic yet: migrate one instantiation, e.g. through a non-generic trait",
            ));
        }
        for method in &self.methods {
            if method.kind.is_none() && method.item.default.is_none() {
                let name = &method.item.sig.ident;
                let message = match &method.named {
                    Named::Mixed { verb, word } => format!(
                        "cannot tell what `{name}` does: its name starts with `{verb}` but goes on to `{word}`, \
                         so one call may do two things, and routed as one of them NEW would miss the other; say \
                         what it is with `#[zddm(read)]`, `#[zddm(write)]` or `#[zddm(delete)]`, or pass it \
                         through with `#[zddm(old)]` / `#[zddm(new)]` (see docs/repository-macro.md)"
                    ),
                    _ => format!("cannot tell what `{name}` does: {CHOICES}"),
                };
                errors.push(Error::new_spanned(name, message));
            }
        }
        let of = |kind: Kind| self.methods.iter().filter(move |m| m.kind.map(|(k, _)| k) == Some(kind));
        // A second write or delete is routed as an update: run on OLD with NEW kept in step around
        // it (see `updated`). A second read is refused.
        let mut updates = Vec::new();
        let mut one = |kind: Kind, errors: &mut Errors| -> Option<&Method> {
            let mut all = of(kind);
            let first = all.next();
            if kind != Kind::Read {
                updates.extend(all);
                return first;
            }
            for extra in all {
                let name = &extra.item.sig.ident;
                let first = first.map(|method| method.item.sig.ident.to_string()).unwrap_or_default();
                errors.push(Error::new_spanned(
                    name,
                    format!(
                        "`{name}` is a second read method: a repository migrates one table, through one read, one \
                         write and one delete; pass it through to OLD with `#[zddm(old)]` (OLD holds every \
                         value), or give it a default body that calls `{first}`"
                    ),
                ));
            }
            first
        };
        let (read, write, delete) = (one(Kind::Read, errors), one(Kind::Write, errors), one(Kind::Delete, errors));
        let ident = &trait_item.ident;
        if write.is_none() {
            let message = match read {
                Some(read) => format!(
                    "read `{}` has no way to fill NEW: add a write method to pair it with, e.g. \
                     `fn put(&self, key: &K, value: &V) -> Result<(), E>`",
                    read.item.sig.ident
                ),
                None => format!(
                    "`{ident}` has no write method: add one, e.g. `fn put(&self, key: &K, value: &V) -> Result<(), E>`"
                ),
            };
            let span = read.map_or_else(|| ident.span(), |read| read.item.sig.ident.span());
            errors.push(Error::new(span, message));
        }
        if read.is_none() {
            errors.push(Error::new(
                ident.span(),
                format!("`{ident}` has no read method: add one, e.g. `fn get(&self, key: &K) -> Result<Option<V>, E>`"),
            ));
        }
        if delete.is_none() {
            errors.push(Error::new(
                ident.span(),
                format!(
                    "`{ident}` has no delete method: the migration removes stale copies from NEW through it; add \
                     one, e.g. `fn delete(&self, key: &K) -> Result<(), E>`"
                ),
            ));
        }
        for method in &self.methods {
            if let Some((Kind::Old | Kind::New, _)) = method.kind {
                check_receiver(method, errors);
            }
        }
        let (read, write, delete) = (read?, write?, delete?);

        // The write defines the table: `fn put(&self, key: &K, value: &V) -> Result<(), E>`.
        let key = keyed(write, errors)?;
        let value = argument(write, 2, "the value, as `value: &V`", errors)?;
        let error = unit_result(write, errors)?;
        let read_key = keyed(read, errors);
        let read_value = read_result(read, errors);
        let delete_key = keyed(delete, errors);
        let delete_error = unit_result(delete, errors);
        same(read_key, key, "key", read, write, errors);
        same(delete_key, key, "key", delete, write, errors);
        same(read_value.map(|(v, _)| v), value, "value", read, write, errors);
        same(read_value.map(|(_, e)| e), error, "error", read, write, errors);
        same(delete_error, error, "error", delete, write, errors);
        let updates =
            updates.iter().filter_map(|update| check_update(update, key, value, error, write, errors)).collect();
        self.check_passed_writes(key, mode, errors);
        Some(Table { key, value, error, read, write, delete, updates })
    }
}

impl Repository<'_> {
    /// A method named as a write or delete of the table's keys (a write verb, or another verb that
    /// changes things: `update_status`, `archive_order`) cannot be passed through to one store: to
    /// NEW alone it never reaches OLD, which answers for every key until the migration completes;
    /// to OLD alone NEW keeps serving its older copy. Nor can a passed-through method hand out a
    /// store's `Backend`, through which every call goes around the migration.
    fn check_passed_writes(&self, key: &Type, mode: Mode, errors: &mut Errors) {
        let key_words = key_words(key);
        for method in &self.methods {
            let Some((kind @ (Kind::Old | Kind::New), Some(span))) = method.kind else { continue };
            let sig = &method.item.sig;
            let name = &sig.ident;
            let typed = || {
                sig.inputs.iter().filter_map(|input| match input {
                    FnArg::Typed(arg) => Some(&*arg.ty),
                    FnArg::Receiver(_) => None,
                })
            };
            // Returned, or lent to a closure argument (`f: impl FnOnce(&Backend<Store>)`).
            let returned = match &sig.output {
                ReturnType::Type(_, ty) => Some(&**ty),
                ReturnType::Default => None,
            };
            let store =
                |ty: &&Type| idents(ty.to_token_stream()).iter().any(|ident| ident == "Backend" || ident == "Held");
            if let Some(ty) = returned.into_iter().chain(typed()).find(store) {
                errors.push(Error::new_spanned(
                    ty,
                    format!(
                        "`{name}` would hand out a store: every call through it goes around the migration, which \
                         then cannot keep OLD and NEW in step; return what the store computes instead"
                    ),
                ));
                continue;
            }
            let Some(verb) = ast::changes_by_name(&name.to_string()) else { continue };
            // The table's key in any argument, or in a generic parameter (`Q: Borrow<K>`).
            let first_is_key = typed().next().is_some_and(|ty| mentions(ty.to_token_stream(), &key_words));
            let keyed = typed().any(|ty| mentions(ty.to_token_stream(), &key_words))
                || mentions(sig.generics.to_token_stream(), &key_words);
            if !keyed {
                continue;
            }
            let why = if kind == Kind::New {
                "passed through to NEW alone it would never reach OLD, which answers for every key until the \
                 migration completes"
            } else {
                "passed through to OLD alone it would leave NEW serving its older copy of each key"
            };
            let route = if first_is_key {
                "route it"
            } else {
                "take the table's key (or keys) as its first argument and route it"
            };
            let instead = format!("{route} with `#[zddm({})]`: it then runs on OLD, {}", verb.name(), updated(mode));
            errors.push(Error::new(
                span,
                format!("`{name}` writes the table's keys: {why}; {instead} (see docs/repository-macro.md)"),
            ));
        }
    }

    /// A fleet mode calls each store from many tasks at once (no mutex around it): every routed
    /// method takes `&self`.
    fn check_shared(&self, mode: Mode, errors: &mut Errors) {
        for method in self.methods.iter().filter(|method| method.kind.is_some()) {
            if let Some(FnArg::Receiver(receiver)) = method.item.sig.inputs.first() {
                if matches!(receiver.kind, ReceiverKind::Reference(_, _, Some(_))) {
                    errors.push(Error::new_spanned(
                        receiver,
                        format!(
                            "`mode = {}` calls each store from many tasks at once, without a lock: take `&self` \
                             here and keep mutable state behind the store's own pool or lock",
                            mode.name()
                        ),
                    ));
                }
            }
        }
    }
}

fn check_receiver(method: &Method, errors: &mut Errors) -> bool {
    let sig = &method.item.sig;
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) if matches!(receiver.kind, ReceiverKind::Reference(..)) => true,
        Some(FnArg::Receiver(receiver)) => {
            errors.push(Error::new_spanned(
                receiver,
                "the migration keeps its stores and lends them to each call: take `&self` or `&mut self` here",
            ));
            false
        }
        _ => {
            errors.push(Error::new_spanned(
                &sig.ident,
                format!("`{}` needs a `&self` or `&mut self` receiver to be routed through the migration", sig.ident),
            ));
            false
        }
    }
}

/// `&self, key: &K, …`: the key's type `K`.
fn keyed<'a>(method: &'a Method, errors: &mut Errors) -> Option<&'a Type> {
    let sig = &method.item.sig;
    if !check_receiver(method, errors) {
        return None;
    }
    // Lifetimes and where-clauses are fine; a type or const parameter would mean more than one key or
    // value type for one table.
    if sig.generics.type_params().next().is_some() || sig.generics.const_params().next().is_some() {
        errors.push(Error::new_spanned(
            &sig.generics,
            format!(
                "`{}` cannot take type parameters: the migration routes one key and value type (lifetimes are fine; \
                 pass generic methods through with `#[zddm(old)]` or `#[zddm(new)]`)",
                sig.ident
            ),
        ));
        return None;
    }
    argument(method, 1, "the key, as `key: &K` (K: zddm::MigrationKey)", errors)
}

/// The referent of the `index`th input (after the receiver), which must be a shared reference.
fn argument<'a>(method: &'a Method, index: usize, what: &str, errors: &mut Errors) -> Option<&'a Type> {
    let sig = &method.item.sig;
    match sig.inputs.iter().nth(index) {
        Some(FnArg::Typed(arg)) => match &*arg.ty {
            Type::Reference(reference) if reference.mutability.is_none() => Some(&reference.elem),
            other => {
                errors.push(Error::new_spanned(other, format!("take {what}: by shared reference")));
                None
            }
        },
        _ => {
            errors.push(Error::new_spanned(&sig.ident, format!("`{}` needs {what}", sig.ident)));
            None
        }
    }
}

/// `Result<Ok, Err>`.
fn result(ty: &Type) -> Option<(&Type, &Type)> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(ok), Some(err), None) => Some((ok, err)),
        _ => None,
    }
}

fn returned<'a>(method: &'a Method, expected: &str, errors: &mut Errors) -> Option<(&'a Type, &'a Type)> {
    let sig = &method.item.sig;
    let found = match (ast::future_output(sig), &sig.output) {
        (Some(output), _) => result(output),
        (None, ReturnType::Type(_, ty)) => result(ty),
        (None, ReturnType::Default) => None,
    };
    if found.is_none() {
        let message = format!(
            "`{}` must return `{expected}` (written out in full, not through an alias): the migration reports \
             failures of either store through `E`",
            sig.ident
        );
        match &sig.output {
            ReturnType::Type(_, ty) => errors.push(Error::new_spanned(ty, message)),
            ReturnType::Default => errors.push(Error::new_spanned(&sig.ident, message)),
        }
    }
    found
}

/// `Result<(), E>`: the error type.
fn unit_result<'a>(method: &'a Method, errors: &mut Errors) -> Option<&'a Type> {
    let (ok, err) = returned(method, "Result<(), E>", errors)?;
    if !matches!(ok, Type::Tuple(tuple) if tuple.elems.is_empty()) {
        errors.push(Error::new_spanned(ok, format!("`{}` must return `Result<(), E>`", method.item.sig.ident)));
        return None;
    }
    Some(err)
}

/// `Result<Option<V>, E>`: the value and error types.
fn read_result<'a>(method: &'a Method, errors: &mut Errors) -> Option<(&'a Type, &'a Type)> {
    let (ok, err) = returned(method, "Result<Option<V>, E>", errors)?;
    let value = match ok {
        Type::Path(path) => {
            path.path.segments.last().filter(|last| last.ident == "Option").and_then(|last| match &last.arguments {
                PathArguments::AngleBracketed(args) if args.args.len() == 1 => match args.args.first() {
                    Some(GenericArgument::Type(ty)) => Some(ty),
                    _ => None,
                },
                _ => None,
            })
        }
        _ => None,
    };
    match value {
        Some(value) => Some((value, err)),
        None => {
            errors.push(Error::new_spanned(
                ok,
                format!(
                    "`{}` must return `Result<Option<V>, E>`: `None` says the key is absent, which the migration \
                     must tell apart from a failure",
                    method.item.sig.ident
                ),
            ));
            None
        }
    }
}

/// Reports `found` differing from the write's type, at `found`.
fn same(found: Option<&Type>, expected: &Type, what: &str, method: &Method, write: &Method, errors: &mut Errors) {
    let Some(found) = found else { return };
    let text = |ty: &Type| ty.to_token_stream().to_string();
    if text(found) != text(expected) {
        // A second write's key comes first: one of the others may be it (`update_status(status, key)`).
        let first = what == "key" && !std::ptr::eq(method.item, write.item);
        let hint = if first { ", which a second write takes as its first argument" } else { "" };
        errors.push(Error::new(
            found.span(),
            format!(
                "the {what} type of `{}` is `{}`, but the write `{}` uses `{}`: a repository migrates one table, so \
                 its read, write and delete share one {what} type{hint}",
                method.item.sig.ident,
                text(found).replace(' ', ""),
                write.item.sig.ident,
                text(expected).replace(' ', ""),
            ),
        ));
    }
}

/// A routed update: `fn archive(&self, key: &K, …) -> Result<T, E>` (or `keys: &[K]`,
/// `entries: &[(K, V)]`, either as a `&Vec`, or an `impl IntoIterator` of keys or entries), every
/// other argument by shared reference (the call is prepared for OLD and for NEW, and runs on one
/// of them).
fn check_update<'a>(
    method: &'a Method<'a>,
    key: &Type,
    value: &Type,
    error: &Type,
    write: &Method,
    errors: &mut Errors,
) -> Option<(&'a Method<'a>, Keys)> {
    if let Some(item) = method.item.sig.inputs.iter().nth(1).and_then(|input| match input {
        FnArg::Typed(arg) => iterated(&arg.ty),
        FnArg::Receiver(_) => None,
    }) {
        if !check_receiver(method, errors) {
            return None;
        }
        let keys = Keys::Iter(iterator_item(item, key, value, method, write, errors)?);
        check_rest(method, error, write, errors);
        return Some((method, keys));
    }
    let found = keyed(method, errors)?;
    let keys = match elements(found) {
        Some(elem) => match elem {
            Type::Tuple(pair) if pair.elems.len() == 2 => {
                same(pair.elems.first(), key, "key", method, write, errors);
                same(pair.elems.last(), value, "value", method, write, errors);
                Keys::Pairs
            }
            elem => {
                same(Some(elem), key, "key", method, write, errors);
                Keys::Slice
            }
        },
        None => {
            same(Some(found), key, "key", method, write, errors);
            Keys::One
        }
    };
    check_rest(method, error, write, errors);
    Some((method, keys))
}

/// The arguments after the keys, by shared reference, and the result, `Result<T, E>`.
fn check_rest(method: &Method, error: &Type, write: &Method, errors: &mut Errors) {
    for input in method.item.sig.inputs.iter().skip(2) {
        if let FnArg::Typed(arg) = input {
            if !matches!(&*arg.ty, Type::Reference(reference) if reference.mutability.is_none()) {
                errors.push(Error::new_spanned(
                    &arg.ty,
                    format!(
                        "take this argument of `{}` by shared reference: a routed write is prepared for OLD and for \
                         NEW (in `Complete`), and runs on one of them",
                        method.item.sig.ident
                    ),
                ));
            }
        }
    }
    if let Some((_, err)) = returned(method, "Result<T, E>", errors) {
        same(Some(err), error, "error", method, write, errors);
    }
}

/// `[T]` or `Vec<T>` (borrowed as `&[T]` / `&Vec<T>`, iterated alike): `T`.
fn elements(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Slice(slice) => Some(&slice.elem),
        Type::Path(path) => {
            let last = path.path.segments.last().filter(|last| last.ident == "Vec")?;
            let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
            match args.args.first() {
                Some(GenericArgument::Type(elem)) if args.args.len() == 1 => Some(elem),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Which of the shapes an iterator's item has, each part checked against the table's types.
fn iterator_item(
    item: &Type,
    key: &Type,
    value: &Type,
    method: &Method,
    write: &Method,
    errors: &mut Errors,
) -> Option<Item> {
    fn referent(ty: &Type) -> Option<&Type> {
        match ty {
            Type::Reference(reference) if reference.mutability.is_none() => Some(&reference.elem),
            _ => None,
        }
    }
    fn pair(ty: &Type) -> Option<(&Type, &Type)> {
        match ty {
            Type::Tuple(tuple) if tuple.elems.len() == 2 => Some((&tuple.elems[0], &tuple.elems[1])),
            _ => None,
        }
    }
    let found = match (referent(item), pair(item)) {
        (Some(inner), _) => match pair(inner) {
            Some((k, v)) => Some((Item::PairRef, k, Some(v))),
            None => Some((Item::KeyRef, inner, None)),
        },
        (None, Some((k, v))) => match (referent(k), referent(v)) {
            (Some(k), Some(v)) => Some((Item::PairOfRefs, k, Some(v))),
            (None, None) => Some((Item::Pair, k, Some(v))),
            _ => None,
        },
        (None, None) => Some((Item::Key, item, None)),
    };
    let Some((shape, found_key, found_value)) = found else {
        errors.push(Error::new_spanned(
            item,
            format!(
                "the items of `{}`'s iterator are neither keys nor entries: yield keys as `&K` or `K`, or entries \
                 as `(&K, &V)`, `&(K, V)` or `(K, V)`",
                method.item.sig.ident,
            ),
        ));
        return None;
    };
    same(Some(found_key), key, "key", method, write, errors);
    same(found_value, value, "value", method, write, errors);
    Some(shape)
}

/// How each mode keeps NEW in step around a write routed as an update.
fn updated(mode: Mode) -> &'static str {
    match mode {
        Mode::Local => "with each key locked, and NEW's copies removed",
        Mode::Cached => "with each key marked in NEW, and NEW's copies invalidated after it",
        Mode::Versioned => "with each key marked in NEW, and NEW given OLD's state of each key after it",
    }
}

/// What names `key` in a signature: the identifiers of its type (`OrderKey`; `u32` and `String`
/// for `(u32, String)`), all of which must appear.
fn key_words(key: &Type) -> Vec<String> {
    match key {
        // A path names the key by its last segment (`crate::OrderKey`).
        Type::Path(path) => path.path.segments.last().map(|last| last.ident.to_string()).into_iter().collect(),
        other => idents(other.to_token_stream()),
    }
}

/// Every identifier in `tokens`, nested groups included.
fn idents(tokens: proc_macro2::TokenStream) -> Vec<String> {
    let mut out = Vec::new();
    for token in tokens {
        match token {
            proc_macro2::TokenTree::Ident(ident) => out.push(ident.to_string()),
            proc_macro2::TokenTree::Group(group) => out.extend(idents(group.stream())),
            _ => {}
        }
    }
    out
}

/// Whether `tokens` hold every identifier in `words` (a key of several types names them all).
fn mentions(tokens: proc_macro2::TokenStream, words: &[String]) -> bool {
    let found = idents(tokens);
    !words.is_empty() && words.iter().all(|word| found.contains(word))
}
