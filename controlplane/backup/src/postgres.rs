//! PostgreSQL: a dump that streams and still restores in parallel.
//!
//! `pg_dump -Fc` to a pipe cannot be restored in parallel (`pg_restore -j` needs a
//! seekable file), and `-Fd` needs a local directory. So the dump is taken in parts
//! that share one snapshot:
//! - as the backup role (BYPASSRLS: a dump never silently misses rows), a REPEATABLE
//!   READ transaction exports its snapshot and stays open until the end;
//! - `pg_dump --snapshot --section=pre-data` and `post-data` stream the schema;
//! - each table is `COPY ... TO STDOUT` in its own transaction that
//!   `SET TRANSACTION SNAPSHOT`s the same snapshot, one artifact per table, two at a
//!   time. Its exact row count is the number of lines COPY sent (text format escapes
//!   newlines inside values), so the counts in the manifest are the dump's own;
//! - sequence values and the database's privileges are read in the same snapshot.
//!
//! Restore builds a new database beside the live one: pre-data, then the tables in
//! parallel (`COPY FROM STDIN`, each count checked against the manifest), sequences,
//! post-data (indexes, constraints, policies), the database's privileges; only then
//! are the names swapped, so the live database never serves half-restored data.

use std::process::Stdio;

use cp_core::names::CoreKind;
use cp_runtime::access::PgAccess;
use futures::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection, Row};
use tokio::io::AsyncReadExt;

use crate::error::ServiceError;
use crate::manifest::{Artifact, Detail, ServiceRecord, TableRows};
use crate::set::{Part, SetReader, SetWriter, find};

const S: CoreKind = CoreKind::Postgres;

/// How many tables are copied at once, both ways.
pub const JOBS: usize = 2;

