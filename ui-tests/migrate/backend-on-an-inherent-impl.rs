pub struct Store;

#[zddm::backend]
impl Store {
    pub fn get(&self) {}
}

fn main() {}
