//! The rule engine on its own: which code is flagged, where, and with what
//! words.

use std::path::Path;

use crate::{Config, Scope, scan};

/// `(line, column, message)` of each finding in `source`, a whole fn.
fn findings_with(source: &str, scope: Scope, config: &Config) -> Vec<(usize, usize, String)> {
    let item: syn::ItemFn = syn::parse_str(source).expect("test source parses");
    scan(&item.block, scope, config)
        .into_iter()
        .map(|f| (f.start.start().line, f.start.start().column, f.message))
        .collect()
}

fn findings(source: &str, scope: Scope) -> Vec<(usize, usize, String)> {
    findings_with(source, scope, &Config::default())
}

fn messages(source: &str, scope: Scope) -> Vec<String> {
    findings(source, scope)
        .into_iter()
        .map(|(_, _, m)| m)
        .collect()
}

#[test]
fn thread_sleep_is_reported_at_the_call_with_its_fix() {
    let found = findings(
        "async fn h() {\n    let d = 1;\n    std::thread::sleep(d);\n}",
        Scope::IoBound,
    );
    assert_eq!(
        found,
        [(
            3,
            4,
            "`std::thread::sleep` blocks the tokio worker inside #[io_bound]; use \
             `tokio::time::sleep(..).await`, or move this work into a #[blocking] fn"
                .to_owned()
        )]
    );
}

#[test]
fn every_written_form_of_sleep_is_caught_but_an_awaited_sleep_is_not() {
    let source = "async fn h() {
        sleep(d);
        thread::sleep(d);
        sleep(d).await;
        tokio::time::sleep(d).await;
        tokio::time::sleep(d);
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [2, 3]);
}

#[test]
fn fs_calls_name_their_async_twin() {
    let found = messages(
        "async fn h() { let s = fs::read_to_string(p)?; }",
        Scope::IoBound,
    );
    assert_eq!(
        found,
        [
            "`std::fs::read_to_string` blocks the tokio worker inside #[io_bound]; use \
          `tokio::fs::read_to_string(..).await`, or move this work into a #[blocking] fn"
        ]
    );
    assert!(
        messages(
            "async fn h() { tokio::fs::read(p).await?; }",
            Scope::IoBound
        )
        .is_empty()
    );
    assert!(messages("async fn h() { fs::read(p).await?; }", Scope::IoBound).is_empty());
}

#[test]
fn command_methods_are_caught_through_chains_and_bindings() {
    let source = "async fn h() {
        let out = Command::new(\"ls\").arg(\"-l\").output()?;
        let mut cmd = std::process::Command::new(\"ls\");
        cmd.status()?;
        let mut child = cmd.spawn()?;
        child.wait()?;
        response.status();
        tokio::process::Command::new(\"ls\").output().await?;
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [2, 4, 6]);
}

#[test]
fn join_is_flagged_only_on_a_std_thread() {
    let source = "async fn h() {
        let worker = std::thread::spawn(|| 1);
        worker.join().unwrap();
        std::thread::spawn(|| 2).join().unwrap();
        handle.join();
        let s = parts.join(\",\");
        let p = dir.join(\"x\");
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [3, 4]);
}

#[test]
fn runtime_reentry_and_tokio_blocking_bridges() {
    let source = "async fn h() {
        rt.block_on(fut);
        futures::executor::block_on(fut);
        rx.blocking_recv();
        m.blocking_lock();
        rx.recv().await;
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [2, 3, 4, 5]);
}

#[test]
fn network_clients_and_password_hashes() {
    let source = "async fn h() {
        let s = std::net::TcpStream::connect(addr)?;
        let body = reqwest::blocking::get(url)?;
        let r = ureq::get(url).call()?;
        let h = bcrypt::hash(pw, 12)?;
        let a = argon2.hash_password(pw, &salt)?;
        let ok = reqwest::get(url).await?;
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [2, 3, 4, 5, 6]);
}

#[test]
fn offloaded_closures_are_not_checked_but_inline_ones_are() {
    let source = "async fn h() {
        tokio::task::spawn_blocking(move || std::thread::sleep(d)).await?;
        std::thread::spawn(|| std::fs::read(p));
        rayon::spawn(move || { thread::sleep(d); });
        handle.spawn_blocking(|| thread::sleep(d));
        lanes::run_blocking(|| thread::sleep(d)).await;
        items.iter().for_each(|x| thread::sleep(d));
        tokio::spawn(async move { thread::sleep(d) });
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [7, 8]);
}

