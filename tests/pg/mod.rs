//! PostgreSQL clusters for tests (and the durable bench): each test starts
//! its own on a free loopback port, in a temporary directory, and stops it
//! when the [`Cluster`] is dropped (also when the test fails: `Drop` runs
//! `pg_ctl stop -m immediate` during unwinding).
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then every
//! server tool runs as the `postgres` system user that Debian's
//! `postgresql` package creates (`runuser -u postgres --`), in directories
//! owned by it. Binaries are looked for in `CHANSTORE_PG_BIN`, then
//! `/usr/lib/postgresql/<highest version>/bin`, then `pg_config --bindir`.
//! Where there are none, [`available`] says the test was skipped, unless
//! `CHANSTORE_REQUIRE_POSTGRES=1`, which makes that a failure.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the server binaries are, if anywhere.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("CHANSTORE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let bin = entry.path().join("bin");
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok();
            if let (Some(v), true) = (version, bin.join("initdb").exists()) {
                if best.as_ref().is_none_or(|(b, _)| v > *b) {
                    best = Some((v, bin));
                }
            }
        }
    }
    if let Some((_, bin)) = best {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    bin.join("initdb").exists().then_some(bin)
}

/// Whether this process runs as root (then the server runs as `postgres`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The server binaries, or `None` after saying (past the test harness's
/// output capture) that `test` was skipped. Panics instead when
/// `CHANSTORE_REQUIRE_POSTGRES=1`.
pub fn available(test: &str) -> Option<PathBuf> {
    let missing = match bin_dir() {
        Some(bin) if !is_root() => return Some(bin),
        Some(bin) => match Command::new("id").arg("postgres").output() {
            Ok(o) if o.status.success() => return Some(bin),
            _ => "running as root and there is no postgres system user".to_string(),
        },
        None => "postgresql server binaries not found".to_string(),
    };
    if std::env::var("CHANSTORE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!(
            "{test}: {missing}, and CHANSTORE_REQUIRE_POSTGRES=1 (apt-get install -y postgresql)"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: {missing} (apt-get install -y postgresql, or run scripts/test)"
    );
    None
}

/// A server tool, run as `postgres` when we are root.
fn tool(bin: &Path, name: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(name));
        c
    } else {
        Command::new(bin.join(name))
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One running PostgreSQL server.
pub struct Cluster {
    pub port: u16,
    root: PathBuf,
    data: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    /// A fresh primary with `settings` (`postgresql.conf` lines), or `None`
    /// where PostgreSQL is not available (see [`available`]).
    pub fn start(test: &str, settings: &[&str]) -> Option<Cluster> {
        let bin = available(test)?;
        let cluster = Cluster::dirs(bin, test);
        run(
            tool(&cluster.bin, "initdb")
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "-N", "-D"])
                .arg(&cluster.data),
            "initdb",
        );
        cluster.launch(settings);
        Some(cluster)
    }

    /// Directories for a new cluster, owned by `postgres` when we are root.
    fn dirs(bin: PathBuf, name: &str) -> Cluster {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // As root, under /tmp: the postgres user must be able to reach it
        // (a TMPDIR of root's own may not be).
        let base = if is_root() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!(
            "chanstore-pg-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sock")).expect("cluster directory");
        if is_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&root),
                "chown",
            );
        }
        Cluster {
            port: free_port(),
            data: root.join("data"),
            root,
            bin,
        }
    }

    /// Appends this server's own settings and starts it.
    fn launch(&self, settings: &[&str]) {
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .expect("postgresql.conf");
        let sock = self.root.join("sock");
        let mut lines = vec![
            format!("port = {}", self.port),
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", sock.display()),
            "max_connections = 50".to_string(),
        ];
        lines.extend(settings.iter().map(|s| s.to_string()));
        writeln!(conf, "\n{}", lines.join("\n")).expect("write postgresql.conf");
        run(
            tool(&self.bin, "pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(&self.data)
                .arg("-l")
                .arg(self.root.join("server.log"))
                .arg("start"),
            "pg_ctl start",
        );
    }

    /// `host=127.0.0.1 port=… user=postgres dbname=db`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// `host=127.0.0.1 port=… user=postgres`, for a `dbname=` to be added.
    pub fn base_conninfo(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres", self.port)
    }

    /// A client on the `postgres` database, for setting up and checking.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.conninfo("postgres"), postgres::NoTls)
            .expect("admin connection")
    }

    /// Creates an empty database.
    pub fn create_db(&self, db: &str) {
        self.admin()
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .expect("create database");
    }

    /// A streaming standby of this server, made with `pg_basebackup -R`.
    /// It has no standby of its own, so once promoted it commits alone.
    pub fn standby(&self, name: &str) -> Cluster {
        let standby = Cluster::dirs(self.bin.clone(), name);
        run(
            tool(&self.bin, "pg_basebackup")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-R",
                ])
                .args(["-p", &self.port.to_string(), "-D"])
                .arg(&standby.data),
            "pg_basebackup",
        );
        standby.launch(&["synchronous_standby_names = ''"]);
        standby
    }

    /// Makes every commit wait for a standby (`synchronous_standby_names =
    /// '*'`, set once the standby exists: before, commits would hang), and
    /// waits until one streams from this server as a synchronous standby.
    pub fn wait_for_sync_standby(&self) {
        let mut admin = self.admin();
        admin
            .batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            .expect("synchronous_standby_names");
        admin
            .batch_execute("SELECT pg_reload_conf()")
            .expect("reload");
        let started = Instant::now();
        loop {
            let sync = admin
                .query(
                    "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
                    &[],
                )
                .expect("pg_stat_replication");
            if !sync.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no synchronous standby"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Promotes this standby to a primary, and waits until it is one.
    pub fn promote(&self) {
        run(
            tool(&self.bin, "pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(&self.data)
                .arg("promote"),
            "pg_ctl promote",
        );
    }

    /// The postmaster's process id (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> u32 {
        let text =
            std::fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid");
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid")
    }

    /// SIGKILLs the postmaster (its backends notice and exit by themselves).
    pub fn kill_postmaster(&self) {
        run(
            Command::new("kill").args(["-KILL", &self.postmaster_pid().to_string()]),
            "kill postmaster",
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = tool(&self.bin, "pg_ctl")
            .args(["-w", "-t", "20", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
