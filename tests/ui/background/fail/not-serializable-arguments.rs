use std::rc::Rc;

use axum::Json;
use lanes::background;

struct Upload {
    bytes: Vec<u8>,
}

#[background]
async fn store_upload(upload: Upload) {
    let _ = upload.bytes;
}

#[background]
fn count_words(Json(text): Json<Rc<String>>) -> Result<usize, String> {
    Ok(text.split_whitespace().count())
}

fn main() {}