#[test]
fn macro_arguments_are_checked_and_join_awaits_its_futures() {
    let source = "async fn h() {
        println!(\"{}\", std::fs::read_to_string(p).unwrap());
        let (a, b) = tokio::join!(fs::read(p), fs::read(q));
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [2]);
}

#[test]
fn nested_items_are_not_the_body() {
    let source = "async fn h() {
        fn helper() { std::thread::sleep(d) }
    }";
    assert!(findings(source, Scope::IoBound).is_empty());
}

#[test]
fn a_std_guard_alive_at_an_await_is_reported_at_the_await() {
    let source = "async fn h() {
        let guard = state.lock().unwrap();
        let n = *guard + 1;
        save(n).await;
    }";
    let found = findings(source, Scope::IoBound);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0, found[0].1), (4, 15));
    assert!(found[0].2.starts_with(
        "std lock guard `guard` (from `.lock()` on line 2) is still held at this `.await`"
    ));
}

#[test]
fn a_guard_dropped_or_scoped_before_the_await_is_fine() {
    let dropped = "async fn h() {
        let guard = state.lock().unwrap();
        let n = *guard + 1;
        drop(guard);
        save(n).await;
    }";
    let scoped = "async fn h() {
        let n = { let g = state.read().unwrap(); *g + 1 };
        save(n).await;
    }";
    let temporary = "async fn h() {
        let n = state.lock().unwrap().len();
        save(n).await;
    }";
    let tokio_mutex = "async fn h() {
        let g = state.lock().await;
        save(*g).await;
    }";
    for source in [dropped, scoped, temporary, tokio_mutex] {
        assert!(findings(source, Scope::IoBound).is_empty(), "{source}");
    }
}

#[test]
fn cpu_bound_flags_io_but_not_hashing() {
    let source = "fn h() {
        let h = bcrypt::hash(pw, 12);
        std::thread::sleep(d);
    }";
    let found = findings(source, Scope::CpuBound);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, 3);
    assert_eq!(
        found[0].2,
        "`std::thread::sleep` blocks inside #[cpu_bound], idling one of the few CPU-lane threads; \
         sleeping and blocking I/O belong in a #[blocking] fn"
    );
}

#[test]
fn await_is_refused_in_sync_lanes_except_inside_async_blocks() {
    let source = "fn h() {
        let x = fetch().await;
        let y = handle.block_on(async { fetch().await });
    }";
    let found = findings(source, Scope::Blocking);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0, found[0].1), (2, 23));
    assert!(
        found[0]
            .2
            .starts_with("`.await` cannot be used inside #[blocking]")
    );
}

#[test]
fn the_blocking_lane_allows_blocking_calls() {
    let source = "fn h() { std::thread::sleep(d); std::fs::read(p); rt.block_on(f); }";
    assert!(findings(source, Scope::Blocking).is_empty());
}

#[test]
fn the_escape_hatch_needs_a_reason() {
    let with_reason = "async fn h() {
        #[lanes::allow_blocking(\"read once before serving\")]
        let cfg = std::fs::read_to_string(p)?;
        #[allow_blocking(\"tiny file\")]
        std::fs::write(p, b)?;
    }";
    assert!(findings(with_reason, Scope::IoBound).is_empty());

    let without = "async fn h() {
        #[lanes::allow_blocking]
        let cfg = std::fs::read_to_string(p)?;
        #[lanes::allow_blocking(\"  \")]
        let cfg = std::fs::read_to_string(p)?;
    }";
    let found = findings(without, Scope::IoBound);
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [2, 4]);
    assert!(
        found[0]
            .2
            .starts_with("`#[lanes::allow_blocking]` needs a written reason")
    );
}

