use zddm::MigrationKey;

#[derive(MigrationKey)]
enum Owner {
    #[zddm(tag = 1)]
    User(u64),
    #[zddm(tag = 2)]
    Team(String),
    #[zddm(tag = 1)]
    System,
}

fn main() {}
