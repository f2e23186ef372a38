//! `RedisStore`'s errors against a real Redis, one test per message: each names the server and the
//! URL (its password replaced by `***`), says its cause once (in the message; `source()` is `None`
//! so a reporter walking the chain does not repeat it) and what to check.

use std::error::Error as _;
use std::io::{Read, Write};
use std::sync::Arc;

use zddm::{Gate, MigrationKey, Proxy, Rate, RedisError, RedisStore, Side};
use zddm_suite::servers::RedisServer;

type Orders = RedisStore<u64, String>;

/// `host:port` of the server.
fn address(server: &RedisServer) -> String {
    server.url().trim_start_matches("redis://").trim_end_matches("/0").to_owned()
}

/// Sends one command (as a RESP array, so any bytes go) and gives the reply's first line.
fn raw(server: &RedisServer, args: &[&[u8]]) -> String {
    let mut stream = std::net::TcpStream::connect(address(server)).unwrap();
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        command.extend_from_slice(arg);
        command.extend_from_slice(b"\r\n");
    }
    stream.write_all(&command).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0];
    while !reply.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).unwrap();
        reply.push(byte[0]);
    }
    String::from_utf8_lossy(&reply).trim_end().to_owned()
}

/// The message of `error`, once checked to say its cause in the message only and to keep the
/// client's error for code.
fn message(error: &RedisError) -> String {
    assert!(error.source().is_none(), "the cause is in the message, not repeated by source(): {error:?}");
    assert!(error.driver_error().is_some(), "the client's error stays reachable: {error:?}");
    let message = error.to_string();
    assert!(!message.contains("secret") && !format!("{error:?}").contains("secret"), "{message} / {error:?}");
    message
}

#[tokio::test(flavor = "current_thread")]
async fn a_malformed_url_is_shown_without_its_password_with_the_clients_reason() {
    let error = Orders::connect("redis://u:secret@127.0.0.1:6379/notadb", "orders").await.unwrap_err();
    assert!(matches!(error, RedisError::Url { .. }), "{error:?}");
    assert_eq!(
        message(&error),
        "\"redis://u:***@127.0.0.1:6379/notadb\" is not a Redis URL (Invalid database number - InvalidClientConfig): \
         write redis://host:port/db, or redis://:password@host:port/db"
    );
    let error = Orders::connect("redis://:secret@127.0.0.1:notaport/0", "orders").await.unwrap_err();
    assert!(message(&error).starts_with("\"redis://:***@127.0.0.1:notaport/0\" is not a Redis URL ("), "{error}");
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_listening_is_named_with_the_address_and_the_refusal() {
    let error = Orders::connect("redis://:secret@127.0.0.1:1/0", "orders").await.unwrap_err();
    assert!(matches!(error, RedisError::Connect { .. }), "{error:?}");
    let message = message(&error);
    assert!(message.starts_with("cannot connect to Redis at 127.0.0.1:1 (redis://:***@127.0.0.1:1/0): "), "{message}");
    assert!(message.contains("Connection refused"), "the operating system's cause: {message}");
    assert!(
        message.ends_with("; check that Redis is running and listens on that host and port (or socket)"),
        "{message}"
    );
    assert_eq!(message.matches("refused").count(), 1, "said once: {message}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_unresolvable_host_is_named_with_the_lookup_failure() {
    // `.invalid` never resolves (RFC 2606).
    let error = Orders::connect("redis://:secret@no-such-host.invalid:6380/0", "orders").await.unwrap_err();
    assert!(matches!(error, RedisError::Connect { .. }), "{error:?}");
    let message = message(&error);
    assert!(message.starts_with("cannot connect to Redis at no-such-host.invalid:6380 ("), "{message}");
    assert!(message.contains("check the host and port"), "what to do: {message}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_password_is_named_with_the_server_and_never_shown() {
    let server = RedisServer::start();
    assert_eq!(raw(&server, &[b"CONFIG", b"SET", b"requirepass", b"right-secret"]), "+OK");
    let url = format!("redis://:wrong-secret@{}/0", address(&server));
    let error = Orders::connect(&url, "orders").await.unwrap_err();
    assert!(matches!(error, RedisError::Connect { .. }), "{error:?}");
    let message = message(&error);
    let expected = format!("cannot connect to Redis at {} (redis://:***@{}/0): ", address(&server), address(&server));
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.contains("Password authentication failed"), "the cause: {message}");
    assert!(message.ends_with("; check the user and password in the URL"), "{message}");
    assert_eq!(message.matches("authentication failed").count(), 1, "said once: {message}");

    let url = format!("redis://:right-secret@{}/0", address(&server));
    Orders::connect(&url, "orders").await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_command_says_the_servers_message_once_and_the_proxy_names_the_side() {
    use zddm::Store;
    let server = RedisServer::start();
    let store = Orders::connect(&server.url(), "orders").await.unwrap();
    // Something other than zddm made the entry of key 7 a hash.
    let entry = [&b"orders:"[..], &7u64.key_bytes()].concat();
    assert_eq!(raw(&server, &[b"HSET", &entry, b"f", b"v"]), ":1");

    let error = store.get(&7).await.unwrap_err();
    assert!(matches!(error, RedisError::Command(_)), "{error:?}");
    let text = message(&error);
    assert!(text.starts_with("Redis failed: \"WRONGTYPE\": Operation against a key holding the wrong kind"), "{text}");
    assert_eq!(text.matches("WRONGTYPE").count(), 1, "said once: {text}");

    // Through the proxy, with Redis as OLD: the side, the operation, then the store's message.
    let proxy =
        Proxy::new(Arc::new(store), Arc::new(zddm::MemoryStore::<u64, String>::new()), Gate::new("o", Rate::ALL));
    let error = proxy.get(&7).await.unwrap_err();
    assert_eq!(error.side(), Side::Old);
    assert_eq!(error.to_string(), format!("get on the OLD store failed: {text}"));
    assert!(error.source().is_none());
    assert!(error.store_error().downcast_ref::<RedisError>().is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn clear_removes_every_entry_and_the_index_and_nothing_else() {
    use zddm::Store;
    let server = RedisServer::start();
    let store = Orders::connect(&server.url(), "trial").await.unwrap();
    for id in 0..2_500u64 {
        store.put(&id, &format!("order {id}")).await.unwrap();
    }
    assert_eq!(raw(&server, &[b"SET", b"other:1", b"kept"]), "+OK");
    store.clear().await.unwrap();
    assert_eq!(store.len().await.unwrap(), 0);
    assert_eq!(raw(&server, &[b"DBSIZE"]), ":1", "only the other key is left");
    assert_eq!(raw(&server, &[b"EXISTS", b"other:1"]), ":1");
}