#[test]
fn project_rules_add_calls_and_allow_built_ins() {
    let config = Config::parse(
        r#"
        allow = ["std::fs::metadata", "thread-join"]
        [[blocking]]
        path = "legacy_db::Client::query"
        reason = "a synchronous database client"
        fix = "use `legacy_db::AsyncClient`"
        [[blocking]]
        method = "fetch_sync"
        "#,
        Path::new("lanes.toml"),
    )
    .unwrap();
    let source = "async fn h() {
        let m = std::fs::metadata(p)?;
        handle.join();
        let rows = Client::query(&c, q);
        let x = api.fetch_sync(1);
        let s = std::fs::read(p)?;
        let all = crate::legacy_db::Client::query(&c, q);
        let other = Other::query(&c, q);
    }";
    let found = findings_with(source, Scope::IoBound, &config);
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [4, 5, 6, 7]);
    assert_eq!(
        found[0].2,
        "`Client::query` (a synchronous database client) blocks the tokio worker inside \
         #[io_bound]; use `legacy_db::AsyncClient`"
    );
    assert_eq!(
        found[1].2,
        "`.fetch_sync(..)` blocks the tokio worker inside #[io_bound]; move this work into a \
         #[blocking] fn"
    );
}

#[test]
fn stripping_removes_only_the_escape_hatch() {
    let mut item: syn::ItemFn = syn::parse_str(
        "async fn h() { #[lanes::allow_blocking(\"why\")] #[rustfmt::skip] let x = 1; }",
    )
    .unwrap();
    crate::strip_allow_attrs(&mut item.block);
    let syn::Stmt::Local(local) = &item.block.stmts[0] else {
        panic!("a let statement")
    };
    assert_eq!(local.attrs.len(), 1);
    assert!(local.attrs[0].path().is_ident("rustfmt") || local.attrs[0].path().segments.len() == 2);
    assert!(!crate::is_allow_attr(&local.attrs[0]));
}

#[test]
fn the_audit_scope_checks_like_io_bound_and_names_no_attribute() {
    let source = "async fn h() {
        std::thread::sleep(d);
        let g = m.lock().unwrap();
        x.await;
    }";
    let found = findings(source, Scope::Async);
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(
        found[0].2,
        "`std::thread::sleep` blocks the tokio worker inside async code; use \
         `tokio::time::sleep(..).await`, or move this work into a #[blocking] fn"
    );
}

mod crate_model {
    //! The rules with the crate model: names resolved through the files'
    //! `use` lines, and calls followed into the crate's own helpers.

    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use syn::visit::Visit;

    use crate::{Config, Model, Root, Scope, check};

    /// `(file, line, rule, message)` of every finding in the async fns of
    /// a crate made of `files` (`src/lib.rs` first).
    pub(super) fn crate_findings(files: &[(&str, &str)]) -> Vec<(String, usize, String, String)> {
        crate_findings_with(files, &Config::default())
    }

