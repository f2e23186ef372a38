//! `#[zddm(...)]` arguments: `bytes` on a field, `tag = N` on an enum variant.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Error, LitInt, Meta, Token};

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
}

pub struct Tag {
    pub value: u32,
    pub literal: LitInt,
}

/// Collects every error instead of stopping at the first, so one mistake is reported with all others.
#[derive(Default)]
pub struct Errors(Option<Error>);

impl Errors {
    pub fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn finish(self) -> Result<(), Error> {
        self.0.map_or(Ok(()), Err)
    }
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
        let result = attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("bytes") {
                if place != Place::Field {
                    return Err(meta.error("`bytes` goes on a field: `#[zddm(bytes)] id: Vec<u8>`"));
                }
                if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    return Err(meta.error("`bytes` takes no value: write `#[zddm(bytes)]`"));
                }
                if out.bytes.is_some() {
                    errors.push(meta.error("duplicate `bytes`: write it once"));
                }
                out.bytes = Some(path.span());
            } else if path.is_ident("tag") {
                if place != Place::Variant {
                    return Err(meta.error("`tag` goes on an enum variant: `#[zddm(tag = 1)] Variant`"));
                }
                let tag = parse_tag(&meta)?;
                if out.tag.is_some() {
                    errors.push(Error::new_spanned(&tag.literal, "duplicate `tag`: give each variant one tag"));
                } else {
                    out.tag = Some(tag);
                }
            } else {
                let what = match place {
                    Place::Field => "`bytes` on a field",
                    Place::Variant => "`tag = N` on an enum variant",
                    Place::Container => "`bytes` on a field or `tag = N` on an enum variant, not on the type itself",
                };
                return Err(Error::new_spanned(
                    path,
                    format!(
                        "unknown zddm argument `{}`: expected {what}",
                        quote::quote!(#path).to_string().replace(' ', "")
                    ),
                ));
            }
            Ok(())
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    out
}

fn parse_tag(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Tag> {
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
