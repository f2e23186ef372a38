#[zddm::migrate(old = zddm_suite::ui::OldStore, new = zddm_suite::ui::NewStore)]
pub struct Orders;

fn main() {}