    pub(super) fn crate_findings_with(
        files: &[(&str, &str)],
        config: &Config,
    ) -> Vec<(String, usize, String, String)> {
        let texts: HashMap<PathBuf, &str> =
            files.iter().map(|(p, t)| (PathBuf::from(p), *t)).collect();
        let mut open = |path: &Path| {
            let text = texts.get(path)?;
            Some(syn::parse_file(text).expect("fixture parses"))
        };
        let roots = [Root {
            file: PathBuf::from(files[0].0),
            library: None,
        }];
        let (model, sources) = Model::build(&roots, Path::new(""), config, &mut open);
        struct AsyncFns<'m> {
            model: &'m Model,
            config: &'m Config,
            file: &'m Path,
            display: &'m str,
            out: Vec<(String, usize, String, String)>,
        }
        impl AsyncFns<'_> {
            fn body(&mut self, sig: &syn::Signature, block: &syn::Block) {
                if sig.asyncness.is_none() {
                    return;
                }
                let line = sig.fn_token.span.start().line;
                let place = self
                    .model
                    .place_at(self.file, line)
                    .expect("a file of the model");
                for f in check(
                    block,
                    Some(sig),
                    Scope::Async,
                    self.config,
                    Some((self.model, &place)),
                ) {
                    self.out.push((
                        self.display.to_owned(),
                        f.start.start().line,
                        f.rule,
                        f.message,
                    ));
                }
            }
        }
        impl<'ast> Visit<'ast> for AsyncFns<'_> {
            fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
                self.body(&item.sig, &item.block);
            }
            fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
                self.body(&item.sig, &item.block);
            }
        }
        let mut out = Vec::new();
        for source in &sources {
            let mut fns = AsyncFns {
                model: &model,
                config,
                file: &source.path,
                display: &source.display,
                out: Vec::new(),
            };
            fns.visit_file(&source.ast);
            out.extend(fns.out);
        }
        out.sort();
        out
    }

    /// `(file, line, rule)` only.
    pub(super) fn hotspots(files: &[(&str, &str)]) -> Vec<(String, usize, String)> {
        crate_findings(files)
            .into_iter()
            .map(|(file, line, rule, _)| (file, line, rule))
            .collect()
    }

    fn at(file: &str, line: usize, rule: &str) -> (String, usize, String) {
        (file.to_owned(), line, rule.to_owned())
    }

    #[test]
    fn names_resolve_through_use_lines_aliases_and_re_exports() {
        let lib = r#"
use bcrypt::{hash, verify};
use std::fs::read_to_string;
use std::fs as f;
use tokio::fs;
use std::time::Duration;
use tokio::time::timeout;
type StdFile = std::fs::File;
mod util;
mod pbkdf2 { pub fn xor(a: u8, b: u8) -> u8 { a ^ b } }
mod paths { pub fn sanitize(p: &str) -> String { p.replace("..", "") } }

async fn login(pw: String, stored: String) -> bool {
    verify(&pw, &stored).unwrap()
}
async fn read_all(p: String) {
    let a = read_to_string(&p);
    let b = f::read(&p);
    let c = StdFile::open(&p);
    let d = util::sfs::read(&p);
    let e = timeout(Duration::from_secs(1), fs::read(&p)).await;
    let g = fs::read(&p).await;
    let h = pbkdf2::xor(1, 2);
    let i = paths::sanitize(&p);
}
"#;
        let util = "pub use std::fs as sfs;\n";
        assert_eq!(
            hotspots(&[("src/lib.rs", lib), ("src/util.rs", util)]),
            [
                at("src/lib.rs", 14, "bcrypt"),
                at("src/lib.rs", 17, "std-fs"),
                at("src/lib.rs", 18, "std-fs"),
                at("src/lib.rs", 19, "file-open"),
                at("src/lib.rs", 20, "std-fs"),
            ]
        );
    }

    #[test]
    fn a_local_module_named_like_std_is_the_crate_s_own() {
        let lib = r#"
mod fs { pub fn sanitize(p: &str) -> String { p.to_owned() } }
async fn upload(p: String) -> String {
    fs::sanitize(&p)
}
"#;
        assert!(hotspots(&[("src/lib.rs", lib)]).is_empty());
    }

    #[test]
    fn the_fix_never_names_the_api_the_code_already_uses() {
        let lib = r#"
use tokio::fs;
async fn save(p: String) {
    tokio::spawn(fs::write(p.clone(), "x"));
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), fs::read(&p)).await;
}
"#;
        assert!(crate_findings(&[("src/lib.rs", lib)]).is_empty());
    }

    #[test]
    fn a_helper_that_blocks_is_reported_at_the_call_with_its_chain() {
        let lib = r#"
mod crypto;
mod users;
use users::User;

async fn login(user: User, pw: String) -> bool {
    user.check_password(&pw)
}
async fn sign_up(pw: String) -> String {
    crypto::hash_secret(&pw)
}
async fn scan() -> usize {
    users::Directory::scan().len()
}
"#;
        let users = r#"
use crate::crypto;
pub struct User { pub hash: String }
impl User {
    pub fn check_password(&self, pw: &str) -> bool {
        self.verify_with(pw)
    }
    fn verify_with(&self, pw: &str) -> bool {
        crypto::verify(pw, &self.hash)
    }
}
pub struct Directory;
impl Directory {
    pub fn scan() -> Vec<u8> {
        let mut all = Vec::new();
        for name in ["a", "b"] {
            all.extend(Self::hash_file(name));
        }
        all
    }
    fn hash_file(name: &str) -> Vec<u8> {
        std::fs::read(name).unwrap_or_default()
    }
}
"#;
        let crypto = r#"
pub fn verify(pw: &str, hash: &str) -> bool {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pw.as_bytes(), hash.as_bytes(), 600_000, &mut out);
    out[0] == 0
}
pub fn hash_secret(pw: &str) -> String {
    argon2::hash_encoded(pw.as_bytes(), b"salt", &Default::default()).unwrap()
}
pub fn offloaded(pw: String) {
    std::thread::spawn(move || verify(&pw, ""));
}
"#;
        let found = crate_findings(&[
            ("src/lib.rs", lib),
            ("src/users.rs", users),
            ("src/crypto.rs", crypto),
        ]);
        let lines: Vec<(usize, &str)> = found.iter().map(|f| (f.1, f.2.as_str())).collect();
        assert_eq!(lines, [(7, "pbkdf2"), (10, "argon2"), (13, "std-fs")]);
        assert_eq!(
            found[0].3,
            "`user.check_password(..)` blocks the tokio worker inside async code: \
             `User::check_password` calls `User::verify_with` (src/users.rs:6), which calls \
             `crypto::verify` (src/users.rs:9), which runs `pbkdf2::pbkdf2_hmac` \
             (src/crypto.rs:4); make `check_password` a #[cpu_bound] fn and `.await` it, or call \
             it inside `lanes::run_cpu(move || ..).await`"
        );
        assert!(
            found[2].3.starts_with(
                "`users::Directory::scan(..)` blocks the tokio worker inside async code: \
                 `Directory::scan` calls `Directory::hash_file` (src/users.rs:17), which runs \
                 `std::fs::read` (src/users.rs:22); make `scan` a #[blocking] fn"
            ),
            "{}",
            found[2].3
        );
    }

    #[test]
    fn helpers_that_offload_or_return_futures_stay_clean() {
        let lib = r#"
fn spawn_hash(pw: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || { bcrypt::hash(pw, 12).unwrap(); })
}
fn later(p: String) -> impl std::future::Future<Output = ()> {
    async move { tokio::fs::write(p, "x").await.unwrap() }
}
#[lanes::blocking]
fn export(p: String) { std::fs::write(p, "x").unwrap() }
fn one() -> u32 { two() }
fn two() -> u32 { 2 }

