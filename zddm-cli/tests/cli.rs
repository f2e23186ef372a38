//! The `zddm` command as an operator runs it, over SQLite files: a migration from an empty NEW to
//! `complete` with the command alone (and one instance of the application, which polls the fleet),
//! the errors a mistake gets, Ctrl-C in the middle of a backfill, and a closed pipe.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use zddm::fleet::{Fleet, FleetConfig, Goal, SqliteControl};
use zddm::versioned::{Lookup, Source, SqliteSource, SqliteTarget, Target};
use zddm::{Phase, Rate};

const KEYS: u64 = 200;

fn zddm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zddm")).args(args).output().expect("the command runs")
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

struct World {
    _dir: tempfile::TempDir,
    old: PathBuf,
    new: PathBuf,
    control: PathBuf,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (old, new, control) = (dir.path().join("old.db"), dir.path().join("new.db"), dir.path().join("control.db"));
        let source = SqliteSource::<u64, String>::open(&old, "orders").unwrap();
        for key in 0..KEYS {
            source.put(&key, &format!("order {key}")).await.unwrap();
        }
        World { _dir: dir, old, new, control }
    }

    fn url(path: &Path) -> String {
        format!("sqlite:{}", path.display())
    }

    /// `command` with the stores and the fleet's record.
    fn args(&self, command: &str) -> Vec<String> {
        let mut args = vec![command.to_owned()];
        if command == "backfill" || command == "verify" {
            args.extend(
                ["--old", &Self::url(&self.old), "--new", &Self::url(&self.new), "--table", "orders"].map(String::from),
            );
        }
        args.extend(["--control", &Self::url(&self.control), "--fleet", "orders"].map(String::from));
        args
    }

    fn run(&self, command: &str, extra: &[&str]) -> Output {
        let mut args = self.args(command);
        args.extend(extra.iter().map(|s| s.to_string()));
        zddm(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    async fn new_holds(&self, key: u64) -> Lookup<String> {
        SqliteTarget::<u64, String>::open(&self.new, "orders").unwrap().lookup(&key).await.unwrap()
    }
}

/// The application's one instance: it polls the fleet until the plan stops moving.
async fn settle(fleet: &Fleet<SqliteControl>) {
    for _ in 0..50 {
        if !fleet.poll().await.unwrap().moving {
            return;
        }
    }
    panic!("the fleet did not settle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_from_empty_new_to_complete_with_the_command() {
    let world = World::new().await;
    let app =
        Fleet::join(SqliteControl::open(&world.control, "orders").unwrap(), "app", "orders", FleetConfig::default())
            .await
            .unwrap();

    // Not in live yet: the passes refuse, saying what to run.
    let (_, err) = text(&world.run("backfill", &[]));
    assert!(err.contains("is in read-through, not live") && err.contains("zddm phase live"), "{err}");

    let out = world.run("gate", &["100%"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = world.run("phase", &["live"]);
    assert!(out.status.success(), "{:?}", text(&out));
    settle(&app).await;
    let (status, _) = text(&world.run("status", &[]));
    assert!(status.contains("plan: live") && status.contains("app: epoch"), "{status}");

    let (_, err) = text(&world.run("phase", &["complete"]));
    assert!(err.contains("run a whole verification in live"), "{err}");

    let checkpoint = world.old.with_file_name("backfill.checkpoint").display().to_string();
    let out = world.run("backfill", &["--batch", "64", "--checkpoint", &checkpoint]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("backfill done: scanned {KEYS}")), "{stdout}");
    assert_eq!(world.new_holds(7).await, Lookup::Hit("order 7".into()));

    // A writer that bypasses zddm: verification finds it, repairs it, and fails the pass.
    SqliteSource::<u64, String>::open(&world.old, "orders")
        .unwrap()
        .put(&5, &"changed behind zddm's back".into())
        .await
        .unwrap();
    let out = world.run("verify", &["--recheck-after", "0"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("1 differing") && stdout.contains("1 repaired") && stdout.contains("differing: key"),
        "{stdout}"
    );
    assert_eq!(world.new_holds(5).await, Lookup::Hit("changed behind zddm's back".into()));

    let out = world.run("verify", &["--recheck-after", "0"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("clean") && stdout.contains("complete may be set"), "{stdout}");
    let out = world.run("phase", &["complete"]);
    assert!(out.status.success(), "{:?}", text(&out));
    settle(&app).await;
    assert_eq!(app.plan().phase, Phase::Complete);
    let (status, _) = text(&world.run("status", &[]));
    assert!(status.contains("plan: complete"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_get_a_message_that_says_what_to_do_and_never_a_password() {
    let out = zddm(&["--help"]);
    assert!(out.status.success() && text(&out).0.contains("backfill") && text(&out).0.contains("verify"));
    let out = zddm(&["backfill", "--olde", "x"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(text(&out).1.contains("unexpected argument '--olde'"), "{:?}", text(&out));

    let out = zddm(&["verify", "--old", "mysql://ada:s3cret@db/shop", "--new", "x.db", "--table", "orders", "--live"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("is not a store this command knows") && err.contains("ada:***@db"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");

    let out = zddm(&[
        "backfill",
        "--old",
        "postgres://ada:s3cret@127.0.0.1:1/shop",
        "--new",
        "x.db",
        "--table",
        "orders",
        "--live",
    ]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    // Which store, where, and why, each said once; never the password.
    assert!(
        err.starts_with(
            "zddm: OLD store (postgres://ada:***@127.0.0.1:1/shop): cannot connect to PostgreSQL at 127.0.0.1:1 \
             (database \"shop\", user \"ada\"): error connecting to server: Connection refused"
        ),
        "{err}"
    );
    assert_eq!(err.matches("refused").count(), 1, "said once: {err}");
    assert!(!err.contains("s3cret"), "{err}");

    let world = World::new().await;
    let old = World::url(&world.old);
    let out =
        zddm(&["backfill", "--old", &old, "--new", "redis://:s3cret@127.0.0.1:1/0", "--table", "orders", "--live"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with(
            "zddm: NEW store (redis://:***@127.0.0.1:1/0): cannot connect to Redis at 127.0.0.1:1 \
             (redis://:***@127.0.0.1:1/0): Connection refused"
        ),
        "{err}"
    );
    assert_eq!(err.matches("refused").count(), 1, "said once: {err}");
    assert!(!err.contains("s3cret"), "{err}");
    let out = zddm(&["status", "--control", "postgres://ada@127.0.0.1:1/shop?password=s3cret", "--fleet", "orders"]);
    let (_, err) = text(&out);
    assert!(
        err.starts_with("zddm: the fleet's control record (postgres://ada@127.0.0.1:1/shop?password=***): "),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    let out =
        zddm(&["backfill", "--old", &World::url(&world.old), "--new", &World::url(&world.new), "--table", "orders"]);
    assert!(text(&out).1.contains("--control URL --fleet NAME"), "{:?}", text(&out));
    let out = world.run("gate", &["150%"]);
    assert!(text(&out).1.contains("150%"), "{:?}", text(&out));
    let out = world.run("phase", &["sideways"]);
    assert!(text(&out).1.contains("unknown phase"), "{:?}", text(&out));
    let out = world.run("status", &[]);
    assert!(text(&out).1.contains("no fleet named \"orders\""), "{:?}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_backfill_that_resumes_from_its_checkpoint() {
    let world = World::new().await;
    let checkpoint = world.old.with_file_name("pass.checkpoint");
    let mut args = vec!["backfill".to_owned()];
    args.extend(
        ["--old", &World::url(&world.old), "--new", &World::url(&world.new), "--table", "orders", "--live"]
            .map(String::from),
    );
    args.extend(
        ["--batch", "10", "--rate", "100", "--checkpoint", &checkpoint.display().to_string()].map(String::from),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_zddm"))
        .args(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{:?}", text(&out));
    assert!(text(&out).1.contains("resumes from its last checkpoint"), "{:?}", text(&out));
    let saved = std::fs::read_to_string(&checkpoint).unwrap();
    assert!(saved.contains("done false"), "{saved}");

    // Run again, unthrottled: it goes on from the checkpoint.
    let rate = args.iter().position(|a| a == "--rate").unwrap();
    let resumed: Vec<&str> =
        args.iter().enumerate().filter(|(i, _)| *i != rate && *i != rate + 1).map(|(_, a)| a.as_str()).collect();
    let out = zddm(&resumed);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(std::fs::read_to_string(&checkpoint).unwrap().contains("done true"));
    for key in [0, KEYS / 2, KEYS - 1] {
        assert_eq!(world.new_holds(key).await, Lookup::Hit(format!("order {key}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_output_quietly() {
    let world = World::new().await;
    let fleet =
        Fleet::join(SqliteControl::open(&world.control, "orders").unwrap(), "app", "orders", FleetConfig::default())
            .await
            .unwrap();
    fleet.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::ALL }).await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zddm"))
        .args(world.args("status"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone, as with `| head -0`
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!text(&out).1.contains("panicked"), "{:?}", text(&out));
}

/// An existing `orders` table of the application's own schema, as OLD: backfilled and verified
/// through its key and version columns, from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_orders_table_is_backfilled_and_verified_from_the_command_line() {
    let server = zddm_suite::servers::PostgresServer::start();
    let url = server.url();
    let (app, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    app.batch_execute(
        "CREATE SEQUENCE orders_version_seq;
         CREATE TABLE orders (tenant integer NOT NULL, id text NOT NULL, customer text NOT NULL, placed date,
             version bigint NOT NULL DEFAULT nextval('orders_version_seq'), PRIMARY KEY (tenant, id));
         CREATE FUNCTION orders_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.version := nextval('orders_version_seq'); RETURN NEW; END $$;
         CREATE TRIGGER orders_version BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION orders_bump_version();
         INSERT INTO orders (tenant, id, customer, placed)
             SELECT n % 5, 'order-' || n, 'customer ' || n, date '2026-01-01' + n FROM generate_series(1, 300) n;",
    )
    .await
    .unwrap();
    let stores = ["--old", url.as_str(), "--new", url.as_str(), "--new-table", "orders_v2"];
    let update = async || {
        app.execute("UPDATE orders SET customer = 'moved' WHERE tenant = 2 AND id = 'order-7'", &[]).await.unwrap();
    };
    from_the_command_line(&stores, update, "tenant integer").await;
}

/// Backfills and verifies an existing `orders` table of 300 rows keyed by (tenant, id), then
/// again after `update` moved one row around zddm: found (status 3), repaired, clean again. A
/// wrong key column is named, with the table's columns (`columns` is how the first one reads).
async fn from_the_command_line(stores: &[&str], update: impl AsyncFnOnce(), columns: &str) {
    let table = ["--table", "orders", "--key-columns", "tenant,id", "--version-column", "version", "--live"];
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("orders.checkpoint").display().to_string();
    let backfill: Vec<&str> = ["backfill"]
        .into_iter()
        .chain(stores.iter().copied())
        .chain(table)
        .chain(["--checkpoint", &checkpoint])
        .collect();
    let out = zddm(&backfill);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("scanned 300") && stdout.contains("copied 300"), "{stdout}");

    let verify: Vec<&str> =
        ["verify"].into_iter().chain(stores.iter().copied()).chain(table).chain(["--recheck-after", "0"]).collect();
    let out = zddm(&verify);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("checked 300 keys: 0 missing"), "{:?}", text(&out));

    update().await;
    let out = zddm(&verify);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    assert!(text(&out).0.contains("1 differing") && text(&out).0.contains("1 repaired"), "{:?}", text(&out));
    let out = zddm(&verify);
    assert!(out.status.success(), "{:?}", text(&out));

    let mut wrong = verify.clone();
    let at = wrong.iter().position(|arg| *arg == "tenant,id").unwrap();
    wrong[at] = "tenant,number";
    let out = zddm(&wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no column \"number\"") && text(&out).1.contains(columns), "{:?}", text(&out));
}

/// The same on SQLite: the application's table keeps its versions in `zddm_versions` through
/// triggers (docs/backfill.md), and `--key-columns` reads it as it stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_sqlite_orders_table_is_backfilled_and_verified_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (shop, new) = (dir.path().join("shop.db"), dir.path().join("new.db"));
    let app = rusqlite::Connection::open(&shop).unwrap();
    app.execute_batch(
        "CREATE TABLE zddm_versions (name TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO zddm_versions VALUES ('orders', 0);
         CREATE TABLE orders (tenant INTEGER NOT NULL, id TEXT NOT NULL, customer TEXT NOT NULL, placed TEXT,
             version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, id));
         CREATE TRIGGER orders_version_insert AFTER INSERT ON orders BEGIN
             UPDATE zddm_versions SET last = last + 1 WHERE name = 'orders';
             UPDATE orders SET version = (SELECT last FROM zddm_versions WHERE name = 'orders') WHERE rowid = NEW.rowid;
         END;
         CREATE TRIGGER orders_version_update AFTER UPDATE OF tenant, id, customer, placed ON orders BEGIN
             UPDATE zddm_versions SET last = last + 1 WHERE name = 'orders';
             UPDATE orders SET version = (SELECT last FROM zddm_versions WHERE name = 'orders') WHERE rowid = NEW.rowid;
         END;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO orders (tenant, id, customer, placed)
             SELECT i % 5, 'order-' || i, 'customer ' || i, date('2026-01-01', '+' || i || ' days') FROM n;",
    )
    .unwrap();
    let (old_url, new_url) = (format!("sqlite:{}", shop.display()), format!("sqlite:{}", new.display()));
    let stores = ["--old", old_url.as_str(), "--new", new_url.as_str()];
    let update = async || {
        app.execute("UPDATE orders SET customer = 'moved' WHERE tenant = 2 AND id = 'order-7'", []).unwrap();
    };
    from_the_command_line(&stores, update, "tenant INTEGER").await;

    let table = ["--table", "orders", "--key-columns", "tenant,id", "--version-column", "version", "--live"];
    let verify: Vec<&str> = ["verify"].into_iter().chain(stores).chain(table).collect();
    let mut sequence = verify.clone();
    sequence.extend(["--version-sequence", "orders_version_seq"]);
    let out = zddm(&sequence);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("SQLite has none"), "{:?}", text(&out));
}
