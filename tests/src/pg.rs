//! The hub's database on PostgreSQL for the end-to-end suite: with `VAKA_TEST_DATABASE=postgres`
//! each [`crate::Hub`] gets its own fresh database (`database_url`), created on the server at
//! `VAKA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and dropped with
//! the hub. Without it, hubs keep their data in SQLite as in production's default.

use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Whether this run keeps the hubs' data in PostgreSQL (`VAKA_TEST_DATABASE=postgres`).
pub fn wanted() -> bool {
    match std::env::var("VAKA_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("VAKA_TEST_DATABASE={other}: use `postgres` or `sqlite`"),
    }
}

fn admin_url() -> String {
    std::env::var("VAKA_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// `url` with its database name replaced by `name` (options after `?` kept).
fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let start = base.find("://").map_or(0, |i| i + 3);
    let base = base[start..].find('/').map_or(base, |i| &base[..start + i]);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs `f` on a thread of its own: the synchronous PostgreSQL client runs a small runtime of
/// its own, which panics on a thread that drives async tasks (an async test calling
/// [`crate::Hub::start`]).
fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// The error with its causes (`postgres::Error` alone often says only "db error").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// One hub's database, dropped (with any connection left to it) when this is dropped.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "vaka_e2e_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_url();
        on_thread(|| {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap_or_else(|e| {
                panic!("VAKA_TEST_DATABASE=postgres but PostgreSQL is not reachable at {admin} ({}); set VAKA_TEST_PG_URL", chain(&e))
            });
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", chain(&e)));
        });
        PgDb {
            url: with_dbname(&admin, &name),
            name,
        }
    }

    /// Rows of a query on the hub's database, for reading what it stored (from any thread).
    pub fn query(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Vec<postgres::Row> {
        on_thread(|| {
            postgres::Client::connect(&self.url, postgres::NoTls)
                .and_then(|mut client| client.query(sql, params))
                .unwrap_or_else(|e| panic!("hub database {}: {}", self.name, chain(&e)))
        })
    }
}

impl PgDb {
    /// Runs one SQL statement through `psql` and returns its unaligned output (`|`-separated
    /// columns, one row a line), for checks that only read numbers and names.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = std::process::Command::new("psql")
            .args([self.url.as_str(), "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if !out.status.success() {
            return Err(format!("psql `{sql}`: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let dropped = on_thread(|| {
            postgres::Client::connect(&admin_url(), postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
            })
        });
        if let Err(e) = dropped {
            eprintln!("test database {} not dropped: {}", self.name, chain(&e));
        }
    }
}
