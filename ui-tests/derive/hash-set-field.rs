use zddm::MigrationKey;

#[derive(MigrationKey)]
struct MembersKey {
    members: std::collections::HashSet<u64>,
}

fn main() {}
