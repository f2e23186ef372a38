//! The repository trait, with each method's classification and the original syntax for spans.

use proc_macro2::Span;
use syn::{FnArg, ItemTrait, ReceiverKind, TraitItem, TraitItemFn};

use super::attr;
use crate::errors::Errors;

pub struct Repository<'a> {
    pub item: &'a ItemTrait,
    pub methods: Vec<Method<'a>>,
}

pub struct Method<'a> {
    pub item: &'a TraitItemFn,
    /// What the method does, and whether an attribute said so (`Some(span)`) or its name did.
    pub kind: Option<(Kind, Option<Span>)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Read-through.
    Read,
    /// Write-through.
    Write,
    /// Delete from both.
    Delete,
    /// Passed through to OLD.
    Old,
    /// Passed through to NEW.
    New,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Delete => "delete",
            Kind::Old => "old",
            Kind::New => "new",
        }
    }

    /// The naming convention (docs/repository-macro.md): a method named after one of these verbs,
    /// alone or followed by `_`, needs no attribute.
    fn from_name(name: &str) -> Option<Kind> {
        const VERBS: [(Kind, &[&str]); 3] = [
            (Kind::Read, &["get", "find", "load", "fetch", "read"]),
            (Kind::Write, &["put", "save", "store", "upsert", "insert", "set", "write"]),
            (Kind::Delete, &["delete", "remove"]),
        ];
        let verb = name.split('_').next().unwrap_or(name);
        VERBS.iter().find(|(_, verbs)| verbs.contains(&verb)).map(|(kind, _)| *kind)
    }
}

impl Repository<'_> {
    /// Whether a store is ever called with `&mut self`: then each store sits behind an async mutex,
    /// which also makes stores that are not `Sync` usable.
    pub fn exclusive(&self) -> bool {
        self.methods.iter().filter(|method| method.kind.is_some()).any(|method| {
            matches!(
                method.item.sig.inputs.first(),
                Some(FnArg::Receiver(receiver)) if matches!(receiver.kind, ReceiverKind::Reference(_, _, Some(_)))
            )
        })
    }
}

impl<'a> Repository<'a> {
    pub fn from_syn(item: &'a ItemTrait, errors: &mut Errors) -> Self {
        let methods = item
            .items
            .iter()
            .filter_map(|trait_item| match trait_item {
                TraitItem::Fn(method) => Some(method),
                _ => None,
            })
            .map(|method| {
                let by_attribute = attr::parse_kind(&method.attrs, errors);
                let kind = by_attribute
                    .map(|(kind, span)| (kind, Some(span)))
                    .or_else(|| Kind::from_name(&method.sig.ident.to_string()).map(|kind| (kind, None)));
                Method { item: method, kind }
            })
            .collect();
        Repository { item, methods }
    }
}
