//! Throw-away PostgreSQL databases for tests: each test gets its own, uniquely named, created
//! on the server at `VAKA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! a database to connect to for `CREATE DATABASE`) and dropped when the value is dropped.

use std::sync::atomic::{AtomicU32, Ordering};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The admin URL with its database name replaced by `name`.
pub fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

pub struct PgTestDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgTestDb {
    /// A new empty database, or why not (with what to do about it).
    pub fn create() -> Result<PgTestDb, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = std::env::var("VAKA_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("vaka_test_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).map_err(|e| {
            format!(
                "PostgreSQL for the store tests is not reachable at {admin_url} ({}). Start it, point \
                 VAKA_TEST_PG_URL at one, or set VAKA_TEST_PG=off to skip the PostgreSQL variants",
                super::error_chain(&e)
            )
        })?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).map_err(|e| format!("CREATE DATABASE {name}: {}", super::error_chain(&e)))?;
        Ok(PgTestDb { url: with_dbname(&admin_url, &name), admin_url, name })
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        match postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            Ok(mut admin) => {
                if let Err(e) = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
                    eprintln!("test database {} not dropped: {e}", self.name);
                }
            }
            Err(e) => eprintln!("test database {} not dropped: {e}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn the_database_name_is_replaced_and_the_options_kept() {
        assert_eq!(with_dbname("postgres://postgres@127.0.0.1:5432/postgres", "t1"), "postgres://postgres@127.0.0.1:5432/t1");
        assert_eq!(with_dbname("postgres://u:p@h/db?sslmode=disable", "t2"), "postgres://u:p@h/t2?sslmode=disable");
        assert_eq!(with_dbname("postgres://h:5433", "t3"), "postgres://h:5433/t3");
    }
}
