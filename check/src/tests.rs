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
fn join_is_told_apart_by_its_arguments() {
    let source = "async fn h() {
        handle.join().unwrap();
        let s = parts.join(\",\");
        let p = dir.join(\"x\");
    }";
    let lines: Vec<usize> = findings(source, Scope::IoBound)
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(lines, [2]);
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
    assert!(
        found[0]
            .2
            .starts_with("std lock guard `guard` (from `.lock()`) is still held at this `.await`")
    );
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
