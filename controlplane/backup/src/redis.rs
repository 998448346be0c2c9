//! Redis: an RDB taken over the replication protocol, restored by playing master.
//!
//! Backup: as the admin user, `SYNC`; the server answers with `$<length>` and the RDB
//! it just made (newline keepalives before that while it forks and saves), which is
//! streamed into the artifact; then the connection is closed before any replicated
//! command is read. The same on every platform: nothing but the Redis port is used.
//!
//! Restore, without shelling into anything: controlplane listens on a loopback port
//! and tells the target `REPLICAOF` itself; the target connects, asks `PSYNC`, and is
//! answered `+FULLRESYNC` with the backed-up RDB. Redis keeps serving its old data until
//! the whole RDB has arrived (disk-based loading, the default), then swaps it in whole
//! with every key's TTL; `REPLICAOF NO ONE` makes it a master again. ACL users live in
//! the ACL file, not in the RDB, so they are untouched. The target must reach
//! controlplane's address: true for the process driver (loopback); elsewhere run the
//! restore where the target can connect back (inside the cluster, as the backup Job).

use std::time::Duration;

use cp_core::names::CoreKind;
use cp_core::serverconf::REDIS_ADMIN_USER;
use cp_runtime::access::RedisAccess;
use cp_runtime::resp::Connection;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ServiceError;
use crate::manifest::{Detail, ServiceRecord};
use crate::set::{Part, SetReader, SetWriter, find};

const S: CoreKind = CoreKind::Redis;

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf
}

async fn admin(r: &RedisAccess) -> Result<Connection, ServiceError> {
    let mut c = Connection::connect_to(&r.endpoint)
        .await
        .map_err(ServiceError::redis(format!(
            "connecting to {}",
            r.endpoint.addr()
        )))?;
    c.command(&["AUTH", REDIS_ADMIN_USER, r.admin_password.expose()])
        .await
        .map_err(ServiceError::redis("authenticating as admin"))?;
    Ok(c)
}

async fn info(c: &mut Connection, section: &str) -> Result<String, ServiceError> {
    c.command(&["INFO", section])
        .await
        .map_err(ServiceError::redis(format!("INFO {section}")))?
        .text()
        .ok_or_else(|| ServiceError::RedisState(format!("INFO {section} answered no text")))
}

fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

