use zddm::MigrationKey;

#[derive(MigrationKey)]
enum Owner {
    #[zddm(tag = 1)]
    User(u64),
    Team(String),
}

fn main() {}
