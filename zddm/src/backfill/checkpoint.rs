//! Where a backfill pass stands, and where that is kept between runs.

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::chain;

/// How far a pass got: the scan position after the last finished batch, and what it did so far.
/// Saved after every batch, so a crash or a cancelled run repeats at most one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The scan position to go on from; `None` before the first batch.
    pub position: Option<Vec<u8>>,
    /// Whether the scan has passed the last key.
    pub done: bool,
    /// Entries read from OLD.
    pub scanned: u64,
    /// Entries NEW took.
    pub copied: u64,
    /// Entries NEW already held at that version or a newer one, or with a write in flight.
    pub newer: u64,
    /// Entries outside the plan's read coverage, not copied.
    pub outside: u64,
}

const HEADER: &str = "zddm backfill checkpoint v1";

impl Checkpoint {
    /// A line-based text form: a header, then `name value` per field (the position in hex).
    pub fn to_text(&self) -> String {
        let position = self.position.as_ref().map_or_else(|| "-".to_owned(), |p| hex(p));
        format!(
            "{HEADER}\nposition {position}\ndone {}\nscanned {}\ncopied {}\nnewer {}\noutside {}\n",
            self.done, self.scanned, self.copied, self.newer, self.outside
        )
    }

    /// Reads [`to_text`](Checkpoint::to_text)'s form back.
    pub fn from_text(text: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |what: &str| CheckpointError::Malformed { what: what.to_owned() };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad(&format!("the first line is not `{HEADER}`")));
        }
        let mut checkpoint = Checkpoint::default();
        for line in lines.filter(|line| !line.trim().is_empty()) {
            let (name, value) = line.split_once(' ').ok_or_else(|| bad(&format!("the line `{line}` has no value")))?;
            let number = || value.parse::<u64>().map_err(|_| bad(&format!("`{name}` is not a count: `{value}`")));
            match name {
                "position" if value == "-" => checkpoint.position = None,
                "position" => {
                    checkpoint.position =
                        Some(unhex(value).ok_or_else(|| bad(&format!("the position `{value}` is not hex")))?)
                }
                "done" => {
                    checkpoint.done =
                        value.parse().map_err(|_| bad(&format!("`done` is not true or false: `{value}`")))?
                }
                "scanned" => checkpoint.scanned = number()?,
                "copied" => checkpoint.copied = number()?,
                "newer" => checkpoint.newer = number()?,
                "outside" => checkpoint.outside = number()?,
                _ => return Err(bad(&format!("unknown field `{name}`"))),
            }
        }
        Ok(checkpoint)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// Why a checkpoint could not be loaded or saved.
///
/// As with [`zddm::Error`](crate::Error), the message carries the whole cause (for
/// [`CheckpointError::Io`], the file and the I/O error), and
/// [`source`](std::error::Error::source) returns `None`, so a reporter walking the chain says each
/// cause once. For code, the I/O error is returned by [`CheckpointError::io_error`].
// Display and `std::error::Error` by hand, not derived with thiserror: thiserror would make the
// field named `source` the `source()`.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read or written.
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why: in the message, and returned by [`CheckpointError::io_error`] (not by `source()`,
        /// see [`CheckpointError`]).
        source: std::io::Error,
    },
    /// The checkpoint's text is not one a backfill wrote.
    Malformed {
        /// What is wrong.
        what: String,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { action, path, source } => write!(
                f,
                "cannot {action} the backfill checkpoint {} ({}): check the path, and that this process may \
                 {action} it",
                path.display(),
                chain(source)
            ),
            CheckpointError::Malformed { what } => {
                write!(f, "the backfill checkpoint is damaged: {what}; delete it to start the pass over")
            }
        }
    }
}

/// No `source()`: the cause is in the message (see [`CheckpointError`]).
impl std::error::Error for CheckpointError {}