async fn handler(pw: String) {
    let _ = spawn_hash(pw);
    later("a".into()).await;
    export("b".into()).await;
    let _ = one();
}
"#;
        assert!(crate_findings(&[("src/lib.rs", lib)]).is_empty());
    }

    #[test]
    fn a_helper_reported_once_at_each_call_however_many_lines_block() {
        let lib = r#"
fn load() -> String {
    let a = std::fs::read_to_string("a").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1));
    a + &std::fs::read_to_string("b").unwrap()
}
async fn first() { load(); }
async fn second() { let _ = load(); let _ = load(); }
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [
                at("src/lib.rs", 7, "std-fs"),
                at("src/lib.rs", 8, "std-fs"),
                at("src/lib.rs", 8, "std-fs"),
            ]
        );
    }

    #[test]
    fn futures_count_as_awaited_wherever_they_are_consumed() {
        let lib = r#"
use std::time::Duration;
async fn handler(p: String) {
    let _ = timeout(Duration::from_secs(1), fs::read(&p)).await;
    tokio::spawn(fs::write(p.clone(), "x"));
    let pinned = Box::pin(fs::read(&p));
    let later = fs::read(&p);
    let other = fs::read_to_string(&p);
    tokio::pin!(other);
    let (a, b) = tokio::join!(later, pinned);
    tokio::select! {
        r = fs::read(&p) => drop(r),
        _ = &mut other => {}
    }
    let all = futures::future::join_all(vec![fs::read(&p)]).await;
    let retried = retry(|| fs::read(&p)).await;
    let mapped = fs::read(&p).map_err(drop).await;
    let blocking = std::fs::read(&p);
}
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [at("src/lib.rs", 18, "std-fs")]
        );
    }

    #[test]
    fn closures_bound_then_offloaded_are_not_inline_code() {
        let lib = r#"
async fn handler(p: String) {
    let work = move || std::fs::read(&p);
    let bytes = tokio::task::spawn_blocking(work).await;
    let q = String::from("q");
    let other = tokio::task::spawn_blocking({
        let q = q.clone();
        std::thread::sleep(std::time::Duration::from_millis(1));
        move || std::fs::read(q)
    }).await;
    let inline = || std::fs::read("inline");
    inline();
    actix_web::web::block(move || std::fs::read("x")).await;
    pool.install(|| std::fs::read("y"));
    conn.interact(|c| std::fs::read("z")).await;
    set.spawn_blocking(|| std::fs::read("w"));
    blocking::unblock(|| std::fs::read("v")).await;
    tokio_rayon::spawn(|| std::fs::read("u")).await;
}
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [
                at("src/lib.rs", 8, "thread-sleep"),
                at("src/lib.rs", 11, "std-fs")
            ]
        );
    }

    #[test]
    fn project_offloaders_from_lanes_toml() {
        let config = Config::parse(
            "offload = [\"crate::pool::run_sync\", \".in_worker\"]\n",
            Path::new("lanes.toml"),
        )
        .unwrap();
        let lib = r#"
async fn handler() {
    crate::pool::run_sync(|| std::fs::read("a")).await;
    queue.in_worker(|| std::fs::read("b")).await;
    other(|| std::fs::read("c")).await;
}
"#;
        let found: Vec<usize> = crate_findings_with(&[("src/lib.rs", lib)], &config)
            .iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(found, [5]);
    }

    #[test]
    fn guards_fire_only_on_std_and_parking_lot_locks_in_every_shape() {
        let lib = r#"
use std::sync::{Arc, Mutex};
use tokio::sync::RwLock;
static COUNTS: std::sync::LazyLock<Mutex<u64>> = std::sync::LazyLock::new(Default::default);
struct State { names: Mutex<Vec<String>>, cache: RwLock<u64>, fast: parking_lot::Mutex<u8> }
impl State {
    async fn shapes(&self, hits: Arc<Mutex<u64>>, shared: Arc<RwLock<u64>>) {
        let names = self.names.lock().unwrap();
        save().await;
        drop(names);
        let cache = self.cache.write().await;
        save().await;
        let fast = self.fast.lock();
        save().await;
        drop(fast);
        let maybe = shared.try_read();
        save().await;
        if let Ok(mut h) = hits.lock() {
            *h += 1;
            save().await;
        }
        match COUNTS.lock() {
            Ok(c) => save().await,
            Err(_) => {}
        }
        let Ok(c) = hits.lock() else { return };
        let d = hits.lock().map_err(|_| ()).unwrap();
        save().await;
    }
}
async fn save() {}
"#;
        let found = crate_findings(&[("src/lib.rs", lib)]);
        let lines: Vec<usize> = found.iter().map(|f| f.1).collect();
        assert_eq!(lines, [9, 14, 20, 23, 28]);
        assert!(found[0].3.starts_with(
            "std lock guard `names` (from `.lock()` on line 8) is still held at this `.await`"
        ));
        assert!(
            found[1]
                .3
                .starts_with("parking_lot lock guard `fast` (from `.lock()` on line 13)")
        );
        assert!(found[4].3.starts_with(
            "std lock guards `c` (from `.lock()` on line 26) and `d` (from `.lock()` on line 27) \
             are still held at this `.await`"
        ));
    }

    #[test]
    fn a_lock_future_passed_on_is_not_a_guard() {
        let lib = r#"
async fn handler(m: std::sync::Arc<tokio::sync::Mutex<u8>>, other: Other) {
    let fut = other.lock();
    let g = tokio::time::timeout(std::time::Duration::from_secs(1), fut).await;
    let h = other.lock();
    work().await;
}
async fn work() {}
"#;
        assert!(hotspots(&[("src/lib.rs", lib)]).is_empty());
    }

    #[test]
    fn std_handles_are_known_by_where_they_came_from() {
        let lib = r#"
use std::io::{Read, Write, IsTerminal};
use std::net::TcpListener;
async fn handler(rx: std::sync::mpsc::Receiver<u8>, pool: Pool) {
    let tty = std::io::stdin().is_terminal();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    stream.write_all(b"x").unwrap();
    let tokio_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let accepted = tokio_listener.accept().await;
    let conn = pool.accept();
    let mut file = std::fs::OpenOptions::new().append(true).open("log").unwrap();
    file.sync_all().unwrap();
    let other = std::fs::File::options().read(true).open("x");
    let job = rx.recv();
    let (tx, jobs) = std::sync::mpsc::channel::<u8>();
    let next = jobs.recv_timeout(std::time::Duration::from_secs(1));
    let addrs = "example.com:443".to_socket_addrs();
    std::thread::scope(|s| { s.spawn(|| 1); });
    let task = tokio::spawn(async {});
    let joined = task.join();
}
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [
                at("src/lib.rs", 7, "stdin"),
                at("src/lib.rs", 9, "socket-accept"),
                at("src/lib.rs", 10, "std-io"),
                at("src/lib.rs", 14, "file-open"),
                at("src/lib.rs", 15, "std-io"),
                at("src/lib.rs", 16, "file-open"),
                at("src/lib.rs", 17, "mpsc-recv"),
                at("src/lib.rs", 19, "mpsc-recv"),
                at("src/lib.rs", 20, "dns-lookup"),
                at("src/lib.rs", 21, "thread-scope"),
            ]
        );
    }

    #[test]
    fn sync_database_clients_archives_and_fs_err() {
        let lib = r#"
use diesel::prelude::*;
async fn handler(url: String) {
    let mut conn = diesel::PgConnection::establish(&url).unwrap();
    let rows = users.load::<User>(&mut conn);
    let pg = postgres::Client::connect(&url, postgres::NoTls);
    let db = rusqlite::Connection::open("app.db");
    let client = redis::Client::open(url.as_str()).unwrap();
    let con = client.get_connection();
    let mut archive = tar::Archive::new(file);
    archive.unpack("out").unwrap();
    let zip = zip::ZipArchive::new(reader);
    let text = fs_err::read_to_string("a");
    let fine = fs_err::tokio::read_to_string("a").await;
    let async_client = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await;
}
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [
                at("src/lib.rs", 4, "sync-database"),
                at("src/lib.rs", 5, "sync-database"),
                at("src/lib.rs", 6, "sync-database"),
                at("src/lib.rs", 7, "sync-database"),
                at("src/lib.rs", 9, "sync-database"),
                at("src/lib.rs", 11, "archive"),
                at("src/lib.rs", 12, "archive"),
                at("src/lib.rs", 13, "std-fs"),
            ]
        );
    }

    #[test]
    fn path_stats_are_warnings_for_the_audit_and_pass_the_macros() {
        let body =
            "async fn h(p: std::path::PathBuf) { let e = p.exists(); let m = p.metadata(); }";
        let item: syn::ItemFn = syn::parse_str(body).unwrap();
        let audit = crate::scan(&item.block, Scope::Async, &Config::default());
        assert_eq!(audit.len(), 2);
        assert!(
            audit
                .iter()
                .all(|f| f.rule == "path-stat" && f.severity == crate::Severity::Warning)
        );
        assert!(crate::scan(&item.block, Scope::IoBound, &Config::default()).is_empty());
    }

    #[test]
    fn macro_bodies_that_are_not_expression_lists_are_read_piece_by_piece() {
        let lib = r#"
async fn handler(p: String) {
    tokio::select! {
        bytes = fs::read(&p) => drop(bytes),
        _ = tokio::time::sleep(d) => { std::thread::sleep(d); }
    }
    let body = serde_json::json!({ "text": std::fs::read_to_string(&p).unwrap(), "n": 1 });
    tracing::info!(size = %std::fs::read(&p).unwrap().len(), user = ?p, "read {}", p);
}
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [
                at("src/lib.rs", 5, "thread-sleep"),
                at("src/lib.rs", 7, "std-fs"),
                at("src/lib.rs", 8, "std-fs"),
            ]
        );
    }

    #[test]
    fn every_message_names_its_rule_for_allow() {
        let item: syn::ItemFn = syn::parse_str("async fn h() { std::thread::sleep(d); }").unwrap();
        let found = crate::scan(&item.block, Scope::IoBound, &Config::default());
        assert!(
            found[0]
                .message_with_rule()
                .ends_with(" [lanes::thread-sleep]")
        );
    }

    #[test]
    fn the_crate_s_own_offloaders_are_learned_from_their_bodies() {
        let lib = r#"
pub struct Db;
impl Db {
    pub async fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce(&mut Conn) -> R + Send,
    {
        let mut conn = Conn;
        tokio::task::block_in_place(move || f(&mut conn))
    }
    pub async fn apply(&self, f: impl FnOnce() -> u8) -> u8 {
        f()
    }
}
pub async fn in_pool<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(job).await.unwrap()
}
macro_rules! db_run {
    ($conn:ident: $body:block) => { $conn.run(move |$conn| $body).await };
}
pub struct Conn;

