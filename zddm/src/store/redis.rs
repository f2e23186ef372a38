//! `RedisStore`: an async store on Redis (feature `redis`).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{chain, redact};
use crate::key::{KeyError, MigrationKey};
use crate::store::json::{decode, encode, DecodeError, EncodeError};
use crate::store::Store;

/// A key/value table in Redis, keyed by the canonical key bytes.
///
/// Each entry is a string key `prefix:` ‖ canonical key bytes holding the value as JSON, and a sorted
/// set `prefix:index` lists every key's bytes so that [`scan`](RedisStore::scan) can page through them
/// in byte order (`ZRANGEBYLEX`) — Redis's own `SCAN` has no stable order. A write updates the entry
/// and the index together (`MULTI`/`EXEC`); the conditional insert is one Lua script around `SET NX`,
/// so each operation is atomic on the server. Connections come from a `ConnectionManager` (one
/// multiplexed connection, reconnected on failure) with connect and response timeouts.
pub struct RedisStore<K: ?Sized, V> {
    connection: ConnectionManager,
    prefix: Vec<u8>,
    index: Vec<u8>,
    /// [`INSERT_IF_ABSENT`], hashed once (it runs by `EVALSHA`).
    insert_if_absent: Script,
    types: PhantomData<fn(&K) -> V>,
}

/// Why a Redis operation failed.
///
/// Every message carries its whole cause, said once; a connection error names the server
/// (`host:port`) and the URL with its password replaced by `***`. No message, and no `Debug`
/// output, shows a password.
///
/// Because the cause is in the message, [`source`](std::error::Error::source) returns `None` (so a
/// reporter walking the chain says each cause once, as with [`zddm::Error`](crate::Error)). The
/// client's [`redis::RedisError`], for its `kind()` and `code()`, is returned by
/// [`RedisError::driver_error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL is not a Redis URL.
    #[error(
        "{url:?} is not a Redis URL ({}): write redis://host:port/db, or redis://:password@host:port/db",
        cause(error)
    )]
    Url {
        /// The URL given, with any password replaced by `***`.
        url: String,
        /// The client's error (in the message; not the `source()`).
        error: redis::RedisError,
    },
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to Redis at {server} ({url}): {}{}", cause(error), connect_hint(error))]
    Connect {
        /// The server's address, `host:port` (the socket's path for a Unix socket).
        server: String,
        /// The URL given, with any password replaced by `***`.
        url: String,
        /// The client's error (in the message; not the `source()`).
        error: redis::RedisError,
    },
    /// A prefix with a character that would mix the store's keys up with other keys.
    #[error("key prefix {prefix:?} must be non-empty and must not contain ':' or whitespace: use e.g. \"orders\"")]
    Prefix {
        /// The refused prefix.
        prefix: String,
    },
    /// A command failed or timed out.
    #[error("Redis failed: {}", cause(.0))]
    Command(redis::RedisError),
    /// A versioned store's version, count or time field that is not a number: something other
    /// than zddm wrote the key.
    #[error(
        "a zddm field holds {found:?} where a decimal number belongs: the key was written by something other than zddm"
    )]
    Field {
        /// What the field held.
        found: String,
    },
    /// A stored value is not valid for the value type.
    #[error("{}", chain(.0))]
    Decode(DecodeError),
    /// A value could not be serialized.
    #[error("{}", chain(.0))]
    Encode(EncodeError),
    /// The key cannot be encoded.
    #[error(transparent)]
    Key(#[from] KeyError),
}

// By hand rather than `#[from]`, which would make the field the `source()` as well.
impl From<redis::RedisError> for RedisError {
    fn from(error: redis::RedisError) -> Self {
        RedisError::Command(error)
    }
}

impl From<DecodeError> for RedisError {
    fn from(error: DecodeError) -> Self {
        RedisError::Decode(error)
    }
}

impl From<EncodeError> for RedisError {
    fn from(error: EncodeError) -> Self {
        RedisError::Encode(error)
    }
}

impl RedisError {
    /// The client's error behind this one, if the client failed: for its `kind()` and `code()`.
    pub fn driver_error(&self) -> Option<&redis::RedisError> {
        match self {
            RedisError::Url { error, .. } | RedisError::Connect { error, .. } | RedisError::Command(error) => {
                Some(error)
            }
            _ => None,
        }
    }
}

/// The client's message, then each underlying cause it does not already say (redis-rs's message
/// often is its cause's, which `source()` then returns again).
fn cause(error: &redis::RedisError) -> String {
    chain(error)
}

