//! A store's methods as its companion trait declares them: `&self` becomes an argument of type
//! `&zddm::Backend<Self>`, which only the migration can lend, and `self` in the body becomes that
//! argument. Shared by `#[zddm::migrate]` (the trait's default bodies) and `#[zddm::backend]` (the
//! store's impl).

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::quote;
use syn::{parse_quote, FnArg, Receiver, ReceiverKind, Signature};

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
