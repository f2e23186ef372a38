//! `#[zddm(...)]` arguments: `bytes` on a field, `tag = N` on an enum variant.

use proc_macro2::{Span, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Error, LitInt, Meta, Token};

pub use crate::errors::Errors;

/// Where an attribute stands, which decides the arguments it may take.
#[derive(Clone, Copy, PartialEq)]
pub enum Place {
    Container,
    Variant,
    Field,
}

#[derive(Default)]
pub struct Attrs {
    /// `#[zddm(bytes)]`, with the span of `bytes`.
    pub bytes: Option<Span>,
    /// `#[zddm(tag = N)]`.
    pub tag: Option<Tag>,
    /// A `tag` argument was written, even if it was malformed.
    pub tag_written: bool,
}

pub struct Tag {
    pub value: u32,
    pub literal: LitInt,
}

pub fn parse(attrs: &[Attribute], place: Place, errors: &mut Errors) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("zddm")) {
        if !matches!(attr.meta, Meta::List(_)) {
            errors.push(Error::new_spanned(
                attr,
                "expected `#[zddm(...)]`: write `#[zddm(bytes)]` on a byte field or `#[zddm(tag = N)]` on an enum variant",
            ));
            continue;
        }
        // Each argument's mistake is reported and parsing goes on with the next argument, so one
        // attribute shows all of its errors and a valid `tag` next to a bad argument still counts.
        let result = attr.parse_nested_meta(|meta| {
            if let Err(error) = argument(&meta, place, &mut out, errors) {
                errors.push(error);
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    out
}

fn argument(meta: &ParseNestedMeta, place: Place, out: &mut Attrs, errors: &mut Errors) -> syn::Result<()> {
    let path = &meta.path;
    if path.is_ident("bytes") {
        if place != Place::Field {
            return Err(meta.error("`bytes` goes on a field: `#[zddm(bytes)] id: Vec<u8>`"));
        }
        if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
            return Err(meta.error("`bytes` takes no value: write `#[zddm(bytes)]`"));
        }
        if out.bytes.is_some() {
            return Err(meta.error("duplicate `bytes`: write it once"));
        }
        out.bytes = Some(path.span());
        Ok(())
    } else if path.is_ident("tag") {
        if place != Place::Variant {
            return Err(meta.error("`tag` goes on an enum variant: `#[zddm(tag = 1)] Variant`"));
        }
        // Even a malformed tag was meant as one: do not also report the variant as untagged.
        out.tag_written = true;
        let tag = parse_tag(meta)?;
        if out.tag.is_some() {
            errors.push(Error::new_spanned(&tag.literal, "duplicate `tag`: give each variant one tag"));
        } else {
            out.tag = Some(tag);
        }
        Ok(())
    } else {
        let what = match place {
            Place::Field => "`bytes` on a field",
            Place::Variant => "`tag = N` on an enum variant",
            Place::Container => "`bytes` on a field or `tag = N` on an enum variant, not on the type itself",
        };
        let name = path.segments.iter().map(|segment| segment.ident.to_string()).collect::<Vec<_>>().join("::");
        Err(Error::new_spanned(path, format!("unknown zddm argument `{name}`: expected {what}")))
    }
}

/// Consumes what is left of a rejected argument (`= value` or `(...)`), up to the next comma.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn parse_tag(meta: &ParseNestedMeta) -> syn::Result<Tag> {
    const HELP: &str = "a tag is a u32 literal, 0 to 4294967295: `#[zddm(tag = 1)]`";
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        return Err(meta.error(format!("`tag` needs a value: {HELP}")));
    }
    let value = meta.value()?;
    if value.peek(Token![-]) {
        let minus: Token![-] = value.parse()?;
        return Err(Error::new(minus.span, format!("a tag cannot be negative: {HELP}")));
    }
    let literal: LitInt =
        value.parse().map_err(|err| Error::new(err.span(), format!("expected an integer tag: {HELP}")))?;
    let value = literal
        .base10_parse::<u32>()
        .map_err(|_| Error::new_spanned(&literal, format!("tag {literal} does not fit a u32: {HELP}")))?;
    Ok(Tag { value, literal })
}
