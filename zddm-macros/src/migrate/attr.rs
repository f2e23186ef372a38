//! `#[zddm::migrate(old = Type, new = Type, mode = versioned | cached)]` (the stores optional) and
//! `#[zddm(read | write | delete | old | new)]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Error, Ident, Meta, Token, Type};

use super::ast::Kind;
use crate::errors::Errors;

pub struct Args {
    /// The stores, when the trait's crate names them: the migrating type's defaults, checked here.
    /// Without them the stores are whatever the migration is made with (they may live in crates
    /// that depend on this one).
    pub stores: Option<(Type, Type)>,
    pub mode: Mode,
}

/// Which proxy the migration runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `zddm::Proxy`: one process, the stores reached through the trait.
    Local,
    /// `zddm::versioned::VersionedProxy`: OLD a `Source`, NEW a `Target`; a fleet stays consistent.
    Versioned,
    /// `zddm::cached::CachedProxy`: OLD through the trait, NEW a `Cache`; a fleet stays consistent.
    Cached,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Versioned => "versioned",
            Mode::Cached => "cached",
        }
    }
}

/// What was parsed, even when something was missing: the error path still mentions the store types
/// it got, so their imports do not turn into warnings on top of the error.
pub struct Parsed {
    pub old: Option<Type>,
    pub new: Option<Type>,
    /// `Local` unless one of the fleet modes was given.
    pub mode: Mode,
}

impl Parsed {
    pub fn complete(&self) -> Option<Args> {
        let stores = match (&self.old, &self.new) {
            (Some(old), Some(new)) => Some((old.clone(), new.clone())),
            (None, None) => None,
            _ => return None,
        };
        Some(Args { stores, mode: self.mode })
    }
}

const ARGS_HELP: &str = "write `#[zddm::migrate(old = OldStore, new = NewStore)]`";
const MODE_HELP: &str = "write `mode = versioned` (OLD gives versions) or `mode = cached` (NEW is a cache with \
                         leased fills) for a fleet of instances, or leave `mode` out for one process (see \
                         docs/repository-macro.md)";

/// Parses `old = …, new = …` and an optional `mode = …` in any order; duplicates, unknown and
/// missing arguments are errors.
pub fn parse_args(tokens: TokenStream, errors: &mut Errors) -> Parsed {
    let mut old = None;
    let mut new = None;
    let mut mode = Mode::Local;
    let mut mode_given = false;
    let parser = |input: ParseStream| {
        while !input.is_empty() {
            let name: Ident = input.parse()?;
            if name == "mode" {
                input
                    .parse::<Token![=]>()
                    .map_err(|e| Error::new(e.span(), "expected `mode = versioned` or `mode = cached`"))?;
                let value: Ident =
                    input.parse().map_err(|e| Error::new(e.span(), format!("expected a mode: {MODE_HELP}")))?;
                let found = match value.to_string().as_str() {
                    "versioned" => Some(Mode::Versioned),
                    "cached" => Some(Mode::Cached),
                    _ => None,
                };
                if mode_given {
                    errors.push(Error::new(name.span(), "`mode` is given twice: give it once"));
                } else if let Some(found) = found {
                    mode = found;
                } else {
                    errors.push(Error::new(value.span(), format!("unknown mode `{value}`: {MODE_HELP}")));
                }
                mode_given = true;
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                continue;
            }
            let slot = match name.to_string().as_str() {
                "old" => Some(&mut old),
                "new" => Some(&mut new),
                _ => {
                    // Reported, and the rest still parsed: one mistake, one error.
                    errors.push(Error::new(
                        name.span(),
                        format!(
                            "unknown argument `{name}`: #[zddm::migrate] takes `old`, `new` and optionally `mode`; \
                             {ARGS_HELP}"
                        ),
                    ));
                    None
                }
            };
            input.parse::<Token![=]>().map_err(|e| Error::new(e.span(), format!("expected `{name} = StoreType`")))?;
            let Some(slot) = slot else {
                while !input.is_empty() && !input.peek(Token![,]) {
                    input.parse::<proc_macro2::TokenTree>()?;
                }
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                continue;
            };
            let ty: Type = input.parse()?;
            if slot.is_some() {
                errors.push(Error::new(name.span(), format!("`{name}` is given twice: give it once")));
            } else {
                *slot = Some((name, ty));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    };
    let parsed = parser.parse2(tokens);
    let (old, new) = (old.map(|(_, ty)| ty), new.map(|(_, ty)| ty));
    match parsed {
        Err(error) => errors.push(error),
        Ok(()) => {
            // Both stores, or neither (then they are chosen where the migration is made).
            let missing = match (old.is_some(), new.is_some()) {
                (true, true) | (false, false) => None,
                (false, true) => Some("the `old` store is missing"),
                (true, false) => Some("the `new` store is missing"),
            };
            if let Some(missing) = missing {
                errors.push(Error::new(
                    Span::call_site(),
                    format!(
                        "{missing}: {ARGS_HELP}, or name neither store and pick them where the migration is made \
                         (`<Trait>Migration::new(old, new, gate)`)"
                    ),
                ));
            }
        }
    }
    Parsed { old, new, mode }
}

/// The classification an attribute gives a method, if any.
pub fn parse_kind(attrs: &[Attribute], errors: &mut Errors) -> Option<(Kind, Span)> {
    let mut found: Option<(Kind, Span)> = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("zddm")) {
        if !matches!(attr.meta, Meta::List(_)) {
            errors.push(Error::new_spanned(
                attr,
                "expected `#[zddm(read)]`, `#[zddm(write)]`, `#[zddm(delete)]`, `#[zddm(old)]` or `#[zddm(new)]`",
            ));
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            let kind = [Kind::Read, Kind::Write, Kind::Delete, Kind::Old, Kind::New]
                .into_iter()
                .find(|kind| meta.path.is_ident(kind.name()))
                .ok_or_else(|| {
                    meta.error("unknown zddm argument: expected `read`, `write`, `delete`, `old` or `new`")
                })?;
            match found {
                Some((first, _)) => errors.push(meta.error(format!(
                    "this method is marked both `{}` and `{}`: keep the one it does",
                    first.name(),
                    kind.name()
                ))),
                None => found = Some((kind, meta.path.span())),
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    found
}

/// Whether an attribute is one of zddm's, to be removed from the emitted trait.
pub fn is_zddm(attr: &Attribute) -> bool {
    attr.path().is_ident("zddm")
}
