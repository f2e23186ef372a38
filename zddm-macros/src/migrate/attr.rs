//! `#[zddm::migrate(old = Type, new = Type)]` and `#[zddm(read | write | delete | old | new)]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Error, Ident, Meta, Token, Type};

use super::ast::Kind;
use crate::errors::Errors;

pub struct Args {
    pub old: Type,
    pub new: Type,
}

/// What was parsed, even when something was missing: the error path still mentions the store types
/// it got, so their imports do not turn into warnings on top of the error.
pub struct Parsed {
    pub old: Option<Type>,
    pub new: Option<Type>,
}

impl Parsed {
    pub fn complete(&self) -> Option<Args> {
        Some(Args { old: self.old.clone()?, new: self.new.clone()? })
    }
}

const ARGS_HELP: &str = "write `#[zddm::migrate(old = OldStore, new = NewStore)]`";

/// Parses `old = …, new = …` in any order; duplicates, unknown and missing arguments are errors.
pub fn parse_args(tokens: TokenStream, errors: &mut Errors) -> Parsed {
    let mut old = None;
    let mut new = None;
    let parser = |input: ParseStream| {
        while !input.is_empty() {
            let name: Ident = input.parse()?;
            let slot = match name.to_string().as_str() {
                "old" => Some(&mut old),
                "new" => Some(&mut new),
                _ => {
                    // Reported, and the rest still parsed: one mistake, one error.
                    errors.push(Error::new(
                        name.span(),
                        format!("unknown argument `{name}`: #[zddm::migrate] takes `old` and `new`; {ARGS_HELP}"),
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
            let missing = match (old.is_some(), new.is_some()) {
                (true, true) => None,
                (false, false) => Some("the `old` and `new` stores are missing"),
                (false, true) => Some("the `old` store is missing"),
                (true, false) => Some("the `new` store is missing"),
            };
            if let Some(missing) = missing {
                errors.push(Error::new(Span::call_site(), format!("{missing}: {ARGS_HELP}")));
            }
        }
    }
    Parsed { old, new }
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