/// Keys in every database (`db0:keys=3,expires=1,...`).
fn keyspace_keys(info: &str) -> u64 {
    info.lines()
        .filter(|l| l.starts_with("db"))
        .filter_map(|l| {
            l.split_once("keys=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The number of keys the server holds.
pub async fn key_count(r: &RedisAccess) -> Result<u64, ServiceError> {
    let mut c = admin(r).await?;
    Ok(keyspace_keys(&info(&mut c, "keyspace").await?))
}

/// Takes an RDB over `SYNC`.
pub async fn backup(w: &SetWriter, r: &RedisAccess) -> Result<Part, ServiceError> {
    let mut c = admin(r).await?;
    let version = field(&info(&mut c, "server").await?, "redis_version").map(str::to_owned);
    let keys = keyspace_keys(&info(&mut c, "keyspace").await?);
    drop(c);
    // TLS, verified against the environment's CA, when the endpoint has it.
    let stream = cp_runtime::resp::stream(&r.endpoint)
        .await
        .map_err(ServiceError::redis("connecting for SYNC"))?;
    let mut s = BufReader::new(stream);
    s.get_mut()
        .write_all(&cmd(&["AUTH", REDIS_ADMIN_USER, r.admin_password.expose()]))
        .await
        .map_err(|e| ServiceError::redis("AUTH")(e.into()))?;
    let mut line = String::new();
    s.read_line(&mut line)
        .await
        .map_err(|e| ServiceError::redis("AUTH")(e.into()))?;
    if !line.starts_with("+OK") {
        return Err(ServiceError::RedisState(format!(
            "AUTH answered {}",
            line.trim()
        )));
    }
    s.get_mut()
        .write_all(&cmd(&["SYNC"]))
        .await
        .map_err(|e| ServiceError::redis("SYNC")(e.into()))?;
    // Keepalive newlines while the server saves, then `$<len>\r\n`.
    let len = loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(600), s.read_line(&mut line))
            .await
            .map_err(|_| ServiceError::RedisState("SYNC: no RDB within 10 minutes".into()))?
            .map_err(|e| ServiceError::redis("SYNC")(e.into()))?;
        if n == 0 {
            return Err(ServiceError::RedisState(
                "SYNC: the server closed the connection".into(),
            ));
        }
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(l) = t.strip_prefix('$')
            && let Ok(n) = l.parse::<u64>()
        {
            break n;
        }
        return Err(ServiceError::RedisState(format!(
            "SYNC answered `{t}` (the admin user needs the SYNC command)"
        )));
    };
    let mut a = w.artifact(S, "dump.rdb");
    a.copy_from((&mut s).take(len)).await?;
    drop(s);
    let a = a.finish().await?;
    if a.size != len {
        return Err(ServiceError::RedisState(format!(
            "SYNC announced {len} bytes of RDB but sent {}",
            a.size
        )));
    }
    Ok(Part {
        server_version: version,
        artifacts: vec![a],
        detail: Detail::Redis { keys },
    })
}

/// Reads one RESP command (an array of bulk strings) from a replica.
async fn read_command(s: &mut BufReader<TcpStream>) -> std::io::Result<Vec<String>> {
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let t = line.trim();
    let Some(n) = t.strip_prefix('*').and_then(|n| n.parse::<usize>().ok()) else {
        // An inline command (`PING`).
        return Ok(t.split_whitespace().map(str::to_owned).collect());
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        s.read_line(&mut line).await?;
        let len: usize = line
            .trim()
            .strip_prefix('$')
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not RESP"))?;
        let mut b = vec![0u8; len + 2];
        s.read_exact(&mut b).await?;
        b.truncate(len);
        out.push(String::from_utf8_lossy(&b).into_owned());
    }
    Ok(out)
}

/// Plays master for one replica: answers its handshake, then sends the RDB.
async fn serve_rdb(
    listener: TcpListener,
    r: &SetReader,
    a: &crate::manifest::Artifact,
) -> Result<TcpStream, ServiceError> {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .map_err(|_| {
            ServiceError::RedisState("the target did not connect back within 30 s".into())
        })?
        .map_err(|e| ServiceError::redis("accepting the target's connection")(e.into()))?;
    let mut s = BufReader::new(stream);
    loop {
        let c = read_command(&mut s)
            .await
            .map_err(|e| ServiceError::redis("reading the target's handshake")(e.into()))?;
        let name = c
            .first()
            .map(|x| x.to_ascii_uppercase())
            .unwrap_or_default();
        let w = s.get_mut();
        let io = |e: std::io::Error| ServiceError::redis("answering the target")(e.into());
        match name.as_str() {
            "PING" => w.write_all(b"+PONG\r\n").await.map_err(io)?,
            "PSYNC" | "SYNC" => {
                let replid = hex::encode(rand::random::<[u8; 20]>());
                w.write_all(format!("+FULLRESYNC {replid} 0\r\n${}\r\n", a.size).as_bytes())
                    .await
                    .map_err(io)?;
                let mut src = r.open(a).await?;
                let sent = tokio::io::copy(&mut src, w).await.map_err(|source| {
                    crate::pipeline::PipelineError::Io {
                        artifact: a.name.clone(),
                        what: "sending it to the target",
                        source,
                    }
                })?;
                if sent != a.size {
                    return Err(ServiceError::RedisState(format!(
                        "sent {sent} of {} RDB bytes",
                        a.size
                    )));
                }
                w.flush().await.map_err(io)?;
                return Ok(s.into_inner());
            }
            _ => w.write_all(b"+OK\r\n").await.map_err(io)?,
        }
    }
}

/// Replaces the target's data with the RDB of `rec` and checks the key count.
pub async fn restore(
    r: &SetReader,
    rec: &ServiceRecord,
    target: &RedisAccess,
) -> Result<u64, ServiceError> {
    let Detail::Redis { keys } = &rec.detail else {
        return Err(ServiceError::NotInSet {
            service: S,
            detail: "no key count in the manifest".into(),
        });
    };
    let a = find(&rec.artifacts, S, "dump.rdb").ok_or_else(|| ServiceError::NotInSet {
        service: S,
        detail: "no dump.rdb artifact".into(),
    })?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ServiceError::redis("listening for the target")(e.into()))?;
    let port = listener
        .local_addr()
        .map_err(|e| ServiceError::redis("listening for the target")(e.into()))?
        .port();
    let mut c = admin(target).await?;
    let served = tokio::spawn({
        let r = r.clone();
        let a = a.clone();
        async move { serve_rdb(listener, &r, &a).await }
    });
    let started = c
        .command(&["REPLICAOF", "127.0.0.1", &port.to_string()])
        .await
        .map_err(ServiceError::redis("REPLICAOF"));
    let outcome = async {
        started?;
        let conn = served
            .await
            .map_err(|e| ServiceError::RedisState(format!("the RDB sender failed: {e}")))??;
        // Loaded when the link is up and no sync is in progress.
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            let i = info(&mut c, "replication").await?;
            if field(&i, "master_link_status") == Some("up")
                && field(&i, "master_sync_in_progress") == Some("0")
            {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(ServiceError::RedisState(
                    "the target did not load the RDB within 10 minutes".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(conn);
        Ok(())
    }
    .await;
    // Whatever happened, the target is a master again.
    let back = c.command(&["REPLICAOF", "NO", "ONE"]).await;
    outcome?;
    back.map_err(ServiceError::redis("REPLICAOF NO ONE"))?;
    let found = keyspace_keys(&info(&mut c, "keyspace").await?);
    if found != *keys {
        return Err(ServiceError::RedisState(format!(
            "{found} keys after restore, the manifest says {keys}"
        )));
    }
    Ok(found)
}

/// What the target holds now, for the confirmation.
pub async fn holdings(target: &RedisAccess) -> Result<Vec<String>, ServiceError> {
    let n = key_count(target).await?;
    Ok(if n > 0 {
        vec![format!("{n} Redis keys")]
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_summed_over_databases() {
        let info =
            "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb2:keys=4,expires=0,avg_ttl=0\r\n";
        assert_eq!(keyspace_keys(info), 7);
        assert_eq!(
            field("a:1\r\nmaster_link_status:up\r\n", "master_link_status"),
            Some("up")
        );
    }
}
