//! The repository trait, with each method's classification and the original syntax for spans.

use proc_macro2::Span;
use syn::{FnArg, ItemTrait, ReceiverKind, ReturnType, Signature, TraitItem, TraitItemFn, Type};

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
    /// What its name says, when no attribute says anything.
    pub named: Named,
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
    /// alone or followed by `_`, needs no attribute — unless the rest of its name says it does
    /// something else as well (`get_or_create_order`, `fetch_and_increment`): then
    /// [`Named::Mixed`], with the word that says so.
    pub fn from_name(name: &str) -> Named {
        const VERBS: [(Kind, &[&str]); 3] = [
            (Kind::Read, &["get", "find", "load", "fetch", "read"]),
            (Kind::Write, &["put", "save", "store", "upsert", "insert", "set", "write"]),
            (Kind::Delete, &["delete", "remove"]),
        ];
        // Words after the verb that mean another operation on the same call.
        const OTHER: &[&str] = &[
            "or",
            "and",
            "then",
            "create",
            "update",
            "increment",
            "decrement",
            "incr",
            "decr",
            "add",
            "append",
            "push",
            "pop",
            "take",
            "replace",
            "swap",
            "clear",
            "reset",
            "touch",
            "bump",
            "mark",
            "archive",
            "move",
            "merge",
        ];
        let mut words = name.split('_').filter(|word| !word.is_empty());
        let verb = words.next().unwrap_or(name);
        let Some(kind) = VERBS.iter().find(|(_, verbs)| verbs.contains(&verb)).map(|(kind, _)| *kind) else {
            return Named::Unknown;
        };
        let others =
            |word: &&str| OTHER.contains(word) || VERBS.iter().any(|(k, verbs)| *k != kind && verbs.contains(word));
        let rest: Vec<&str> = words.collect();
        let Some(at) = rest.iter().position(others) else { return Named::Kind(kind) };
        // After a connector, the operation it joins names the call best: `get_or_create` -> `create`.
        let connector = |word: &str| matches!(word, "or" | "and" | "then");
        let word = rest[at..].iter().find(|word| !connector(word)).filter(|_| connector(rest[at])).unwrap_or(&rest[at]);
        Named::Mixed { verb: verb.to_owned(), word: (*word).to_owned() }
    }
}

/// What a method passed through with `#[zddm(old)]` / `#[zddm(new)]` does to the keys it is given,
/// judged by its name (`snake_case` or `camelCase`): a write or delete verb, a read that does more
/// (`get_or_create`), or — unless its first word reads (`has_`, `count_`, …) — a word anywhere that
/// changes things (`update_status`, `bulk_update`, `soft_delete`, `purge_expired`).
pub fn changes_by_name(name: &str) -> Option<Kind> {
    const WRITES: &[&str] = &[
        "update",
        "create",
        "add",
        "append",
        "push",
        "increment",
        "decrement",
        "incr",
        "decr",
        "replace",
        "swap",
        "reset",
        "touch",
        "bump",
        "mark",
        "archive",
        "unarchive",
        "move",
        "merge",
        "patch",
        "modify",
        "change",
        "edit",
        "restore",
        "rename",
        "assign",
        "cancel",
        "transfer",
        "credit",
        "debit",
        "enqueue",
        "record",
        "persist",
        "overwrite",
        "import",
        "sync",
        "apply",
        "commit",
        "approve",
        "reject",
        "close",
        "reopen",
        "settle",
        "ship",
        "submit",
        "confirm",
        "claim",
        "toggle",
        "enable",
        "disable",
        "activate",
        "deactivate",
        "suspend",
        "refund",
        "register",
        "flush",
        "lock",
        "unlock",
        "complete",
        "finish",
        "fulfil",
        "fulfill",
    ];
    const DELETES: &[&str] =
        &["purge", "expire", "clear", "evict", "prune", "erase", "pop", "take", "drop", "truncate", "destroy", "wipe"];
    // First words that ask rather than change: the rest of the name is then its object.
    const READS: &[&str] = &[
        "has", "is", "are", "can", "count", "list", "exists", "contains", "check", "query", "search", "scan", "lookup",
        "peek", "last", "latest", "total", "sum", "len", "all", "iter",
    ];
    let name = snake_case(name);
    match Kind::from_name(&name) {
        Named::Kind(kind @ (Kind::Write | Kind::Delete)) => return Some(kind),
        Named::Kind(_) => return None,
        // A read that does more (`get_or_create`, `fetch_and_increment`) writes.
        Named::Mixed { verb, word } => {
            return Some(changes_by_name(&verb).or_else(|| changes_by_name(&word)).unwrap_or(Kind::Write))
        }
        Named::Unknown => {}
    }
    let mut words = name.split('_').filter(|word| !word.is_empty()).peekable();
    if words.peek().is_some_and(|first| READS.contains(first)) {
        return None;
    }
    words.find_map(|word| match Kind::from_name(word) {
        Named::Kind(kind @ (Kind::Write | Kind::Delete)) => Some(kind),
        _ if WRITES.contains(&word) => Some(Kind::Write),
        _ if DELETES.contains(&word) => Some(Kind::Delete),
        _ => None,
    })
}

/// `archiveOrder` as `archive_order`; a `snake_case` name as it is.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_lowercase());
    }
    out
}

/// What a method's name says it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// One of the conventional verbs, and nothing else.
    Kind(Kind),
    /// A conventional verb, then a word that says the call does more (`get_or_create`).
    Mixed { verb: String, word: String },
    /// No conventional verb.
    Unknown,
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
                // A method with a default body runs on the migrating type as written: only an
                // attribute classifies it.
                let named = match (&by_attribute, &method.default) {
                    (None, None) => Kind::from_name(&method.sig.ident.to_string()),
                    _ => Named::Unknown,
                };
                let kind = by_attribute.map(|(kind, span)| (kind, Some(span))).or(match named {
                    Named::Kind(kind) => Some((kind, None)),
                    _ => None,
                });
                Method { item: method, kind, named }
            })
            .collect();
        Repository { item, methods }
    }
}

/// `T` of a method written `fn …(…) -> impl Future<Output = T> [+ Send]`, the form rustc suggests
/// for `async fn` in a public trait.
pub fn future_output(sig: &Signature) -> Option<&Type> {
    let ReturnType::Type(_, ty) = &sig.output else { return None };
    crate::receiver::bound_assoc(ty, &["Future"], "Output")
}

/// Whether a call of the method is awaited: an `async fn`, or one returning `impl Future`.
pub fn is_async(sig: &Signature) -> bool {
    sig.asyncness.is_some() || future_output(sig).is_some()
}
