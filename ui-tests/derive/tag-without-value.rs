use zddm::MigrationKey;

#[derive(MigrationKey)]
enum Owner {
    #[zddm(tag)]
    User(u64),
}

fn main() {}
