//! Gate decision cost against its floor (raw SHA-256 of the same encoded key) and against std's
//! `DefaultHasher` (what the seed library used, and not stable across Rust releases).
//!
//! `cargo bench --bench gate`, then `python3 scripts/bench-ratios.py gate` for the median ratios.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sha2::{Digest, Sha256};
use zddm::{Gate, MigrationKey, Rate};

/// A typical two-field key: 8 + 4 + 10 = 22 encoded bytes, one SHA-256 block after the prefix.
#[derive(MigrationKey, Hash)]
struct OrderKey {
    tenant: u32,
    order: String,
}

fn gate(c: &mut Criterion) {
    let key = OrderKey { tenant: 4_242, order: "A-10004217".into() };
    let bytes = key.key_bytes();
    let gate = Gate::new("orders-to-postgres", Rate::percent(50.0).unwrap());

    let mut group = c.benchmark_group("gate");
    group.bench_function("decision", |b| b.iter(|| black_box(&gate).admits(black_box(&key))));
    group.bench_function("sha256_of_encoded_key", |b| b.iter(|| Sha256::digest(black_box(&bytes[..]))));
    group.bench_function("default_hasher", |b| {
        b.iter(|| {
            let mut hasher = DefaultHasher::new();
            black_box(&key).hash(&mut hasher);
            hasher.finish()
        })
    });
    // What a straightforward implementation would do: allocate the encoding, hash prefix and key.
    let prefix = {
        let mut p = Vec::new();
        for part in ["zddm/v1", "orders-to-postgres"] {
            p.extend_from_slice(&(part.len() as u32).to_be_bytes());
            p.extend_from_slice(part.as_bytes());
        }
        p.resize(64, 0);
        p
    };
    group.bench_function("naive_key_bytes_then_full_sha256", |b| {
        b.iter(|| {
            let mut hasher = Sha256::new();
            hasher.update(&prefix);
            hasher.update(black_box(&key).key_bytes());
            hasher.finalize()
        })
    });
    group.finish();
}

criterion_group!(benches, gate);
criterion_main!(benches);
