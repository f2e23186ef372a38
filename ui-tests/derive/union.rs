use zddm::MigrationKey;

#[derive(MigrationKey)]
union Raw {
    int: u64,
    bytes: [u8; 8],
}

fn main() {}
