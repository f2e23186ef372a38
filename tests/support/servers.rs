//! Real servers for the tests: each starts its own process on a free loopback port with a temporary
//! data directory, waits until it answers, and is stopped when dropped — also when the test
//! panics. A missing server binary fails the test with the fix (`scripts/test` installs it); it is
//! never a silent skip.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of this test's own.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port, with persistence off.
    pub fn start() -> RedisServer {
        let binary = find("redis-server");
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        let port = free_port();
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let mut server = RedisServer { child, port, _dir: dir };
        server.wait_until_ready();
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited at start ({status}) on port {}", self.port);
            }
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer PING on port {} within 20 s", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A port nobody listens on now (the OS picks it; the server binds it right after).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn find(binary: &str) -> std::path::PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join(binary)).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates.into_iter().find(|path| Path::new(path).is_file()).unwrap_or_else(|| {
        panic!(
            "{binary} is not installed: run scripts/test, which installs it (Debian package), or install it yourself"
        )
    })
}

/// A PostgreSQL server of this test's own (`initdb` + `postgres`), trusting local connections.
///
/// PostgreSQL refuses to run as root; as root, it runs as the unprivileged system user
/// `zddm-test` (created once with `useradd`), owning the temporary data directory.
pub struct PostgresServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

const TEST_USER: &str = "zddm-test";

impl PostgresServer {
    /// Starts a fresh cluster on a free loopback port, with fsync off (it is thrown away).
    pub fn start() -> PostgresServer {
        let (initdb, postgres) = (find_postgres("initdb"), find_postgres("postgres"));
        let dir = tempfile::tempdir().expect("a temporary directory for PostgreSQL");
        let data = dir.path().join("data");
        let user = unprivileged_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the data directory");
        }
        let as_user = |command: &mut Command| {
            if let Some((uid, gid)) = user {
                use std::os::unix::process::CommandExt;
                command.uid(uid).gid(gid);
            }
        };
        let mut init = Command::new(initdb);
        init.args(["--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-sync", "-D"]).arg(&data);
        as_user(&mut init);
        let output = init.output().expect("initdb runs");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));

        let port = free_port();
        let mut server = Command::new(postgres);
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut server);
        let child = server.spawn().expect("postgres starts");
        let mut server = PostgresServer { child, port, _dir: dir };
        server.wait_until_ready();
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postgres exited at start ({status}) on port {}", self.port);
            }
            // Accepting TCP is not enough (it answers "starting up" for a moment): ask pg_isready.
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
                && Command::new(find_postgres("pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres did not become ready on port {} within 30 s", self.port);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT) lets the postmaster stop its backends; kill only if it hangs.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PostgreSQL's programs are outside PATH on Debian: look in its versioned directory too.
fn find_postgres(binary: &str) -> std::path::PathBuf {
    let versioned = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin").join(binary))
        .filter(|path| path.is_file())
        .max();
    versioned.unwrap_or_else(|| find(binary))
}

/// `Some((uid, gid))` of the unprivileged test user when running as root (creating the user once),
/// `None` when not root: then PostgreSQL runs as the current user.
fn unprivileged_user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").arg(flag).arg(TEST_USER).output().ok()?;
        String::from_utf8(output.stdout).ok()?.trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    if id("-u").is_none() {
        // Several tests may race to create it; a failure because it now exists is fine.
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER])
            .status();
    }
    Some((id("-u").expect("the test user exists"), id("-g").expect("the test user has a group")))
}