/// What to check, after the cause, for a connection that failed.
fn connect_hint(error: &redis::RedisError) -> &'static str {
    let auth = error.kind() == redis::ErrorKind::AuthenticationFailed
        || error.code().is_some_and(|code| matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM"));
    if auth {
        "; check the user and password in the URL"
    } else if error.is_connection_refusal() {
        "; check that Redis is running and listens on that host and port (or socket)"
    } else if error.is_timeout() {
        "; check the host and port, and that no firewall drops the connection"
    } else if error.is_io_error() {
        "; check the host and port in the URL, and that the server is reachable from here"
    } else {
        ""
    }
}

/// The connection and response timeout of every Redis store.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// `SET key value NX`, and index the key if it was set: one atomic step on the server.
const INSERT_IF_ABSENT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
    redis.call('ZADD', KEYS[2], 0, ARGV[2])
    return 1
end
return 0
";

/// A managed connection to `url` for a store whose keys start with `prefix:`, once the prefix is
/// checked.
pub(crate) async fn connect(url: &str, prefix: &str) -> Result<ConnectionManager, RedisError> {
    if prefix.is_empty() || prefix.contains(':') || prefix.chars().any(char::is_whitespace) {
        return Err(RedisError::Prefix { prefix: prefix.to_owned() });
    }
    let client = Client::open(url).map_err(|error| RedisError::Url { url: redact(url), error })?;
    let server = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. }
            if host.contains(':') =>
        {
            format!("[{host}]:{port}")
        }
        addr => addr.to_string(),
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await.map_err(|error| RedisError::Connect {
        server,
        url: redact(url),
        error,
    })
}

/// Every key under `prefix` (without the prefix), in byte order: one `SCAN` of the prefix. For
/// maintenance (listing, purging), never for the request path.
/// The `SCAN` pattern matching every key that starts with `prefix`, glob characters escaped.
fn pattern(prefix: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(prefix.len() + 1);
    for &byte in prefix {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'*');
    pattern
}

/// One `SCAN` step over `prefix`: the keys (prefix stripped) and the cursor to go on from, `None`
/// once the iteration is over. `count` is Redis's hint, not a limit.
pub(crate) async fn scan_step(
    connection: &ConnectionManager,
    prefix: &[u8],
    cursor: u64,
    count: usize,
) -> Result<(Vec<Vec<u8>>, Option<u64>), RedisError> {
    let pattern = pattern(prefix);
    let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(&pattern)
        .arg("COUNT")
        .arg(count.max(1))
        .query_async(&mut connection.clone())
        .await?;
    let keys = batch.into_iter().filter_map(|key| key.strip_prefix(prefix).map(<[u8]>::to_vec)).collect();
    Ok((keys, (next != 0).then_some(next)))
}

pub(crate) async fn keys_under(connection: &ConnectionManager, prefix: &[u8]) -> Result<Vec<Vec<u8>>, RedisError> {
    let pattern = pattern(prefix);
    let mut connection = connection.clone();
    let (mut cursor, mut keys) = (0u64, Vec::new());
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        keys.extend(batch.into_iter().filter_map(|key| key.strip_prefix(prefix).map(<[u8]>::to_vec)));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Up to `limit` keys under `prefix` after `after`, in byte order, whose hash has a non-zero
/// pending count (field `p`): the keys in doubt of a versioned target or an unversioned cache.
pub(crate) async fn pending_under(
    connection: &ConnectionManager,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Vec<u8>>, RedisError> {
    let keys = keys_under(connection, prefix).await?;
    let keys: Vec<&Vec<u8>> = keys.iter().filter(|key| after.map_or(true, |after| key[..] > *after)).collect();
    let mut connection = connection.clone();
    let mut out = Vec::new();
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("HGET").arg([prefix, &key[..]].concat()).arg("p");
        }
        let pending: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        for (key, pending) in chunk.iter().zip(pending) {
            if pending.is_some_and(|p| p != "0") {
                out.push((*key).clone());
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

impl<K: ?Sized, V> RedisStore<K, V> {
    /// Connects to the Redis server at `url` (`redis://host:port/db`); the store's keys start with
    /// `prefix:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let connection = connect(url, prefix).await?;
        Ok(RedisStore {
            connection,
            prefix: format!("{prefix}:").into_bytes(),
            index: format!("{prefix}:index").into_bytes(),
            insert_if_absent: Script::new(INSERT_IF_ABSENT),
            types: PhantomData,
        })
    }

    fn entry(&self, key: &[u8]) -> Vec<u8> {
        [&self.prefix[..], key].concat()
    }

    /// How many keys the store holds.
    pub async fn len(&self) -> Result<usize, RedisError> {
        Ok(redis::cmd("ZCARD").arg(&self.index).query_async(&mut self.connection.clone()).await?)
    }

    /// Whether the store holds no key.
    pub async fn is_empty(&self) -> Result<bool, RedisError> {
        Ok(self.len().await? == 0)
    }

    /// Deletes every entry of the store and its index: for a store made for a trial run (the
    /// demo's), not for keys an application still needs. A thousand keys per round trip.
    pub async fn clear(&self) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        loop {
            let keys: Vec<Vec<u8>> = redis::cmd("ZRANGEBYLEX")
                .arg(&self.index)
                .arg("-")
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(1_000)
                .query_async(&mut connection)
                .await?;
            if keys.is_empty() {
                break;
            }
            let entries: Vec<Vec<u8>> = keys.iter().map(|key| self.entry(key)).collect();
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&entries)
                .ignore()
                .cmd("ZREM")
                .arg(&self.index)
                .arg(&keys)
                .ignore()
                .query_async::<()>(&mut connection)
                .await?;
        }
        redis::cmd("DEL").arg(&self.index).query_async::<()>(&mut connection).await?;
        Ok(())
    }
}

impl<K: ?Sized, V: DeserializeOwned> RedisStore<K, V> {
    /// Up to `limit` entries with keys after `after` (or from the first), in the order of their
    /// canonical key bytes.
    pub async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, V)>, RedisError> {
        let mut connection = self.connection.clone();
        let start = match after {
            Some(after) => [b"(", after].concat(),
            None => b"-".to_vec(),
        };
        let keys: Vec<Vec<u8>> = redis::cmd("ZRANGEBYLEX")
            .arg(&self.index)
            .arg(start)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut connection)
            .await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<Vec<u8>> = keys.iter().map(|key| self.entry(key)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&entries).query_async(&mut connection).await?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, value) in keys.into_iter().zip(values) {
            // A key deleted between the two commands is skipped: it is gone.
            if let Some(text) = value {
                let value = decode(&key, &text)?;
                out.push((key, value));
            }
        }
        Ok(out)
    }
}

