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

const ARGS_HELP: &str = "write `#[zddm::migrate(old = OldStore, new = NewStore)]`";

/// Parses `old = …, new = …` in any order; duplicates, unknown and missing arguments are errors.
pub fn parse_args(tokens: TokenStream, errors: &mut Errors) -> Option<Args> {
    let mut old = None;
    let mut new = None;
    let parser = |input: ParseStream| {
        while !input.is_empty() {
            let name: Ident = input.parse()?;
            let slot = match name.to_string().as_str() {
                "old" => &mut old,
                "new" => &mut new,
                _ => {
                    return Err(Error::new(
                        name.span(),
                        format!("unknown argument `{name}`: #[zddm::migrate] takes `old` and `new`; {ARGS_HELP}"),
                    ))
                }
            };
            input.parse::<Token![=]>().map_err(|e| Error::new(e.span(), format!("expected `{name} = StoreType`")))?;
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
    if let Err(error) = parser.parse2(tokens) {
        errors.push(error);
        return None;
    }
    match (old, new) {
        (Some((_, old)), Some((_, new))) => Some(Args { old, new }),
        (old, new) => {
            let missing = match (old.is_some(), new.is_some()) {
                (false, false) => "the `old` and `new` stores are missing",
                (false, true) => "the `old` store is missing",
                _ => "the `new` store is missing",
            };
            errors.push(Error::new(Span::call_site(), format!("{missing}: {ARGS_HELP}")));
            None
        }
    }
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
