use zddm::MigrationKey;

#[derive(MigrationKey)]
struct BlobKey {
    #[zddm(bytes = true)]
    digest: Vec<u8>,
}

fn main() {}
