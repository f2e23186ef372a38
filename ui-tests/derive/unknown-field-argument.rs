use zddm::MigrationKey;

#[derive(MigrationKey)]
struct BlobKey {
    #[zddm(byte)]
    digest: Vec<u8>,
}

fn main() {}
