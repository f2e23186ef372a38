use std::collections::HashMap;
use zddm::MigrationKey;

#[derive(MigrationKey)]
struct TagsKey {
    tenant: u32,
    tags: HashMap<String, u32>,
}

fn main() {}
