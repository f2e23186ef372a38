//! Checks that need the whole model: tags present and unique, and no field type that can never have
//! a stable encoding.

use std::collections::BTreeMap;

use syn::{Error, GenericArgument, PathArguments, Type};

use super::ast::{Enum, Field, Input};
use super::attr::Errors;

impl Input<'_> {
    pub fn validate(&self, errors: &mut Errors) {
        if let Input::Enum(input) = self {
            input.validate(errors);
        }
        for field in self.fields() {
            field.validate(errors);
        }
    }
}

impl Enum<'_> {
    fn validate(&self, errors: &mut Errors) {
        let mut seen = BTreeMap::new();
        for variant in &self.variants {
            let ident = &variant.original.ident;
            match &variant.attrs.tag {
                None if variant.attrs.tag_written => {}
                None => errors.push(Error::new_spanned(
                    ident,
                    format!(
                        "enum variant `{ident}` has no tag: add `#[zddm(tag = N)]` with a number no other \
                         variant uses; the tag is what the key encoding stores, so reordering variants \
                         never moves keys to other buckets"
                    ),
                )),
                Some(tag) => {
                    if let Some(first) = seen.insert(tag.value, ident) {
                        errors.push(Error::new_spanned(
                            &tag.literal,
                            format!(
                                "tag {} is already used by variant `{first}`: give `{ident}` a tag no other variant uses",
                                tag.value
                            ),
                        ));
                        seen.insert(tag.value, first);
                    }
                }
            }
        }
    }
}

impl Field<'_> {
    fn validate(&self, errors: &mut Errors) {
        if self.attrs.bytes.is_none() {
            check_type(self.ty, errors);
        }
    }
}

/// Reports floats and hash collections anywhere inside a field type (`Option<f64>`, `Vec<HashSet<_>>`).
/// Anything else without a `MigrationKey` impl is reported by rustc through `on_unimplemented`.
fn check_type(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Path(path) => {
            if let Some(last) = path.path.segments.last() {
                // A marker encodes nothing, whatever it marks.
                if last.ident == "PhantomData" {
                    return;
                }
                if let Some(message) = unencodable(&last.ident.to_string()) {
                    errors.push(Error::new_spanned(ty, message));
                    return;
                }
            }
            for segment in &path.path.segments {
                if let PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        if let GenericArgument::Type(inner) = arg {
                            check_type(inner, errors);
                        }
                    }
                }
            }
        }
        Type::Reference(reference) => check_type(&reference.elem, errors),
        Type::Array(array) => check_type(&array.elem, errors),
        Type::Slice(slice) => check_type(&slice.elem, errors),
        Type::Paren(paren) => check_type(&paren.elem, errors),
        Type::Group(group) => check_type(&group.elem, errors),
        Type::Tuple(tuple) => tuple.elems.iter().for_each(|elem| check_type(elem, errors)),
        _ => {}
    }
}

fn unencodable(name: &str) -> Option<String> {
    match name {
        "f32" | "f64" => Some(format!(
            "`{name}` cannot be part of a migration key: equal floats have different bytes (0.0 and -0.0, \
             NaN payloads), so one key could land in two buckets; use an integer (e.g. fixed-point cents) \
             or store `{name}::to_bits()` in a `u{}` field",
            &name[1..]
        )),
        "HashMap" | "HashSet" => Some(format!(
            "`{name}` cannot be part of a migration key: its iteration order differs between processes, \
             so the same key would encode differently; use {}",
            if name == "HashMap" { "a `Vec<(K, V)>` sorted by key" } else { "a sorted, deduplicated `Vec<T>`" }
        )),
        _ => None,
    }
}
