use zddm::MigrationKey;

#[derive(MigrationKey)]
enum Owner {
    #[zddm(tag = 4294967296)]
    User(u64),
}

fn main() {}
