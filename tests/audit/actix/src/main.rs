//! An actix-web service: routes by attribute, by resource and in nested
//! scopes, a `wrap_fn` middleware, and a task spawned at start-up.

mod handlers;

use std::time::Duration;

use actix_web::dev::Service;
use actix_web::{App, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let address = std::fs::read_to_string("address.txt")?; // hotspot: std-fs
    actix_web::rt::spawn(async {
        loop {
            std::thread::sleep(Duration::from_secs(60)); // hotspot: thread-sleep
        }
    });
    HttpServer::new(|| {
        App::new()
            .wrap_fn(|request, service| {
                let banned = std::fs::read_to_string("banned.txt").unwrap_or_default(); // hotspot: std-fs
                drop(banned);
                service.call(request)
            })
            .service(handlers::user)
            .service(handlers::create)
            .service(handlers::items)
            .service(web::resource("/report").route(web::get().to(handlers::report)))
            .service(web::resource("/upload").to(handlers::upload))
            .route("/health", web::get().to(handlers::health))
            .service(
                web::scope("/api")
                    .route("/orders", web::post().to(handlers::orders))
                    .service(web::scope("/v1").service(
                        web::resource("/things/{id}").route(web::delete().to(handlers::remove)),
                    )),
            )
            .service(web::scope("/admin").service(handlers::stats))
    })
    .bind(address.trim())?
    .run()
    .await
}
