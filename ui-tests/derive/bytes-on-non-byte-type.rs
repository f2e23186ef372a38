use zddm::MigrationKey;

#[derive(MigrationKey)]
struct UserKey {
    #[zddm(bytes)]
    name: String,
}

fn main() {}
