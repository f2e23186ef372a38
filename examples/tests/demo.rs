//! The demo behaves like a command: `--help`, errors in words for unknown flags and bad URLs (never
//! echoing a password), a clean stop when its output is closed, and nothing left behind unless
//! `--keep`.

use std::io::Read;
use std::process::{Command, Stdio};

/// The demo, with its temporary directory in `scratch`, where the test looks for leftovers.
fn demo(scratch: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command.env("TMPDIR", scratch);
    command
}

fn leftovers(scratch: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(scratch).unwrap().map(|entry| entry.unwrap().path()).collect()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let scratch = tempfile::tempdir().unwrap();
    let output = demo(scratch.path()).args(args).output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code().unwrap_or(-1), text(output.stdout), text(output.stderr))
}

#[test]
fn help_lists_the_options_and_runs_nothing() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for option in ["--old", "--new", "--records", "--step", "--keep"] {
        assert!(out.contains(option), "{option} missing from:\n{out}");
    }
    assert!(!out.contains("orders written"), "--help ran the demo:\n{out}");
}

#[test]
fn an_unknown_flag_is_an_error_in_words() {
    let (code, out, err) = run(&["--olde", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unexpected argument '--olde'"), "{err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn a_bad_url_is_an_error_in_words_without_its_password() {
    let (code, _, err) = run(&["--old", "mysql://admin:hunter2@db.example.com/shop"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a store the demo knows"), "{err}");
    assert!(err.contains("mysql://admin:***@db.example.com/shop"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let (code, _, err) = run(&["--records", "many"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'many'"), "{err}");
}

#[test]
fn a_closed_output_stops_it_cleanly_and_removes_what_it_created() {
    let scratch = tempfile::tempdir().unwrap();
    let mut child = demo(scratch.path())
        .args(["--records", "2000", "--step", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(leftovers(scratch.path()).is_empty(), "left behind: {:?}", leftovers(scratch.path()));
}

#[test]
fn a_whole_run_completes_and_keep_keeps_the_stores() {
    let scratch = tempfile::tempdir().unwrap();
    let output = demo(scratch.path()).args(["--records", "2000", "--step", "0.2"]).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{out}\n{err}");
    assert!(out.contains("verification: checked 2000 keys") && out.contains("clean"), "{out}");
    assert!(out.contains("complete: NEW holds 2000 orders"), "{out}");
    assert!(leftovers(scratch.path()).is_empty(), "left behind: {:?}", leftovers(scratch.path()));

    let output = demo(scratch.path()).args(["--records", "2000", "--step", "0.2", "--keep"]).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    let kept = leftovers(scratch.path());
    assert_eq!(kept.len(), 1, "{err}");
    assert!(kept[0].join("old.db").exists() && kept[0].join("new.db").exists(), "{kept:?}");
    assert!(err.contains(&format!("kept {}", kept[0].display())), "{err}");
}

/// From PostgreSQL to Redis, servers started for the test: the run completes, and the table and
/// keys it created are gone afterwards.
#[cfg(all(feature = "postgres", feature = "redis"))]
#[test]
fn from_postgres_to_redis_it_completes_and_leaves_nothing_behind() {
    use zddm_suite::servers::{PostgresServer, RedisServer};
    let (postgres, redis) = (PostgresServer::start(), RedisServer::start());
    let scratch = tempfile::tempdir().unwrap();
    let output = demo(scratch.path())
        .args(["--records", "2000", "--step", "0.2", "--old", &postgres.url(), "--new", &redis.url()])
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{out}\n{err}");
    assert!(out.contains("complete: NEW holds 2000 orders"), "{out}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tables = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&postgres.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let rows = client
            .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'", &[])
            .await
            .unwrap();
        rows.iter().map(|row| row.get::<_, String>(0)).collect::<Vec<_>>()
    });
    assert!(tables.is_empty(), "tables left behind: {tables:?}");
    let mut connection =
        std::net::TcpStream::connect(redis.url().trim_start_matches("redis://").trim_end_matches("/0")).unwrap();
    use std::io::{Read, Write};
    connection.write_all(b"*1\r\n$6\r\nDBSIZE\r\n").unwrap();
    let mut reply = [0u8; 16];
    let read = connection.read(&mut reply).unwrap();
    assert_eq!(&reply[..read], b":0\r\n", "keys left behind in Redis");
}

#[test]
fn ctrl_c_stops_it_and_removes_what_it_created() {
    use std::io::BufRead;
    let scratch = tempfile::tempdir().unwrap();
    let mut child = demo(scratch.path())
        .args(["--records", "2000", "--step", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the traffic runs, then interrupt it as a terminal's Ctrl-C does.
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        if line.unwrap().trim_start().starts_with("gate ") {
            break;
        }
    }
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted; removed what it created"), "{err}");
    assert!(leftovers(scratch.path()).is_empty(), "left behind: {:?}", leftovers(scratch.path()));
}
