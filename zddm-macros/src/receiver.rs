//! A store's methods as its companion trait declares them: `&self` becomes an argument of type
//! `&zddm::Backend<Self>`, which only the migration can lend, and `self` in the body becomes that
//! argument. Shared by `#[zddm::migrate]` (the trait's default bodies) and `#[zddm::backend]` (the
//! store's impl).
//!
//! An iterator argument whose items borrow (`ids: impl IntoIterator<Item = &'a K>`) is declared
//! as `ids: ::std::vec::IntoIter<&'a K>`, and the migration collects what it is given into one.
//! Called through a generic parameter with such a bound, an `async fn`'s future cannot be proved
//! `Send` (rust-lang/rust#100013), and the migration's own call could not be spawned.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::quote;
use syn::{
    parse_quote, FnArg, GenericArgument, PathArguments, Receiver, ReceiverKind, Signature, Type, TypeParamBound,
};

/// The argument `self` becomes.
pub fn ident(span: Span) -> Ident {
    Ident::new("__zddm_self", span)
}

/// `&self` / `&'a mut self` / `self` as the same borrow of `::zddm::Backend<Self>`; `None` for
/// receivers the migration cannot lend (`self: Box<Self>`, …), which the caller reports.
pub fn argument(receiver: &Receiver) -> Option<FnArg> {
    let name = ident(receiver.self_token.span);
    let binding = receiver.mutability;
    let backend = quote!(::zddm::Backend<Self>);
    let by_reference = |lifetime: Option<&syn::Lifetime>, mutable: bool| -> FnArg {
        if mutable {
            parse_quote!(#binding #name: &#lifetime mut #backend)
        } else {
            parse_quote!(#binding #name: &#lifetime #backend)
        }
    };
    match &receiver.kind {
        ReceiverKind::Reference(_, lifetime, mutability) => Some(by_reference(lifetime.as_ref(), mutability.is_some())),
        ReceiverKind::Value => Some(parse_quote!(#binding #name: #backend)),
        // `self: &Self`, `self: &mut Self`.
        ReceiverKind::Typed(_, ty) => match &**ty {
            syn::Type::Reference(reference) if is_self(&reference.elem) => {
                Some(by_reference(reference.lifetime.as_ref(), reference.mutability.is_some()))
            }
            ty if is_self(ty) => Some(parse_quote!(#binding #name: #backend)),
            _ => None,
        },
        _ => None,
    }
}

fn is_self(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self"))
}

/// `sig` with its receiver turned into an argument; `false` if it has one that cannot be.
pub fn rewrite_signature(sig: &mut Signature) -> bool {
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        match argument(receiver) {
            Some(argument) => sig.inputs[0] = argument,
            None => return false,
        }
    }
    true
}

/// `tokens` with every `self` (the value, not the `self::` path) renamed, nested groups and macro
/// arguments included. Like `async-trait`'s rewrite, it does not know about items nested in the
/// body that have a receiver of their own.
pub fn rename_self(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Ident(ident) if ident == "self" => {
                let path = matches!(tokens.peek(), Some(TokenTree::Punct(punct)) if punct.as_char() == ':');
                out.push(if path { TokenTree::Ident(ident) } else { TokenTree::Ident(self::ident(ident.span())) });
            }
            TokenTree::Group(group) => {
                let mut renamed = proc_macro2::Group::new(group.delimiter(), rename_self(group.stream()));
                renamed.set_span(group.span());
                out.push(TokenTree::Group(renamed));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// `X` in `impl Trait<Assoc = X>` (other bounds beside), for a `Trait` named in `traits`.
pub fn bound_assoc<'a>(ty: &'a Type, traits: &[&str], assoc: &str) -> Option<&'a Type> {
    let Type::ImplTrait(bounds) = ty else { return None };
    bounds.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else { return None };
        let last = bound.path.segments.last().filter(|last| traits.iter().any(|name| last.ident == name))?;
        let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(found) if found.ident == assoc => Some(&found.ty),
            _ => None,
        })
    })
}

/// `impl IntoIterator<Item = X>` or `impl Iterator<Item = X>` (other bounds beside): `X`.
pub fn iterated(ty: &Type) -> Option<&Type> {
    bound_assoc(ty, &["IntoIterator", "Iterator"], "Item")
}

/// Such an iterator's `X`, if it borrows: a reference or a lifetime in it.
pub fn borrowed_items(ty: &Type) -> Option<&Type> {
    iterated(ty).filter(|item| borrows(item))
}

fn borrows(ty: &Type) -> bool {
    fn any(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Punct(punct) => punct.as_char() == '&' || punct.as_char() == '\'',
            TokenTree::Group(group) => any(group.stream()),
            _ => false,
        })
    }
    any(quote!(#ty))
}

/// `sig` with each argument of borrowed items declared as `::std::vec::IntoIter` of them.
pub fn rewrite_items(sig: &mut Signature) {
    for input in &mut sig.inputs {
        if let FnArg::Typed(arg) = input {
            if let Some(item) = borrowed_items(&arg.ty) {
                let item = item.clone();
                *arg.ty = parse_quote!(::std::vec::IntoIter<#item>);
            }
        }
    }
}

/// `arg`, of type `ty` in the repository trait, as the companion's method takes it.
pub fn pass(ty: &Type, arg: &Ident) -> TokenStream {
    if borrowed_items(ty).is_none() {
        return quote!(#arg);
    }
    quote! {
        ::core::iter::IntoIterator::into_iter(
            ::core::iter::Iterator::collect::<::std::vec::Vec<_>>(::core::iter::IntoIterator::into_iter(#arg)),
        )
    }
}
