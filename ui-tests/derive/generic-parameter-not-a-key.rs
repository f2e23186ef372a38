use zddm::{Gate, MigrationKey, Rate};

#[derive(MigrationKey)]
struct Tagged<T> {
    id: u64,
    tag: T,
}

fn main() {
    let gate = Gate::new("orders", Rate::ALL);
    gate.admits(&Tagged { id: 1, tag: 0.5f64 });
}
