use zddm::MigrationKey;

#[derive(MigrationKey)]
struct OrderKey {
    #[zddm(tag = 1)]
    id: u64,
}

fn main() {}
