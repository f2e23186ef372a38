#!/usr/bin/env python3
"""Measures what #[zddm::migrate] adds to a crate's build: the same 20-method repository trait (a
read, a write, a delete and 17 passed-through methods) and two stores, compiled with the zddm
attributes and without them (plain trait and impls). Prints the median of 5 rebuilds of each.

Usage: python3 scripts/macro-compile-time.py   (builds into target/macro-compile-time/)
"""
import pathlib
import statistics
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "macro-compile-time"
PASSED = 17


def source(migrating: bool) -> str:
    attr = lambda text: text if migrating else ""
    methods = "\n".join(f"    {attr('#[zddm(old)] ')}fn stat_{i}(&self, n: u32) -> u64;" for i in range(PASSED))
    impl_methods = "\n".join(f"    fn stat_{i}(&self, n: u32) -> u64 {{ u64::from(n) + {i} }}" for i in range(PASSED))
    store_impls = ""
    for store in ["Old", "New"]:
        store_impls += f"""
{attr('#[zddm::backend]')}
impl Repo for {store} {{
    fn get(&self, key: &Key) -> Result<Option<String>, E> {{ Ok(self.0.lock().unwrap().get(&key.1).cloned()) }}
    fn put(&self, key: &Key, value: &String) -> Result<(), E> {{ self.0.lock().unwrap().insert(key.1.clone(), value.clone()); Ok(()) }}
    fn delete(&self, key: &Key) -> Result<(), E> {{ self.0.lock().unwrap().remove(&key.1); Ok(()) }}
{impl_methods}
}}
"""
    return f"""use std::collections::HashMap;
use std::sync::Mutex;

#[derive(zddm::MigrationKey)]
pub struct Key(pub u32, pub String);

#[derive(Debug)]
pub struct E;
impl std::fmt::Display for E {{ fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{ f.write_str("e") }} }}
impl std::error::Error for E {{}}
impl From<zddm::Error> for E {{ fn from(_: zddm::Error) -> Self {{ E }} }}

{attr('#[zddm::migrate(old = Old, new = New)]')}
pub trait Repo {{
    fn get(&self, key: &Key) -> Result<Option<String>, E>;
    fn put(&self, key: &Key, value: &String) -> Result<(), E>;
    fn delete(&self, key: &Key) -> Result<(), E>;
{methods}
}}

#[derive(Default)]
pub struct Old(Mutex<HashMap<String, String>>);
#[derive(Default)]
pub struct New(Mutex<HashMap<String, String>>);
{store_impls}
"""


def build(name: str, migrating: bool) -> float:
    crate = OUT / name
    (crate / "src").mkdir(parents=True, exist_ok=True)
    (crate / "Cargo.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n'
        f'[dependencies]\nzddm = {{ path = "{ROOT / "zddm"}" }}\n'
    )
    lib = crate / "src" / "lib.rs"
    lib.write_text(source(migrating))
    env = {"CARGO_TARGET_DIR": str(OUT / "target")}
    run = lambda: subprocess.run(["cargo", "build", "-q"], cwd=crate, check=True, env={**__import__("os").environ, **env})
    run()  # dependencies, once
    times = []
    for _ in range(5):
        lib.touch()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


plain = build("plain_repository", migrating=False)
migrating = build("migrating_repository", migrating=True)
print(f"20-method repository, debug rebuild of the crate, median of 5:")
print(f"  plain trait and impls:      {plain:6.3f} s")
print(f"  with #[zddm::migrate]:      {migrating:6.3f} s   (+{migrating - plain:.3f} s, {migrating / plain:.2f}x)")
