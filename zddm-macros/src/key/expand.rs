//! Code generation for `#[derive(MigrationKey)]`.

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse_quote, DeriveInput, Generics};

use super::ast::{Enum, Field, Input, Struct};
use super::attr::Errors;

pub fn derive(node: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let input = Input::from_syn(node, &mut errors);
    if let Some(input) = &input {
        input.validate(&mut errors);
    }
    match (errors.finish(), input) {
        (Ok(()), Some(input)) => impl_key(&input),
        // `from_syn` returns None only after reporting why, so this arm always carries an error.
        (Err(error), _) => {
            // The impl is still emitted, so uses of the type do not add "not a MigrationKey" errors
            // on top of the real one.
            let mut tokens = error.to_compile_error();
            tokens.extend(fallback(node));
            tokens
        }
        (Ok(()), None) => fallback(node),
    }
}

// Input:
//     #[derive(MigrationKey)]
//     struct OrderKey<T> { tenant: T, #[zddm(bytes)] id: Vec<u8> }
//
// Output:
//     #[automatically_derived]
//     impl<T> ::zddm::__private::MigrationKey for OrderKey<T>
//     where
//         T: ::zddm::__private::MigrationKey,
//     {
//         fn encode_key<__S: ::zddm::__private::KeySink + ?::core::marker::Sized>(&self, __sink: &mut __S) {
//             <T as ::zddm::__private::MigrationKey>::encode_key(&self.tenant, __sink);
//             <Vec<u8> as ::zddm::__private::ByteKey>::encode_bytes(&self.id, __sink);
//         }
//         fn write_schema(__out: &mut ::zddm::__private::String) {
//             ::zddm::__private::schema_fields(__out, &[
//                 <T as ::zddm::__private::MigrationKey>::write_schema,
//                 <Vec<u8> as ::zddm::__private::ByteKey>::write_schema,
//             ]);
//         }
//         fn decode_key(__reader: &mut ::zddm::__private::KeyReader<'_>)
//             -> ::zddm::__private::Result<Self, ::zddm::__private::KeyError>
//         {
//             ::zddm::__private::Result::Ok(Self {
//                 tenant: <T as ::zddm::__private::MigrationKey>::decode_key(__reader)?,
//                 id: <Vec<u8> as ::zddm::__private::ByteKey>::decode_bytes(__reader)?,
//             })
//         }
//     }
fn impl_key(input: &Input) -> TokenStream {
    let decode = match input {
        Input::Struct(input) => struct_decode(input),
        Input::Enum(input) => enum_decode(input),
    };
    let (encode, schema) = match input {
        Input::Struct(input) => struct_body(input),
        Input::Enum(input) => enum_body(input),
    };
    let generics = bounded(input);
    let ident = input.ident();
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::zddm::__private::MigrationKey for #ident #ty_generics #where_clause {
            #[inline]
            fn encode_key<__S: ::zddm::__private::KeySink + ?::core::marker::Sized>(&self, __sink: &mut __S) {
                #encode
            }

            fn write_schema(__out: &mut ::zddm::__private::String) {
                #schema
            }

            fn decode_key(
                __reader: &mut ::zddm::__private::KeyReader<'_>,
            ) -> ::zddm::__private::Result<Self, ::zddm::__private::KeyError> {
                #decode
            }
        }
    }
}

