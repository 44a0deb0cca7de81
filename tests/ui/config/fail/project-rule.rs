// lanes.toml beside this file declares `legacy_db::query` blocking.

mod legacy_db {
    pub fn query(sql: &str) -> usize {
        sql.len()
    }
}

#[lanes::io_bound]
async fn count_users() -> usize {
    legacy_db::query("select count(*) from users")
}

fn main() {}
