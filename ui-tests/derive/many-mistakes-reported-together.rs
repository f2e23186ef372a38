use zddm::MigrationKey;

#[derive(MigrationKey)]
#[zddm(crate = "zddm")]
enum Event {
    #[zddm(tag = 1)]
    Created { at: f64 },
    Deleted,
    #[zddm(tag = 1)]
    Moved(#[zddm(bites)] Vec<u8>),
}

fn main() {}
