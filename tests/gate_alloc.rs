//! A gate decision allocates nothing: counted with a global allocator, not guessed from timings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use zddm::{Gate, MigrationKey, Rate};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(MigrationKey)]
struct OrderKey {
    tenant: u32,
    order: String,
}

#[derive(MigrationKey)]
struct Wide {
    id: u128,
    tags: Vec<String>,
    note: Option<String>,
}

#[test]
fn gate_decisions_do_not_allocate() {
    let gate = Gate::new("allocations", Rate::percent(50.0).unwrap());
    let keys: Vec<OrderKey> = (0..1_000).map(|i| OrderKey { tenant: i, order: format!("order-{i}") }).collect();
    // Over 55 bytes: several SHA-256 blocks per key.
    let wide = Wide { id: u128::MAX, tags: vec!["x".repeat(100), "y".into()], note: Some("n".repeat(70)) };

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut admitted = 0;
    for key in &keys {
        admitted += usize::from(gate.admits(key));
        let _ = gate.admission(key);
        let _ = gate.bucket(key);
    }
    let _ = gate.admits(&wide);
    let after = ALLOCATIONS.load(Ordering::SeqCst);

    assert_eq!(after - before, 0, "{} allocations in 3001 gate decisions", after - before);
    assert!((400..600).contains(&admitted), "the decisions were real: {admitted} of 1000 admitted");
    // And the counter does count: key_bytes allocates.
    let _ = keys[0].key_bytes();
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > after);
}