fn struct_decode(input: &Struct) -> TokenStream {
    let fields = input.fields.iter().map(|field| {
        let member = &field.member;
        let decode = decode_field(field);
        quote!(#member: #decode)
    });
    quote!(::zddm::__private::Result::Ok(Self { #(#fields),* }))
}

// Input: the enum above.
// Output (inside the impl):
//     fn decode_key(__reader: …) -> … {
//         match ::zddm::__private::KeyReader::read_tag(__reader)? {
//             2u32 => ::zddm::__private::Result::Ok(Self::Team { 0: <Vec<u8> as …::ByteKey>::decode_bytes(__reader)? }),
//             1u32 => ::zddm::__private::Result::Ok(Self::User { id: <u64 as …>::decode_key(__reader)? }),
//             _ => ::zddm::__private::Result::Err(__reader.malformed("a tag that names no variant")),
//         }
//     }
fn enum_decode(input: &Enum) -> TokenStream {
    let arms = input.variants.iter().map(|variant| {
        let ident = &variant.original.ident;
        let tag = variant.attrs.tag.as_ref().map_or(0, |tag| tag.value);
        let fields = variant.fields.iter().map(|field| {
            let member = &field.member;
            let decode = decode_field(field);
            quote!(#member: #decode)
        });
        quote!(#tag => ::zddm::__private::Result::Ok(Self::#ident { #(#fields),* }),)
    });
    quote! {
        match ::zddm::__private::KeyReader::read_tag(__reader)? {
            #(#arms)*
            _ => ::zddm::__private::Result::Err(
                ::zddm::__private::KeyReader::malformed(__reader, "a tag that names no variant"),
            ),
        }
    }
}

fn decode_field(field: &Field) -> TokenStream {
    let ty = field.ty;
    if field.attrs.bytes.is_some() {
        quote_spanned!(ty.span()=> <#ty as ::zddm::__private::ByteKey>::decode_bytes(__reader)?)
    } else {
        quote_spanned!(ty.span()=> <#ty as ::zddm::__private::MigrationKey>::decode_key(__reader)?)
    }
}

fn struct_body(input: &Struct) -> (TokenStream, TokenStream) {
    let encode = input.fields.iter().map(|field| {
        let member = &field.member;
        encode_field(field, quote!(&self.#member))
    });
    let schema = schema_fields(&input.fields);
    (quote!(#(#encode)*), schema)
}

// Input:
//     #[derive(MigrationKey)]
//     enum Owner { #[zddm(tag = 2)] Team(#[zddm(bytes)] Vec<u8>), #[zddm(tag = 1)] User { id: u64 } }
//
// Output (inside the impl):
//     fn encode_key<__S: …>(&self, __sink: &mut __S) {
//         match self {
//             Self::Team { 0: __field0 } => {
//                 ::zddm::__private::KeySink::write_tag(__sink, 2u32);
//                 <Vec<u8> as ::zddm::__private::ByteKey>::encode_bytes(__field0, __sink);
//             }
//             Self::User { id: __field0 } => { … }
//         }
//     }
//     fn write_schema(__out: &mut ::zddm::__private::String) {
//         // variants in tag order: reordering them in the source changes nothing
//         __out.push_str("enum{1:(");
//         ::zddm::__private::schema_fields(__out, &[<u64 as ::zddm::__private::MigrationKey>::write_schema]);
//         __out.push_str("),2:(");
//         …
//         __out.push_str(")}");
//     }
fn enum_body(input: &Enum) -> (TokenStream, TokenStream) {
    let arms = input.variants.iter().map(|variant| {
        let ident = &variant.original.ident;
        let tag = variant.attrs.tag.as_ref().map_or(0, |tag| tag.value);
        let bindings: Vec<Ident> = (0..variant.fields.len()).map(|i| format_ident!("__field{}", i)).collect();
        let members = variant.fields.iter().map(|field| &field.member);
        let encode = variant.fields.iter().zip(&bindings).map(|(field, binding)| encode_field(field, quote!(#binding)));
        quote! {
            Self::#ident { #(#members: #bindings),* } => {
                ::zddm::__private::KeySink::write_tag(__sink, #tag);
                #(#encode)*
            }
        }
    });
    let encode = if input.variants.is_empty() { quote!(match *self {}) } else { quote!(match self { #(#arms)* }) };

    let mut by_tag: Vec<_> = input.variants.iter().collect();
    by_tag.sort_by_key(|variant| variant.attrs.tag.as_ref().map(|tag| tag.value));
    let variants = by_tag.iter().enumerate().map(|(i, variant)| {
        let tag = variant.attrs.tag.as_ref().map_or(0, |tag| tag.value);
        let open = format!("{}{tag}:(", if i == 0 { "" } else { "," });
        let fields = schema_fields(&variant.fields);
        quote! {
            __out.push_str(#open);
            #fields
            __out.push_str(")");
        }
    });
    let schema = quote! {
        __out.push_str("enum{");
        #(#variants)*
        __out.push_str("}");
    };
    (encode, schema)
}

fn encode_field(field: &Field, access: TokenStream) -> TokenStream {
    let ty = field.ty;
    // Spanned at the field type: "not a MigrationKey" / "not a byte string" errors point there.
    if field.attrs.bytes.is_some() {
        quote_spanned!(ty.span()=> <#ty as ::zddm::__private::ByteKey>::encode_bytes(#access, __sink);)
    } else {
        quote_spanned!(ty.span()=> <#ty as ::zddm::__private::MigrationKey>::encode_key(#access, __sink);)
    }
}

fn schema_fields(fields: &[Field]) -> TokenStream {
    let writers = fields.iter().map(|field| {
        let ty = field.ty;
        if field.attrs.bytes.is_some() {
            quote_spanned!(ty.span()=> <#ty as ::zddm::__private::ByteKey>::write_schema)
        } else {
            quote_spanned!(ty.span()=> <#ty as ::zddm::__private::MigrationKey>::write_schema)
        }
    });
    quote!(::zddm::__private::schema_fields(__out, &[#(#writers),*]);)
}

/// The input's generics plus a bound for each field whose type mentions a type parameter: the field
/// type itself must encode (so `PhantomData<T>` needs nothing of `T`).
fn bounded(input: &Input) -> Generics {
    let mut generics = input.generics().clone();
    let params: Vec<Ident> = generics.type_params().map(|param| param.ident.clone()).collect();
    if params.is_empty() {
        return generics;
    }
    let predicates: Vec<syn::WherePredicate> = input
        .fields()
        .filter(|field| mentions(field.ty, &params))
        .map(|field| {
            let ty = field.ty;
            if field.attrs.bytes.is_some() {
                parse_quote!(#ty: ::zddm::__private::ByteKey)
            } else {
                parse_quote!(#ty: ::zddm::__private::MigrationKey)
            }
        })
        .collect();
    generics.make_where_clause().predicates.extend(predicates);
    generics
}

fn mentions(ty: &syn::Type, params: &[Ident]) -> bool {
    fn walk(tokens: TokenStream, params: &[Ident]) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => params.contains(&ident),
            TokenTree::Group(group) => walk(group.stream(), params),
            _ => false,
        })
    }
    walk(quote!(#ty), params)
}

/// The impl emitted next to errors: empty bodies, no bounds, so it cannot add errors of its own.
fn fallback(node: &DeriveInput) -> TokenStream {
    let ident = &node.ident;
    let (impl_generics, ty_generics, where_clause) = node.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::zddm::__private::MigrationKey for #ident #ty_generics #where_clause {
            fn encode_key<__S: ::zddm::__private::KeySink + ?::core::marker::Sized>(&self, _: &mut __S) {}
            fn write_schema(_: &mut ::zddm::__private::String) {}
        }
    }
}