impl<K: MigrationKey + ?Sized, V: Serialize + DeserializeOwned> RedisStore<K, V> {
    /// The values of several keys, in the order given, read with one `MGET`.
    pub async fn get_many(&self, keys: &[&K]) -> Result<Vec<Option<V>>, RedisError> {
        let keys = keys.iter().map(|key| key.try_key_bytes()).collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<Vec<u8>> = keys.iter().map(|key| self.entry(key)).collect();
        let texts: Vec<Option<String>> =
            redis::cmd("MGET").arg(&entries).query_async(&mut self.connection.clone()).await?;
        keys.iter().zip(texts).map(|(key, text)| Ok(text.map(|text| decode(key, &text)).transpose()?)).collect()
    }

    /// Writes several entries in one `MULTI`/`EXEC` (`MSET` and one `ZADD`): all or none. Where a
    /// key appears more than once, the last entry wins, as with one put after another.
    pub async fn put_many(&self, entries: &[(&K, &V)]) -> Result<(), RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut mset = redis::cmd("MSET");
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&self.index);
        for (key, value) in entries {
            let (key, value) = (key.try_key_bytes()?, encode(*value)?);
            mset.arg(self.entry(&key)).arg(value);
            zadd.arg(0).arg(key);
        }
        redis::pipe()
            .atomic()
            .add_command(mset)
            .ignore()
            .add_command(zadd)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }
}

impl<K, V> Store<K, V> for RedisStore<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = RedisError;

    async fn get(&self, key: &K) -> Result<Option<V>, RedisError> {
        let key = key.try_key_bytes()?;
        let text: Option<String> =
            redis::cmd("GET").arg(self.entry(&key)).query_async(&mut self.connection.clone()).await?;
        Ok(text.map(|text| decode(&key, &text)).transpose()?)
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), RedisError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.entry(&key))
            .arg(value)
            .ignore()
            .cmd("ZADD")
            .arg(&self.index)
            .arg(0)
            .arg(&key)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, RedisError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let inserted: i64 = self
            .insert_if_absent
            .key(self.entry(&key))
            .key(&self.index)
            .arg(value)
            .arg(&key)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(inserted == 1)
    }

    async fn delete(&self, key: &K) -> Result<(), RedisError> {
        let key = key.try_key_bytes()?;
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.entry(&key))
            .ignore()
            .cmd("ZREM")
            .arg(&self.index)
            .arg(&key)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }
}

impl<K: ?Sized, V> fmt::Debug for RedisStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &String::from_utf8_lossy(&self.prefix)).finish_non_exhaustive()
    }
}

/// In canonical key order, through [`RedisStore::scan`].
impl<K, V> crate::cached::ScanKeys<K> for RedisStore<K, V>
where
    K: MigrationKey + Send + Sync,
    V: serde::de::DeserializeOwned + Send + Sync,
{
    type Error = RedisError;

    async fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<crate::versioned::Page<K, ()>, RedisError> {
        crate::cached::key_page(self.scan(after, limit).await?, limit)
    }
}
