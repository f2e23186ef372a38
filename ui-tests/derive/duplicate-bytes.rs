use zddm::MigrationKey;

#[derive(MigrationKey)]
struct BlobKey {
    #[zddm(bytes)]
    #[zddm(bytes)]
    digest: Vec<u8>,
}

fn main() {}
