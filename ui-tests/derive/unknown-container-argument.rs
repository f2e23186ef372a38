use zddm::MigrationKey;

#[derive(MigrationKey)]
#[zddm(rename = "order")]
struct OrderKey {
    id: u64,
}

fn main() {}