async fn handler(db: Db) {
    db.run(|conn| std::fs::read("a")).await;
    in_pool(|| std::fs::read("b")).await;
    db_run!(db: { std::fs::read("c") });
    db.apply(|| { std::fs::read("d"); 1 }).await;
}
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [at("src/lib.rs", 27, "std-fs")]
        );
    }

    #[test]
    fn an_import_named_like_its_crate_is_the_crate_s_item() {
        let lib = r#"
use glob::glob;
use tempfile::tempfile;
use fs_extra::dir::{copy, CopyOptions};
async fn serve(p: String) {
    let found = glob(&p);
    let file = tempfile();
    let options = CopyOptions::default();
    copy(&p, "b", &options);
}
"#;
        assert_eq!(
            hotspots(&[("src/lib.rs", lib)]),
            [
                at("src/lib.rs", 6, "std-fs"),
                at("src/lib.rs", 7, "std-fs"),
                at("src/lib.rs", 9, "std-fs")
            ]
        );
    }

    #[test]
    fn the_macros_model_follows_each_change_of_a_file_s_contents() {
        let dir = std::env::temp_dir().join(format!("lanes-model-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("lib.rs");
        let helper = dir.join("helper.rs");
        let handler = "mod helper;\nasync fn handler() { helper::load(); }\n";
        std::fs::write(&lib, handler).unwrap();
        let findings = |helper_text: &str| {
            std::fs::write(&helper, helper_text).unwrap();
            let (model, place) = crate::for_macro(&lib, 2, &Config::default()).expect("a model");
            let item: syn::File = syn::parse_str(handler).unwrap();
            let syn::Item::Fn(f) = &item.items[1] else {
                panic!("the handler")
            };
            check(
                &f.block,
                Some(&f.sig),
                Scope::IoBound,
                &Config::default(),
                Some((&model, &place)),
            )
            .len()
        };
        assert_eq!(
            findings("pub fn load() { std::fs::read(\"a\").ok(); }\n"),
            1
        );
        assert_eq!(findings("pub fn load() {}\n"), 0);
        // The same length, other contents.
        assert_eq!(
            findings("pub fn load() { std::fs::read(\"a\").ok(); }\n"),
            1
        );
        assert_eq!(
            findings("pub fn load() { std::io::sink(\"a\").ok(); }\n"),
            0
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
