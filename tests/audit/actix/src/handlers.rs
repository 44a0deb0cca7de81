use std::time::Duration;

use actix_web::{HttpResponse, get, route, web};

#[get("/users/{id}")]
pub async fn user(id: web::Path<u32>) -> HttpResponse {
    let name = std::fs::read_to_string(format!("users/{id}")).unwrap_or_default(); // hotspot: std-fs
    HttpResponse::Ok().body(name)
}

#[actix_web::post("/users")]
pub async fn create(body: String) -> HttpResponse {
    std::fs::write("users/new", body).unwrap(); // hotspot: std-fs
    HttpResponse::Created().finish()
}

#[route("/items", method = "GET", method = "HEAD")]
pub async fn items() -> HttpResponse {
    std::thread::sleep(Duration::from_millis(5)); // hotspot: thread-sleep
    HttpResponse::Ok().finish()
}

#[get("/stats")]
pub async fn stats() -> HttpResponse {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default(); // hotspot: std-fs
    HttpResponse::Ok().body(load)
}

pub async fn report() -> HttpResponse {
    let answer = ureq::get("http://reports.internal/daily").call(); // hotspot: ureq
    HttpResponse::Ok().body(format!("{answer:?}"))
}

pub async fn upload(body: web::Bytes) -> HttpResponse {
    std::fs::write("upload.bin", body).unwrap(); // hotspot: std-fs
    HttpResponse::Ok().finish()
}

pub async fn health() -> HttpResponse {
    std::thread::sleep(Duration::from_millis(1)); // hotspot: thread-sleep
    HttpResponse::Ok().finish()
}

pub async fn orders(body: String) -> HttpResponse {
    std::fs::write("orders.log", body).unwrap(); // hotspot: std-fs
    HttpResponse::Ok().finish()
}

pub async fn remove(id: web::Path<u32>) -> HttpResponse {
    std::fs::remove_file(format!("things/{id}")).unwrap(); // hotspot: std-fs
    HttpResponse::NoContent().finish()
}
