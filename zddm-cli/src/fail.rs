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

/// Every `scheme://user:password@` in `text` with the password replaced by `***`.
pub fn redact(text: &str) -> String {
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
    }
}
