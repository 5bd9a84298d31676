//! [`PostgresPersister`]: a PostgreSQL database (feature `postgres`), for
//! operators who replicate (a synchronous standby) and need a fenced single
//! writer (two processes of one node never both write).
//!
//! **Schema** (created and versioned here; version
//! [`SQL_SCHEMA_VERSION`](super::SQL_SCHEMA_VERSION)): `kv(key BYTEA PRIMARY
//! KEY, value BYTEA NOT NULL)` with keys in [`Key::to_bytes`] form,
//! `meta(name, value)` with a `schema_version` row, and `lease(id, epoch,
//! holder, acquired_at)`. One database per node.
//!
//! **Writes:** concurrent `write_batch` calls share one transaction and one
//! commit ([`GroupCommit`]); each transaction first reads the lease epoch
//! `FOR UPDATE` and aborts if another writer took over. A commit returns
//! once the server reports it durable (with `synchronous_commit=on` and
//! `synchronous_standby_names` set, once the standby has it too).
//!
//! The session raises a weaker inherited `synchronous_commit` (`off`,
//! `local`, `remote_write`) to `on`, and a COMMIT that returns with a
//! WARNING (its wait for the standby cancelled: committed locally only) is
//! a failure.
//!
//! **Failures:** a lost connection, a failed statement or a lost lease is
//! an `io::Error` from `write_batch` for every batch of that commit, and
//! every later batch is refused: the store stops, and must be reopened
//! (against the promoted standby, after a failover). The persister never
//! reconnects by itself. Fencing: see `lease.rs`.

mod lease;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use postgres::{Client, NoTls, Statement};

pub use lease::Takeover;

use super::group::GroupCommit;
use super::sql::{self, Rows, SCHEMA_VERSION};
use super::{Key, Persister};
use crate::error::StoreError;

/// How a [`PostgresPersister`] takes its database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// What to do when another writer holds the lease.
    pub takeover: Takeover,
    /// Who this writer is, stored in the `lease` row and named in the
    /// refusal another writer gets (default: `chanstore pid <pid>`).
    pub holder: String,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            takeover: Takeover::Refuse,
            holder: format!("chanstore pid {}", std::process::id()),
        }
    }
}

/// The connection and its prepared statements.
struct Conn {
    client: Client,
    /// The WARNINGs the server sent on this connection since the last
    /// commit began (see `commit`).
    warnings: Arc<parking_lot::Mutex<Vec<String>>>,
    check_epoch: Statement,
    delete: Statement,
    upsert: Statement,
}

/// A [`Persister`] over one PostgreSQL database, holding its lease.
pub struct PostgresPersister {
    /// Host, port and database, for messages (never the password).
    what: String,
    epoch: i64,
    /// Only the group's leader (and `load`) touch the connection.
    conn: Mutex<Conn>,
    group: GroupCommit<Rows>,
}

impl std::fmt::Debug for PostgresPersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresPersister")
            .field("database", &self.what)
            .field("epoch", &self.epoch)
            .finish()
    }
}

const SCHEMA: &str = "
    CREATE TABLE kv (key BYTEA PRIMARY KEY, value BYTEA NOT NULL);
    CREATE TABLE lease (id INT PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL,
                        holder TEXT NOT NULL, acquired_at TIMESTAMPTZ NOT NULL);
    INSERT INTO lease (id, epoch, holder, acquired_at) VALUES (1, 0, '', now());
";

/// Serializes schema creation between concurrent openers (a transaction
/// lock, released at commit).
const SCHEMA_LOCK_KEY: i64 = lease::LOCK_KEY + 1;

/// A postgres error in full: the server's message (the crate's `Display`
/// says only "db error" for those), or the client's.
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.to_string(),
        None => e.to_string(),
    }
}

/// Whether the error means the session is gone (closed, terminated by an
/// operator or a takeover, or a connection exception) rather than one
/// statement failing.
fn connection_lost(e: &postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            e.is_closed() || code.starts_with("08") || code.starts_with("57")
        }
        None => true,
    }
}

fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgres database {} on {}:{}",
        config.get_dbname().unwrap_or("(default)"),
        hosts.join(","),
        ports.join(",")
    )
}

