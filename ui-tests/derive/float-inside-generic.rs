use zddm::MigrationKey;

#[derive(MigrationKey)]
struct SampleKey(u64, Vec<Option<f32>>);

fn main() {}
