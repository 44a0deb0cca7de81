use std::fs::File;

#[lanes::io_bound]
async fn open_log() -> std::io::Result<File> {
    File::open("app.log")
}

fn main() {}
