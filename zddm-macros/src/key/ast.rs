//! A small model of the input that borrows the original syntax, so every error can point at the
//! user's own tokens.

use syn::{Data, DeriveInput, Error, Fields, Generics, Ident, Member, Type};

use super::attr::{self, Attrs, Errors, Place};

pub enum Input<'a> {
    Struct(Struct<'a>),
    Enum(Enum<'a>),
}

pub struct Struct<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub fields: Vec<Field<'a>>,
}

pub struct Enum<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub variants: Vec<Variant<'a>>,
}

pub struct Variant<'a> {
    pub original: &'a syn::Variant,
    pub attrs: Attrs,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    pub member: Member,
    pub ty: &'a Type,
    pub attrs: Attrs,
}

impl<'a> Input<'a> {
    /// Parses the item and its attributes. Errors go to `errors` and parsing goes on; `None` only for
    /// an input that cannot be a key at all.
    pub fn from_syn(node: &'a DeriveInput, errors: &mut Errors) -> Option<Self> {
        attr::parse(&node.attrs, Place::Container, errors);
        match &node.data {
            Data::Struct(data) => Some(Input::Struct(Struct {
                ident: &node.ident,
                generics: &node.generics,
                fields: Field::multiple(&data.fields, errors),
            })),
            Data::Enum(data) => Some(Input::Enum(Enum {
                ident: &node.ident,
                generics: &node.generics,
                variants: data
                    .variants
                    .iter()
                    .map(|variant| Variant {
                        original: variant,
                        attrs: attr::parse(&variant.attrs, Place::Variant, errors),
                        fields: Field::multiple(&variant.fields, errors),
                    })
                    .collect(),
            })),
            Data::Union(data) => {
                errors.push(Error::new_spanned(
                    data.union_token,
                    "a union cannot be a migration key: which field holds the value is not known, so its \
                     bytes are not either; use an enum with `#[zddm(tag = N)]` on each variant",
                ));
                None
            }
        }
    }

    pub fn fields(&self) -> Box<dyn Iterator<Item = &Field<'a>> + '_> {
        match self {
            Input::Struct(input) => Box::new(input.fields.iter()),
            Input::Enum(input) => Box::new(input.variants.iter().flat_map(|variant| variant.fields.iter())),
        }
    }

    pub fn ident(&self) -> &'a Ident {
        match self {
            Input::Struct(input) => input.ident,
            Input::Enum(input) => input.ident,
        }
    }

    pub fn generics(&self) -> &'a Generics {
        match self {
            Input::Struct(input) => input.generics,
            Input::Enum(input) => input.generics,
        }
    }
}

impl<'a> Field<'a> {
    fn multiple(fields: &'a Fields, errors: &mut Errors) -> Vec<Self> {
        fields
            .iter()
            .enumerate()
            .map(|(i, field)| Field {
                member: match &field.ident {
                    Some(ident) => Member::Named(ident.clone()),
                    None => Member::Unnamed(i.into()),
                },
                ty: &field.ty,
                attrs: attr::parse(&field.attrs, Place::Field, errors),
            })
            .collect()
    }
}
