use zddm::MigrationKey;

#[derive(MigrationKey)]
enum Blob {
    #[zddm(bytes, tag = 1)]
    Digest(Vec<u8>),
}

fn main() {}
