use lanes::background;

#[background]
async fn resize(width: u32) -> u32 {
    width / 2
}

struct Thumbnail;

#[background]
fn thumbnail(width: u32) -> Result<Thumbnail, String> {
    let _ = width;
    Ok(Thumbnail)
}

#[derive(Debug)]
struct Oops;

#[background]
async fn crop(width: u32) -> Result<u32, Oops> {
    Ok(width)
}

fn main() {}