fn opts(pg: &PgAccess, user: &str, password: &str, database: &str) -> PgConnectOptions {
    pg.endpoint
        .pg_options()
        .username(user)
        .password(password)
        .database(database)
        .application_name("controlplane-backup")
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The server's major version and full version text.
async fn server_version(c: &mut PgConnection) -> Result<(u32, String), ServiceError> {
    let row = sqlx::query(
        "SELECT current_setting('server_version_num')::int4, current_setting('server_version')",
    )
    .fetch_one(&mut *c)
    .await
    .map_err(ServiceError::sql("reading the server version"))?;
    let num: i32 = row.get(0);
    Ok((u32::try_from(num / 10_000).unwrap_or(0), row.get(1)))
}

/// Finds `program` and checks it is at least the server's major version.
async fn tool(program: &str, server_major: u32) -> Result<std::path::PathBuf, ServiceError> {
    let path = cp_runtime::exec::find_postgres_binary(program, &server_major.to_string())?;
    let out = cp_runtime::exec::tokio_command(&path)
        .arg("--version")
        .output()
        .await
        .map_err(|source| ServiceError::Spawn {
            program: program.into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`
    let major = text
        .split_whitespace()
        .find_map(|w| w.split('.').next().and_then(|m| m.parse::<u32>().ok()))
        .unwrap_or(0);
    if major < server_major {
        return Err(ServiceError::ToolTooOld {
            program: program.into(),
            tool: major,
            server: server_major,
        });
    }
    Ok(path)
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    let start = s.len().saturating_sub(600);
    let start = (start..=s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_owned()
}

/// Runs pg_dump for one section into an artifact.
async fn dump_section(
    w: &SetWriter,
    pg: &PgAccess,
    role: &str,
    database: &str,
    pg_dump: &std::path::Path,
    snapshot: &str,
    section: &str,
) -> Result<Artifact, ServiceError> {
    let mut child = cp_runtime::exec::tokio_command(pg_dump)
        .args([
            "--no-password",
            "--format=plain",
            &format!("--section={section}"),
            &format!("--snapshot={snapshot}"),
            "--host",
            &pg.endpoint.host,
            "--port",
            &pg.endpoint.port.to_string(),
            "--username",
            role,
            "--dbname",
            database,
        ])
        .env("PGPASSWORD", pg.backup_password.expose())
        .envs(pg.endpoint.libpq_tls_env())
        .env("PGAPPNAME", "controlplane-backup")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ServiceError::Spawn {
            program: "pg_dump".into(),
            source,
        })?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b).await;
        b
    });
    let mut a = w.artifact(S, section);
    let copied = a.copy_from(stdout).await;
    let status = child.wait().await.map_err(|source| ServiceError::Spawn {
        program: "pg_dump".into(),
        source,
    })?;
    let err = err_task.await.unwrap_or_default();
    if !status.success() {
        return Err(ServiceError::Tool {
            program: "pg_dump".into(),
            doing: format!("--section={section}"),
            status: status.to_string(),
            stderr: tail(&err),
        });
    }
    copied?;
    Ok(a.finish().await?)
}

/// One table's COPY in the shared snapshot, into an artifact; its row count.
async fn dump_table(
    w: &SetWriter,
    o: PgConnectOptions,
    snapshot: &str,
    index: usize,
    schema: &str,
    table: &str,
) -> Result<(Artifact, u64), ServiceError> {
    let doing = format!("copying {schema}.{table}");
    let mut c = PgConnection::connect_with(&o)
        .await
        .map_err(ServiceError::sql(doing.clone()))?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut c)
        .await
        .map_err(ServiceError::sql(doing.clone()))?;
    sqlx::raw_sql(AssertSqlSafe(
        format!("SET TRANSACTION SNAPSHOT {}", literal(snapshot)).to_owned(),
    ))
    .execute(&mut c)
    .await
    .map_err(ServiceError::sql(doing.clone()))?;
    let mut a = w.artifact(S, &format!("tables/{index:04}.copy"));
    let mut rows = 0u64;
    {
        let mut s = c
            .copy_out_raw(&format!(
                "COPY {}.{} TO STDOUT",
                ident(schema),
                ident(table)
            ))
            .await
            .map_err(ServiceError::sql(doing.clone()))?;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(ServiceError::sql(doing.clone()))?;
            rows += bytecount(&chunk);
            a.write(chunk).await?;
        }
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut c)
        .await
        .map_err(ServiceError::sql(doing))?;
    let _ = c.close().await;
    Ok((a.finish().await?, rows))
}

fn bytecount(b: &[u8]) -> u64 {
    b.iter().filter(|&&x| x == b'\n').count() as u64
}

/// Backs up the platform database as `role` (the backup role).
pub async fn backup(w: &SetWriter, pg: &PgAccess, role: &str) -> Result<Part, ServiceError> {
    let db = pg.database.clone();
    let o = opts(pg, role, pg.backup_password.expose(), &db);
    let mut snap_conn = PgConnection::connect_with(&o)
        .await
        .map_err(ServiceError::sql(format!("connecting as {role}")))?;
    let (major, version) = server_version(&mut snap_conn).await?;
    let pg_dump = tool("pg_dump", major).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut snap_conn)
        .await
        .map_err(ServiceError::sql("starting the snapshot transaction"))?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut snap_conn)
        .await
        .map_err(ServiceError::sql("exporting the snapshot"))?;
    // Biggest first, so two workers finish together.
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         ORDER BY pg_total_relation_size(c.oid) DESC, 1, 2",
    )
    .fetch_all(&mut snap_conn)
    .await
    .map_err(ServiceError::sql("listing tables"))?;
    let sequences: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut snap_conn)
    .await
    .map_err(ServiceError::sql("listing sequences"))?;
    let mut seq_sql = String::new();
    for (s, n) in &sequences {
        let (last, called): (i64, bool) = sqlx::query_as(AssertSqlSafe(
            format!(
                "SELECT last_value, is_called FROM {}.{}",
                ident(s),
                ident(n)
            )
            .to_owned(),
        ))
        .fetch_one(&mut snap_conn)
        .await
        .map_err(ServiceError::sql(format!("reading sequence {s}.{n}")))?;
        seq_sql.push_str(&format!(
            "SELECT pg_catalog.setval({}, {last}, {called});\n",
            literal(&format!("{}.{}", ident(s), ident(n)))
        ));
    }
    let acl: Option<Vec<String>> = sqlx::query_scalar(
        "SELECT datacl::text[] FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(&mut snap_conn)
    .await
    .map_err(ServiceError::sql("reading the database's privileges"))?;
    let mut globals = String::new();
    for item in acl.unwrap_or_default() {
        globals.push_str(&item);
        globals.push('\n');
    }

    let pre = dump_section(w, pg, role, &db, &pg_dump, &snapshot, "pre-data");
    let post = dump_section(w, pg, role, &db, &pg_dump, &snapshot, "post-data");
    // The futures are made first, then streamed: a lazy `map` over borrowed items
    // inside the stream makes the whole backup future not `Send` (the compiler cannot
    // prove the closure general over the borrow's lifetime), and jobs are spawned.
    let copies: Vec<_> = tables
        .iter()
        .enumerate()
        .map(|(i, (s, t))| {
            let o = o.clone();
            let snapshot = snapshot.clone();
            async move { dump_table(w, o, &snapshot, i, s, t).await }
        })
        .collect();
    let copies = futures::stream::iter(copies)
        .buffered(JOBS)
        .collect::<Vec<_>>();
    let (pre, post, copies) = tokio::join!(pre, post, copies);
    let mut artifacts = vec![pre?];
    let mut counts = Vec::new();
    for ((schema, table), r) in tables.iter().zip(copies) {
        let (a, rows) = r?;
        counts.push(TableRows {
            schema: schema.clone(),
            table: table.clone(),
            rows,
            artifact: a.name.clone(),
        });
        artifacts.push(a);
    }
    let mut seq = w.artifact(S, "sequences.sql");
    seq.write(seq_sql.into_bytes().into()).await?;
    artifacts.push(seq.finish().await?);
    let mut acl = w.artifact(S, "database-acl.txt");
    acl.write(globals.into_bytes().into()).await?;
    artifacts.push(acl.finish().await?);
    artifacts.push(post?);
    sqlx::raw_sql("COMMIT")
        .execute(&mut snap_conn)
        .await
        .map_err(ServiceError::sql("ending the snapshot transaction"))?;
    let _ = snap_conn.close().await;
    Ok(Part {
        server_version: Some(version),
        artifacts,
        detail: Detail::Postgres {
            database: db,
            tables: counts,
        },
    })
}

/// What the live database holds, for the confirmation: tables that have rows
/// (migrations' own bookkeeping not counted). Empty: nothing would be lost.
pub async fn holdings(pg: &PgAccess) -> Result<Vec<String>, ServiceError> {
    let o = opts(
        pg,
        cp_core::roles::SUPERUSER,
        pg.superuser_password.expose(),
        &pg.database,
    );
    let mut c = match PgConnection::connect_with(&o).await {
        Ok(c) => c,
        // No database yet: nothing to replace.
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("3D000") => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(ServiceError::sql("connecting as the superuser")(e)),
    };
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND c.relname <> '_sqlx_migrations' ORDER BY 1, 2",
    )
    .fetch_all(&mut c)
    .await
    .map_err(ServiceError::sql("listing tables"))?;
    let mut out = Vec::new();
    for (s, t) in tables {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(
            format!("SELECT count(*) FROM {}.{}", ident(&s), ident(&t)).to_owned(),
        ))
        .fetch_one(&mut c)
        .await
        .map_err(ServiceError::sql(format!("counting {s}.{t}")))?;
        if n > 0 {
            out.push(format!("{s}.{t} ({n} rows)"));
        }
    }
    Ok(out)
}

/// A privilege list entry (`anumate_app=c/anumate_admin`) as GRANT statements.
fn grants(database: &str, item: &str) -> Vec<String> {
    let Some((grantee, rest)) = item.split_once('=') else {
        return Vec::new();
    };
    let privs = rest.split('/').next().unwrap_or("");
    let who = if grantee.is_empty() {
        "PUBLIC".to_owned()
    } else {
        ident(grantee.trim_matches('"'))
    };
    privs
        .chars()
        .filter_map(|c| match c {
            'C' => Some("CREATE"),
            'T' => Some("TEMPORARY"),
            'c' => Some("CONNECT"),
            _ => None,
        })
        .map(|p| format!("GRANT {p} ON DATABASE {} TO {who}", ident(database)))
        .collect()
}

/// Feeds an artifact to `psql` on `database` as the superuser.
async fn psql(
    r: &SetReader,
    a: &Artifact,
    pg: &PgAccess,
    psql: &std::path::Path,
    database: &str,
) -> Result<(), ServiceError> {
    let mut child = cp_runtime::exec::tokio_command(psql)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--no-password",
            "-h",
            &pg.endpoint.host,
            "-p",
            &pg.endpoint.port.to_string(),
            "-U",
            cp_core::roles::SUPERUSER,
            "-d",
            database,
            "-f",
            "-",
        ])
        .env("PGPASSWORD", pg.superuser_password.expose())
        .envs(pg.endpoint.libpq_tls_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ServiceError::Spawn {
            program: "psql".into(),
            source,
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b).await;
        b
    });
    let mut src = r.open(a).await?;
    let fed = tokio::io::copy(&mut src, &mut stdin).await;
    drop(stdin);
    let status = child.wait().await.map_err(|source| ServiceError::Spawn {
        program: "psql".into(),
        source,
    })?;
    let err = err_task.await.unwrap_or_default();
    if let Err(source) = fed {
        return Err(crate::pipeline::PipelineError::Io {
            artifact: a.name.clone(),
            what: "feeding psql",
            source,
        }
        .into());
    }
    if !status.success() {
        return Err(ServiceError::Tool {
            program: "psql".into(),
            doing: format!("applying {}", a.name),
            status: status.to_string(),
            stderr: tail(&err),
        });
    }
    Ok(())
}

async fn copy_in(
    r: &SetReader,
    o: PgConnectOptions,
    t: &TableRows,
    a: &Artifact,
) -> Result<(), ServiceError> {
    let name = format!("{}.{}", t.schema, t.table);
    let mut c = PgConnection::connect_with(&o)
        .await
        .map_err(ServiceError::sql(format!("restoring {name}")))?;
    let src = r.open(a).await?;
    let mut copy = c
        .copy_in_raw(&format!(
            "COPY {}.{} FROM STDIN",
            ident(&t.schema),
            ident(&t.table)
        ))
        .await
        .map_err(ServiceError::sql(format!("restoring {name}")))?;
    match copy.read_from(src).await {
        Ok(_) => {}
        Err(e) => {
            let _ = copy.abort("the artifact could not be read").await;
            return Err(ServiceError::sql(format!("restoring {name}"))(e));
        }
    }
    let rows = copy
        .finish()
        .await
        .map_err(ServiceError::sql(format!("restoring {name}")))?;
    let _ = c.close().await;
    if rows != t.rows {
        return Err(ServiceError::RowCount {
            table: name,
            found: rows,
            expected: t.rows,
        });
    }
    Ok(())
}

/// A post-data section split into its entries: the preamble (`SET`s every session
/// needs), the entries that may be built side by side (indexes, primary keys and
/// unique constraints: what foreign keys and the rest depend on), and the rest, in
/// order.
///
/// psql meta-commands (`\\restrict KEY` / `\\unrestrict KEY`, which pg_dump 15.14 and
/// later wrap a script in) are psql's, not the server's: they are dropped, since these
/// statements go to the server directly.
fn split_post_data(text: &str) -> (String, Vec<String>, Vec<String>) {
    const MARK: &str = "\n--\n-- Name: ";
    let sql: String = text
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .flat_map(|l| [l, "\n"])
        .collect();
    let mut parts = sql.split(MARK);
    let preamble = parts.next().unwrap_or("").to_owned();
    let (mut parallel, mut serial) = (Vec::new(), Vec::new());
    for p in parts {
        let header = p.lines().next().unwrap_or("");
        let kind = header
            .split("; Type: ")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .unwrap_or("");
        let body = format!("--\n-- Name: {p}");
        let independent = kind == "INDEX"
            || (kind == "CONSTRAINT" && (p.contains(" PRIMARY KEY ") || p.contains(" UNIQUE ")));
        if independent {
            parallel.push(body);
        } else {
            serial.push(body);
        }
    }
    (preamble, parallel, serial)
}

/// Applies the post-data section: indexes and keys [`JOBS`] at a time (as
/// `pg_restore -j` does), then everything that depends on them, in the dump's order.
async fn post_data(r: &SetReader, a: &Artifact, o: &PgConnectOptions) -> Result<(), ServiceError> {
    let text = String::from_utf8_lossy(&r.read_small(a).await?).into_owned();
    let (preamble, parallel, serial) = split_post_data(&text);
    let queue = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
        parallel,
    )));
    let worker = |queue: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>| {
        let o = o.clone();
        let preamble = preamble.clone();
        async move {
            let mut c = PgConnection::connect_with(&o)
                .await
                .map_err(ServiceError::sql("building indexes"))?;
            sqlx::raw_sql(AssertSqlSafe(preamble))
                .execute(&mut c)
                .await
                .map_err(ServiceError::sql("building indexes"))?;
            loop {
                let next = queue.lock().expect("not poisoned").pop_front();
                let Some(stmt) = next else { break };
                let what = stmt
                    .lines()
                    .nth(1)
                    .unwrap_or("")
                    .trim_start_matches("-- ")
                    .to_owned();
                sqlx::raw_sql(AssertSqlSafe(stmt))
                    .execute(&mut c)
                    .await
                    .map_err(ServiceError::sql(format!("post-data: {what}")))?;
            }
            let _ = c.close().await;
            Ok::<(), ServiceError>(())
        }
    };
    let results = futures::future::join_all((0..JOBS).map(|_| worker(queue.clone()))).await;
    for res in results {
        res?;
    }
    let mut c = PgConnection::connect_with(o)
        .await
        .map_err(ServiceError::sql("applying post-data"))?;
    let rest = format!("{preamble}\n{}", serial.join("\n"));
    sqlx::raw_sql(AssertSqlSafe(rest))
        .execute(&mut c)
        .await
        .map_err(ServiceError::sql(
            "applying post-data (constraints, triggers, policies)",
        ))?;
    let _ = c.close().await;
    Ok(())
}

/// Where a restore puts the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Into {
    /// Over the live database (built beside it, then swapped in).
    Live,
    /// Into a scratch database that is dropped afterwards (a drill).
    Scratch,
}

/// Restores the database from `rec`. With [`Into::Scratch`] the restored database is
/// checked (every row count) and dropped; the live one is never touched.
pub async fn restore(
    r: &SetReader,
    rec: &ServiceRecord,
    pg: &PgAccess,
    into: Into,
) -> Result<String, ServiceError> {
    let Detail::Postgres { database, tables } = &rec.detail else {
        return Err(ServiceError::NotInSet {
            service: S,
            detail: "no table list in the manifest".into(),
        });
    };
    let missing = |rel: &str| ServiceError::NotInSet {
        service: S,
        detail: format!("no {rel} artifact"),
    };
    let pre = find(&rec.artifacts, S, "pre-data").ok_or_else(|| missing("pre-data"))?;
    let post = find(&rec.artifacts, S, "post-data").ok_or_else(|| missing("post-data"))?;
    let seq = find(&rec.artifacts, S, "sequences").ok_or_else(|| missing("sequences"))?;
    let acl = find(&rec.artifacts, S, "database-acl").ok_or_else(|| missing("database-acl"))?;
    let live = pg.database.clone();
    let su = |db: &str| {
        opts(
            pg,
            cp_core::roles::SUPERUSER,
            pg.superuser_password.expose(),
            db,
        )
    };
    let mut admin = PgConnection::connect_with(&su("postgres"))
        .await
        .map_err(ServiceError::sql("connecting as the superuser"))?;
    let (major, _) = server_version(&mut admin).await?;
    let psql_bin = tool("psql", major).await?;
    let suffix = r.id.as_str().rsplit('-').next().unwrap_or("x").to_owned();
    let kind = match into {
        Into::Live => "restore",
        Into::Scratch => "drill",
    };
    let fresh = format!("{live}_{kind}_{suffix}");
    sqlx::raw_sql(AssertSqlSafe(
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&fresh)).to_owned(),
    ))
    .execute(&mut admin)
    .await
    .map_err(ServiceError::sql("clearing an earlier attempt"))?;
    sqlx::raw_sql(AssertSqlSafe(
        format!(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0",
            ident(&fresh),
            ident(cp_core::roles::ADMIN)
        )
        .to_owned(),
    ))
    .execute(&mut admin)
    .await
    .map_err(ServiceError::sql(format!("creating {fresh}")))?;
    let built: Result<(), ServiceError> = async {
        let acl_text = String::from_utf8_lossy(&r.read_small(acl).await?).into_owned();
        let mut stmts = vec![format!(
            "REVOKE ALL ON DATABASE {} FROM PUBLIC",
            ident(&fresh)
        )];
        for item in acl_text.lines() {
            stmts.extend(grants(&fresh, item));
        }
        for s in stmts {
            sqlx::raw_sql(AssertSqlSafe(s.to_owned()))
                .execute(&mut admin)
                .await
                .map_err(ServiceError::sql("granting the database's privileges"))?;
        }
        psql(r, pre, pg, &psql_bin, &fresh).await?;
        let o = su(&fresh);
        // Made first, then streamed: see `backup` (the future stays `Send`).
        let copies: Vec<_> = tables
            .iter()
            .map(|t| {
                let o = o.clone();
                async move {
                    let a = rec
                        .artifacts
                        .iter()
                        .find(|a| a.name == t.artifact)
                        .ok_or_else(|| missing(t.artifact.as_str()))?;
                    copy_in(r, o, t, a).await
                }
            })
            .collect();
        let results = futures::stream::iter(copies)
            .buffer_unordered(JOBS)
            .collect::<Vec<_>>()
            .await;
        for res in results {
            res?;
        }
        psql(r, seq, pg, &psql_bin, &fresh).await?;
        post_data(r, post, &o).await?;
        Ok(())
    }
    .await;
    let drop_fresh = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&fresh));
    if let Err(e) = built {
        let _ = sqlx::raw_sql(AssertSqlSafe(drop_fresh.to_owned()))
            .execute(&mut admin)
            .await;
        return Err(e);
    }
    if into == Into::Scratch {
        sqlx::raw_sql(AssertSqlSafe(drop_fresh.to_owned()))
            .execute(&mut admin)
            .await
            .map_err(ServiceError::sql(format!("dropping {fresh}")))?;
        return Ok(format!(
            "{} tables restored into a scratch database with the recorded row counts",
            tables.len()
        ));
    }
    // The swap: nobody may connect to the old one while it is renamed.
    let old = format!("{live}_replaced_{suffix}");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&live)
            .fetch_one(&mut admin)
            .await
            .map_err(ServiceError::sql("looking for the live database"))?;
    let mut swap = Vec::new();
    if exists {
        swap.push(format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            ident(&live)
        ));
        swap.push(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
            literal(&live)
        ));
        swap.push(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(&old)
        ));
        swap.push(format!(
            "ALTER DATABASE {} RENAME TO {}",
            ident(&live),
            ident(&old)
        ));
    }
    swap.push(format!(
        "ALTER DATABASE {} RENAME TO {}",
        ident(&fresh),
        ident(&live)
    ));
    if exists {
        swap.push(format!("DROP DATABASE {} WITH (FORCE)", ident(&old)));
    }
    for s in swap {
        sqlx::raw_sql(AssertSqlSafe(s.to_owned()))
            .execute(&mut admin)
            .await
            .map_err(ServiceError::sql(format!(
                "swapping in the restored database ({s})"
            )))?;
    }
    let _ = admin.close().await;
    Ok(format!(
        "database {live} replaced by the restored copy of {database} ({} tables, row counts checked)",
        tables.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_privileges_become_grants() {
        assert_eq!(
            grants("db_x", "anumate_app=c/anumate_admin"),
            ["GRANT CONNECT ON DATABASE \"db_x\" TO \"anumate_app\""]
        );
        assert_eq!(
            grants("d", "=Tc/postgres"),
            [
                "GRANT TEMPORARY ON DATABASE \"d\" TO PUBLIC",
                "GRANT CONNECT ON DATABASE \"d\" TO PUBLIC"
            ]
        );
        assert!(grants("d", "garbage").is_empty());
    }

    #[test]
    fn post_data_splits_into_what_builds_in_parallel_and_the_rest() {
        let text = "SET x = 1;\n\n--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: s; Owner: o\n--\n\nALTER TABLE ONLY s.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n\n--\n-- Name: t_i; Type: INDEX; Schema: s; Owner: o\n--\n\nCREATE INDEX t_i ON s.t USING btree (a);\n\n--\n-- Name: u u_fk; Type: FK CONSTRAINT; Schema: s; Owner: o\n--\n\nALTER TABLE ONLY s.u\n    ADD CONSTRAINT u_fk FOREIGN KEY (t) REFERENCES s.t(id);\n\n--\n-- Name: t p; Type: POLICY; Schema: s; Owner: o\n--\n\nCREATE POLICY p ON s.t USING (true);\n";
        let (pre, par, ser) = split_post_data(&format!("\\restrict k\n{text}\\unrestrict k\n"));
        assert_eq!(pre, "SET x = 1;\n");
        assert_eq!(par.len(), 2, "{par:?}");
        assert!(par[0].contains("PRIMARY KEY") && par[1].contains("CREATE INDEX"));
        assert_eq!(ser.len(), 2, "{ser:?}");
        assert!(ser[0].contains("FOREIGN KEY") && ser[1].contains("CREATE POLICY"));
    }

    #[test]
    fn rows_are_lines_of_copy_text() {
        assert_eq!(bytecount(b"1\ta\\nb\n2\tc\n"), 2);
    }
}
