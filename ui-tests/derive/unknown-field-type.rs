use zddm::MigrationKey;

#[derive(MigrationKey)]
struct ShardKey {
    region: Regoin,
    id: u64,
}

fn main() {}
