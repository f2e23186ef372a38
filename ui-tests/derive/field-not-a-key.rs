use zddm::MigrationKey;

struct Region {
    code: u16,
}

#[derive(MigrationKey)]
struct ShardKey {
    region: Region,
    id: u64,
}

fn main() {}
