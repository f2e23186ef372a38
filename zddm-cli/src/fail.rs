//! How the command fails: a message that says what was wrong and what to do, every cause after it,
//! never a `Debug` dump, never a password, and an exit status per kind of failure.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;

/// Why the command stopped.
#[derive(Debug)]
pub enum Failure {
    /// The input was wrong: the message says how to fix it.
    Input(String),
    /// A store or the control record failed.
    Store(Box<dyn Error + Send + Sync>),
    /// Anything else that failed.
    Other(Box<dyn Error + Send + Sync>),
    /// Ctrl-C.
    Interrupted,
}

impl Failure {
    pub fn store(error: impl Error + Send + Sync + 'static) -> Failure {
        Failure::Store(Box::new(error))
    }

    /// A store's failure, saying which store: `OLD store (postgres://u:***@db:5432/orders): …`.
    pub fn store_at(store: &str, url: &str, error: impl Error + Send + Sync + 'static) -> Failure {
        Failure::Store(Box::new(At { at: format!("{store} ({})", redact_url(url)), error: Box::new(error) }))
    }

    /// Prints the failure to stderr and gives the exit status: 1 for a failure, 130 for Ctrl-C.
    pub fn report(self) -> ExitCode {
        let text = match &self {
            Failure::Input(message) => message.clone(),
            Failure::Store(error) | Failure::Other(error) => chain(error.as_ref()),
            Failure::Interrupted => {
                "interrupted: a backfill resumes from its last checkpoint when run again; a verification starts over"
                    .to_owned()
            }
        };
        let _ = writeln!(std::io::stderr(), "zddm: {}", redact(&text));
        ExitCode::from(if matches!(self, Failure::Interrupted) { 130 } else { 1 })
    }
}

/// A store's error with which store it is. Its message carries the error's whole chain, so it has
/// no `source()` of its own (a cause is said once).
#[derive(Debug)]
struct At {
    at: String,
    error: Box<dyn Error + Send + Sync>,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, chain(self.error.as_ref()))
    }
}

impl Error for At {}

/// The error's message and each cause's, `: `-separated, skipping causes already said.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// Every `scheme://user:password@` in `text`, and every `password=` or `pass=` query value, with
/// the password replaced by `***`. In a message, a value ends at `&`, `#`, whitespace, a quote or a
/// `)`; see [`redact_url`] for a URL alone.
pub fn redact(text: &str) -> String {
    redact_values(&redact_user_info(text), |c| matches!(c, '&' | '#' | '"' | '\'' | ')') || c.is_whitespace())
}

/// [`redact`] for a URL alone: a query value ends only at `&` or `#`.
pub fn redact_url(url: &str) -> String {
    redact_values(&redact_user_info(url), |c| matches!(c, '&' | '#'))
}

/// `text` with the value of every `password=` or `pass=` query parameter replaced by `***`; a value
/// ends where `ends` says.
fn redact_values(text: &str, ends: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['?', '&']) {
        let (head, tail) = rest.split_at(at + 1);
        out.push_str(head);
        let lower = tail.to_ascii_lowercase();
        let name = ["password=", "pass="].into_iter().find(|name| lower.starts_with(name));
        rest = match name {
            Some(name) => {
                out.push_str(&tail[..name.len()]);
                out.push_str("***");
                let value = &tail[name.len()..];
                &value[value.find(&ends).unwrap_or(value.len())..]
            }
            None => tail,
        };
    }
    out.push_str(rest);
    out
}

fn redact_user_info(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '/').unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Writes a line to stdout; a closed pipe (`zddm status | head -1`) ends the output quietly.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_replaced_and_the_rest_kept() {
        assert_eq!(
            redact("cannot reach postgres://ada:s3cret@db:5432/orders (refused)"),
            "cannot reach postgres://ada:***@db:5432/orders (refused)"
        );
        assert_eq!(redact("redis://:pw@cache:6379 and redis://cache"), "redis://:***@cache:6379 and redis://cache");
        assert_eq!(redact("\"postgres://u:p@h/d\""), "\"postgres://u:***@h/d\"");
        assert_eq!(redact("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
        assert_eq!(redact("postgres://user@host/db"), "postgres://user@host/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=disable&password=s3cret and redis+unix:///r.sock?pass=pw&db=1"),
            "postgres://u@h/db?sslmode=disable&password=*** and redis+unix:///r.sock?pass=***&db=1"
        );
        assert_eq!(redact("(postgres://u@h/db?password=s3cret): refused"), "(postgres://u@h/db?password=***): refused");
        assert_eq!(redact_url("postgres://u@h/db?password=s3c)r et&x=1"), "postgres://u@h/db?password=***&x=1");
    }

    #[test]
    fn a_store_failure_names_the_store_and_says_each_cause_once() {
        #[derive(Debug)]
        struct Refused;
        impl std::fmt::Display for Refused {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connection refused")
            }
        }
        impl Error for Refused {}
        let Failure::Store(error) = Failure::store_at("OLD store", "postgres://u:pw@db:5432/orders", Refused) else {
            panic!("a store failure")
        };
        assert_eq!(chain(error.as_ref()), "OLD store (postgres://u:***@db:5432/orders): connection refused");
        assert!(error.source().is_none());
    }
}