impl CheckpointError {
    /// The I/O error, if the file could not be read or written: for its `kind()`.
    ///
    /// The message of `self` already includes this error's message (see [`CheckpointError`]).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::Malformed { .. } => None,
        }
    }
}

/// Where a backfill keeps its [`Checkpoint`] between runs.
pub trait Checkpoints: Send + Sync {
    /// The store's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The last checkpoint saved, if any.
    fn load(&self) -> impl Future<Output = Result<Option<Checkpoint>, Self::Error>> + Send;

    /// Replaces the checkpoint, durably: once this returns, a later `load` sees it.
    fn save(&self, checkpoint: &Checkpoint) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A checkpoint in memory: resumable within one process (tests, or a pass cancelled and rerun).
#[derive(Debug, Default)]
pub struct MemoryCheckpoint(Mutex<Option<Checkpoint>>);

impl MemoryCheckpoint {
    /// No checkpoint yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The checkpoint last saved.
    pub fn get(&self) -> Option<Checkpoint> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Checkpoints for MemoryCheckpoint {
    type Error = std::convert::Infallible;

    async fn load(&self) -> Result<Option<Checkpoint>, Self::Error> {
        Ok(self.get())
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), Self::Error> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(checkpoint.clone());
        Ok(())
    }
}

/// A checkpoint in a file, replaced atomically (written beside it, synced, then renamed over it),
/// so a crash leaves either the old checkpoint or the new one.
#[derive(Debug, Clone)]
pub struct FileCheckpoint {
    path: PathBuf,
}

impl FileCheckpoint {
    /// The checkpoint at `path`; the file need not exist yet.
    pub fn new(path: impl AsRef<Path>) -> Self {
        FileCheckpoint { path: path.as_ref().to_owned() }
    }

    fn io(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
        move |source| CheckpointError::Io { action, path: self.path.clone(), source }
    }
}

impl Checkpoints for FileCheckpoint {
    type Error = CheckpointError;

    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Checkpoint::from_text(&text).map(Some),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.io("read")(error)),
        }
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let mut name = self.path.file_name().unwrap_or_default().to_owned();
        name.push(".tmp");
        let temporary = self.path.with_file_name(name);
        let mut file = std::fs::File::create(&temporary).map_err(self.io("write"))?;
        file.write_all(checkpoint.to_text().as_bytes()).map_err(self.io("write"))?;
        file.sync_all().map_err(self.io("write"))?;
        std::fs::rename(&temporary, &self.path).map_err(self.io("write"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_reads_back_and_damage_is_named() {
        let checkpoint = Checkpoint {
            position: Some(vec![0, 0xab, 0xff]),
            done: false,
            scanned: 9,
            copied: 5,
            newer: 3,
            outside: 1,
        };
        assert_eq!(Checkpoint::from_text(&checkpoint.to_text()).unwrap(), checkpoint);
        let start = Checkpoint::default();
        assert_eq!(Checkpoint::from_text(&start.to_text()).unwrap(), start);
        let text = checkpoint.to_text().replace("00abff", "0g");
        let error = Checkpoint::from_text(&text).unwrap_err().to_string();
        assert!(error.contains("the position `0g` is not hex") && error.contains("delete it"), "{error}");
        assert!(Checkpoint::from_text("something else").unwrap_err().to_string().contains("first line"));
    }

    #[test]
    fn an_io_error_says_its_cause_once_and_has_no_source() {
        let cause = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "access denied");
        let error =
            CheckpointError::Io { action: "write", path: PathBuf::from("/pass/orders.checkpoint"), source: cause };
        assert_eq!(
            error.to_string(),
            "cannot write the backfill checkpoint /pass/orders.checkpoint (access denied): check the path, and \
             that this process may write it"
        );
        assert!(std::error::Error::source(&error).is_none(), "the cause is in the message");
        assert_eq!(error.io_error().map(std::io::Error::kind), Some(std::io::ErrorKind::PermissionDenied));
        assert!(CheckpointError::Malformed { what: "x".into() }.io_error().is_none());
    }
}