impl PostgresPersister {
    /// Connects with `conninfo` (e.g. `host=127.0.0.1 port=5432
    /// user=chanstore dbname=node`), creates or checks the schema, and
    /// takes the lease (see [`Takeover`]).
    pub fn open(conninfo: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config: postgres::Config = conninfo
            .parse()
            .map_err(|e| StoreError::Persist(format!("invalid postgres connection string: {e}")))?;
        let what = describe(&config);
        let err = |e: postgres::Error| StoreError::Persist(format!("{what}: {}", message(&e)));
        // A COMMIT whose wait for the synchronous standby is cancelled
        // (`pg_cancel_backend`, a query cancel) reports success with only a
        // WARNING: "the transaction has already committed locally, but might
        // not have been replicated to the standby". Warnings are collected
        // so that `commit` can refuse such a commit.
        let warnings: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
        let collected = warnings.clone();
        config.notice_callback(move |notice| {
            if notice.parsed_severity() == Some(postgres::error::Severity::Warning) {
                collected.lock().push(notice.to_string());
            }
            log::info!("{}: {}", notice.severity(), notice.message());
        });
        let mut client = config.connect(NoTls).map_err(err)?;
        // Durable means on the synchronous standby too: a role's or a
        // database's weaker default (`off`, `local`, `remote_write`) must
        // not reach this session.
        let level: String = client
            .query_one("SHOW synchronous_commit", &[])
            .and_then(|r| r.try_get(0))
            .map_err(err)?;
        if matches!(level.as_str(), "off" | "local" | "remote_write") {
            client
                .batch_execute("SET synchronous_commit = on")
                .map_err(err)?;
        }
        Self::prepare_schema(&mut client, &what)?;
        let epoch = lease::acquire(&mut client, options.takeover, &options.holder, &what)?;
        let conn = Conn {
            check_epoch: client
                .prepare("SELECT epoch FROM lease WHERE id = 1 FOR UPDATE")
                .map_err(err)?,
            delete: client
                .prepare("DELETE FROM kv WHERE key = ANY($1::bytea[])")
                .map_err(err)?,
            upsert: client
                .prepare(
                    "INSERT INTO kv (key, value) \
                     SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                )
                .map_err(err)?,
            client,
            warnings,
        };
        Ok(PostgresPersister {
            what,
            epoch,
            conn: Mutex::new(conn),
            group: GroupCommit::default(),
        })
    }

    /// Creates the tables of a new database, or checks an existing one's
    /// schema version.
    fn prepare_schema(client: &mut Client, what: &str) -> Result<(), StoreError> {
        let err = |e: postgres::Error| StoreError::Persist(format!("{what}: {}", message(&e)));
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK_KEY])
            .map_err(err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        )
        .map_err(err)?;
        let found = tx
            .query_opt("SELECT value FROM meta WHERE name = 'schema_version'", &[])
            .map_err(err)?;
        match found {
            None => {
                tx.batch_execute(SCHEMA).map_err(err)?;
                tx.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', $1)",
                    &[&SCHEMA_VERSION],
                )
                .map_err(err)?;
            }
            Some(row) => {
                let version: i64 = row.try_get(0).map_err(err)?;
                sql::check_schema_version(version, what)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The lease epoch this writer holds.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// One group: the lease check and every batch's net effect, in one
    /// transaction.
    fn commit(&self, batches: &[Rows]) -> io::Result<()> {
        let mut guard = self.conn.lock();
        let conn = &mut *guard;
        let net = sql::net_effect(batches);
        let deletes: Vec<&[u8]> = net
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        let (keys, values): (Vec<&[u8]>, Vec<&[u8]>) =
            net.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).unzip();
        let io_err = |e: postgres::Error| {
            let kind = if connection_lost(&e) {
                io::ErrorKind::ConnectionAborted
            } else {
                io::ErrorKind::Other
            };
            io::Error::new(kind, format!("{}: {}", self.what, message(&e)))
        };
        let mut tx = conn.client.transaction().map_err(io_err)?;
        let epoch: i64 = tx
            .query_one(&conn.check_epoch, &[])
            .and_then(|r| r.try_get(0))
            .map_err(io_err)?;
        if epoch != self.epoch {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: lease lost (epoch is now {epoch}, this writer holds {}): \
                     another store took over",
                    self.what, self.epoch
                ),
            ));
        }
        if !deletes.is_empty() {
            tx.execute(&conn.delete, &[&deletes]).map_err(io_err)?;
        }
        if !keys.is_empty() {
            tx.execute(&conn.upsert, &[&keys, &values])
                .map_err(io_err)?;
        }
        conn.warnings.lock().clear();
        tx.commit().map_err(io_err)?;
        let warnings = std::mem::take(&mut *conn.warnings.lock());
        if !warnings.is_empty() {
            // Committed here, perhaps not on the standby: not durable as
            // promised, and memory may not rely on it. Fail (and stop).
            return Err(io::Error::other(format!(
                "{}: the commit returned with a warning, so it may not be on the \
                 synchronous standby: {}",
                self.what,
                warnings.join("; ")
            )));
        }
        Ok(())
    }
}

impl Drop for PostgresPersister {
    /// Releases the lease at once, so the next writer need not wait for the
    /// server to notice the closed connection. Errors are ignored: a lost
    /// connection has released it already.
    fn drop(&mut self) {
        let conn = self.conn.get_mut();
        if !conn.client.is_closed() {
            let _ = conn
                .client
                .execute("SELECT pg_advisory_unlock($1)", &[&lease::LOCK_KEY]);
        }
    }
}

impl Persister for PostgresPersister {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> io::Result<()> {
        let ticket = self.group.submit(sql::rows(batch))?;
        self.group.wait(ticket, |batches| self.commit(batches))
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        let err =
            |e: postgres::Error| StoreError::Persist(format!("{}: {}", self.what, message(&e)));
        let mut conn = self.conn.lock();
        let rows = conn
            .client
            .query("SELECT key, value FROM kv", &[])
            .map_err(err)?;
        let mut map = BTreeMap::new();
        for row in rows {
            let key: Vec<u8> = row.try_get(0).map_err(err)?;
            let value: Vec<u8> = row.try_get(1).map_err(err)?;
            map.insert(sql::decode_key(&key, &self.what)?, value);
        }
        Ok(map)
    }
}
