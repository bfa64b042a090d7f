//! A fresh PostgreSQL database for one test or benchmark, dropped afterwards.
//!
//! Uses the machine's PostgreSQL on 127.0.0.1:5432 (trust auth, user `postgres`, or
//! `VAKA_TEST_PG_URL` for another server's base URL) through `psql`, so that the harness needs
//! no database driver of its own. Each database gets a unique name; several hubs given the
//! same [`TestDb::url`] share it.

use std::process::Command;

/// A database created for one test; dropped (with its connections) when this is dropped.
pub struct TestDb {
    pub name: String,
    base: String,
}

fn base_url() -> String {
    std::env::var("VAKA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn psql(base: &str, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            &format!("{base}/{db}"),
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl TestDb {
    /// Creates `vaka_{tag}_{unique}`; panics with psql's answer when that fails.
    pub fn create(tag: &str) -> TestDb {
        let name = format!("vaka_{tag}_{}", uuid::Uuid::now_v7().simple());
        let base = base_url();
        psql(&base, "postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{e}"));
        TestDb { name, base }
    }

    /// The URL a hub's `[store] database_url` takes.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    /// Runs one SQL statement in this database and returns psql's unaligned output
    /// (`|`-separated columns, one row a line).
    pub fn query(&self, sql: &str) -> Result<String, String> {
        psql(&self.base, &self.name, sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("VAKA_KEEP_TEMP").is_none() {
            let _ = psql(
                &self.base,
                "postgres",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            );
        }
    }
}
