//! Running the store's tests on both engines. A test written as
//! `fn name(db: &TestDb) { … }` inside [`on_both_engines!`] becomes two tests, `name::sqlite`
//! and `name::postgres`, each on a fresh empty database ([`TestDb::open`] gives connections to
//! it: several when a test needs a writer and a reader, or two writers).
//!
//! The PostgreSQL variant needs a server (see `pg/testdb.rs`). When none answers it FAILS,
//! naming the URL, unless `VAKA_TEST_PG=off` says to skip PostgreSQL on purpose.

use super::pg::testdb::PgTestDb;
use super::{PgStore, SqliteStore, Store};

pub enum TestDb {
    Sqlite { dir: tempfile::TempDir },
    Postgres { db: PgTestDb },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// A fresh PostgreSQL database; `None` only when `VAKA_TEST_PG=off`. Panics (fails the
    /// test) when PostgreSQL is not reachable.
    pub fn postgres() -> Option<TestDb> {
        if std::env::var("VAKA_TEST_PG").is_ok_and(|v| v == "off") {
            eprintln!("VAKA_TEST_PG=off: the PostgreSQL variant of this test is skipped");
            return None;
        }
        match PgTestDb::create() {
            Ok(db) => Some(TestDb::Postgres { db }),
            Err(e) => panic!("{e}"),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }

    /// A new connection to this test's database (the schema is created by the first).
    pub fn open(&self) -> Box<dyn Store> {
        match self {
            TestDb::Sqlite { dir } => Box::new(SqliteStore::open(&dir.path().join("hub.db")).expect("open SQLite store")),
            TestDb::Postgres { db } => Box::new(PgStore::open(&db.url).expect("open PostgreSQL store")),
        }
    }

    /// Runs raw SQL behind the store's back (as someone with the database in hand would): the
    /// SQLite or the PostgreSQL spelling, by engine. The number of rows changed, or the error.
    pub fn sql(&self, sqlite: &str, postgres: &str) -> Result<u64, String> {
        match self {
            TestDb::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("hub.db")).map_err(|e| e.to_string())?;
                conn.execute_batch(sqlite).map_err(|e| e.to_string())?;
                Ok(conn.changes())
            }
            TestDb::Postgres { db } => {
                let mut client = postgres::Client::connect(&db.url, postgres::NoTls).map_err(|e| e.to_string())?;
                client.execute(postgres, &[]).map_err(|e| super::pg::error_chain(&e))
            }
        }
    }
}

/// Each `fn name(db: &TestDb) { … }` becomes the module `name` with the tests `sqlite` and
/// `postgres`. Items of the enclosing module are in scope.
macro_rules! on_both_engines {
    ($($(#[$meta:meta])* fn $name:ident($db:ident: &TestDb) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::store::engines::TestDb;

            fn run($db: &TestDb) $body

            #[test]
            fn sqlite() {
                run(&TestDb::sqlite());
            }

            #[test]
            fn postgres() {
                if let Some(db) = TestDb::postgres() {
                    run(&db);
                }
            }
        }
    )*};
}
pub(crate) use on_both_engines;
