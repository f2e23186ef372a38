use zddm::MigrationKey;

#[derive(MigrationKey)]
struct PriceKey {
    sku: u64,
    price: f64,
}

fn main() {}
