// lanes.toml beside this file declares `.fetch_sync(..)` blocking.

struct Api;

impl Api {
    fn fetch_sync(&self, id: u32) -> u32 {
        id
    }
}

#[lanes::io_bound]
async fn user(id: u32) -> u32 {
    Api.fetch_sync(id)
}

fn main() {}
