//! Point-in-time recovery of PostgreSQL on the process platform, through the
//! `controlplane` binary, against a real PostgreSQL: continuous archiving
//! (`archive_timeout` small, the test never calls `pg_switch_wal`), `backup --base`,
//! `restore --to-time` between two commits (the first kept, the second not),
//! refused without `--yes`, and after `kill -9` of PostgreSQL `restore --to-latest`
//! with every commit older than `archive_timeout` present (the RPO measured and
//! printed). Once through a local destination, once through an S3 destination on
//! `moto_server`.

mod common;
use common::{controlplane, psql_admin as psql, text};

use std::time::Duration;

const ARCHIVE_TIMEOUT_S: u64 = 2;

/// Inserts a marker, returning its commit's server time (seconds since the epoch).
fn mark(state: &std::path::Path, sets: &[String], name: &str) -> f64 {
    psql(
        state,
        sets,
        &format!(
            "INSERT INTO pitr_marks(name) VALUES ('{name}') RETURNING extract(epoch FROM clock_timestamp())"
        ),
    )
    .lines()
    .next()
    .unwrap()
    .parse()
    .unwrap()
}

fn marks(state: &std::path::Path, sets: &[String]) -> Vec<String> {
    psql(state, sets, "SELECT name FROM pitr_marks ORDER BY id")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rfc3339(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let nanos = ((epoch - epoch.floor()) * 1e9) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn run(dest_sets: &[String], tmp: &tempfile::TempDir, archive_dir: Option<&std::path::Path>) {
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.extend(cp_testkit::only(&[cp_core::names::CoreKind::Postgres]));
    sets.retain(|s| s != "backup.enabled=false");
    sets.extend([
        "platform=process".to_owned(),
        "backup.services=[postgres]".to_owned(),
        "backup.pitr.enabled=true".to_owned(),
        format!("backup.pitr.archive_timeout={ARCHIVE_TIMEOUT_S}s"),
    ]);
    sets.extend(dest_sets.iter().cloned());
    let _down = common::down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    psql(
        &state,
        &sets,
        "CREATE TABLE pitr_marks (id serial PRIMARY KEY, name text NOT NULL)",
    );

    let started = std::time::Instant::now();
    let o = controlplane(&state, &sets, &["backup", "--base"]);
    let base_secs = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "backup --base:\n{}", text(&o));
    eprintln!("base backup: {base_secs:.2}s\n{}", text(&o));

    let t1 = mark(&state, &sets, "t1");
    std::thread::sleep(Duration::from_secs(2));
    let t2 = mark(&state, &sets, "t2");
    std::thread::sleep(Duration::from_secs(2));
    let t3 = mark(&state, &sets, "t3");
    assert!(t1 < t2 && t2 < t3);
    let target = rfc3339(t2 + (t3 - t2) / 2.0);
    // t3's segment reaches the archive within archive_timeout.
    std::thread::sleep(Duration::from_secs(ARCHIVE_TIMEOUT_S * 2 + 2));

    // `backup list` shows the window (to t3's segment at least) and the lag.
    let o = controlplane(&state, &sets, &["-o", "json", "backup", "list"]);
    assert!(o.status.success(), "backup list:\n{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &list["pitr"];
    let epoch = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{p}")))
            .unwrap()
            .timestamp() as f64
    };
    assert!(epoch(&p["window"]["earliest"]) <= t1, "{p}");
    assert!(epoch(&p["window"]["latest"]) >= t3.floor(), "{p}");
    assert_eq!(p["window"]["timeline"], 1, "{p}");
    let lag = p["archive_lag_seconds"].as_i64().unwrap();
    assert!(
        lag <= (ARCHIVE_TIMEOUT_S * 3) as i64,
        "archive lag {lag}s: {p}"
    );
    eprintln!("window before the kill: {p}");
    let o = controlplane(&state, &sets, &["backup", "list"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("restorable from"),
        "{}",
        text(&o)
    );

    // Writes every 200 ms, then kill -9 of PostgreSQL: a lost server.
    let mut commits = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(ARCHIVE_TIMEOUT_S * 3);
    let mut n = 0;
    while std::time::Instant::now() < end {
        n += 1;
        commits.push((format!("w{n}"), mark(&state, &sets, &format!("w{n}"))));
        std::thread::sleep(Duration::from_millis(200));
    }
    let pidfile = state.join("postgres/data/postmaster.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let o = controlplane(&state, &sets, &["restore", "--to-latest", "--yes"]);
    assert!(o.status.success(), "restore --to-latest:\n{}", text(&o));
    eprintln!("restore --to-latest:\n{}", text(&o));
    let present = marks(&state, &sets);
    assert!(
        present.starts_with(&["t1".to_owned(), "t2".to_owned(), "t3".to_owned()]),
        "{present:?}"
    );
    let mut newest = t2;
    for (name, at) in &commits {
        let there = present.contains(name);
        if *at < killed_at - ARCHIVE_TIMEOUT_S as f64 - 0.5 {
            assert!(
                there,
                "{name}, committed {:.1}s before the kill, is lost",
                killed_at - at
            );
        }
        if there {
            newest = newest.max(*at);
        }
    }
    eprintln!(
        "RPO: {:.2}s (archive_timeout {ARCHIVE_TIMEOUT_S}s; {} of {} commits kept)",
        killed_at - newest,
        commits.iter().filter(|(n, _)| present.contains(n)).count(),
        commits.len()
    );

    // Then back to a time between t2 and t3 (on the first timeline, before the kill).
    // Refused without --yes, naming what it replaces; nothing touched.
    let o = controlplane(&state, &sets, &["restore", "--to-time", &target]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pitr_marks"), "{err}");
    assert_eq!(
        marks(&state, &sets),
        present,
        "a refused restore touched nothing"
    );

    let o = controlplane(&state, &sets, &["restore", "--to-time", &target, "--yes"]);
    assert!(o.status.success(), "restore --to-time:\n{}", text(&o));
    eprintln!("restore --to-time:\n{}", text(&o));
    assert_eq!(marks(&state, &sets), ["t1", "t2"], "t3 is after the target");

    // The restored server archives its new timeline: a marker written after the
    // restore to a time comes back from a second restore to the latest.
    let t4 = mark(&state, &sets, "t4");
    std::thread::sleep(Duration::from_secs(ARCHIVE_TIMEOUT_S * 2 + 2));
    // The window follows the newest timeline (the third: the first restore made
    // the second) and reaches t4.
    let o = controlplane(&state, &sets, &["-o", "json", "backup", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &list["pitr"];
    eprintln!("window after the restore to a time: {p}");
    if let Some(dir) = archive_dir {
        eprintln!("archive:\n{}", listing(dir));
    }
    assert_eq!(p["window"]["timeline"], 3, "{p}");
    assert!(epoch(&p["window"]["latest"]) >= t4.floor(), "{p}");
    let o = controlplane(&state, &sets, &["restore", "--to-latest", "--yes"]);
    if !o.status.success() {
        if let Some(dir) = archive_dir {
            eprintln!("archive:\n{}", listing(dir));
        }
        panic!("second restore --to-latest:\n{}", text(&o));
    }
    eprintln!("second restore --to-latest:\n{}", text(&o));
    assert_eq!(
        marks(&state, &sets),
        ["t1", "t2", "t4"],
        "t4 (written {t4:.1} on the new timeline) is restored"
    );
}

fn listing(dir: &std::path::Path) -> String {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out.join("\n")
}

#[test]
fn local_destination_restores_to_the_latest_after_kill_9_and_to_a_time() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dest = tmp.path().join("backups");
    run(
        &[format!("backup.destinations.local.path={}", dest.display())],
        &tmp,
        Some(&dest.join("pitr/dev")),
    );
}

#[test]
fn s3_destination_on_moto_restores_to_the_latest_after_kill_9_and_to_a_time() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let moto = cp_testkit::moto(&["pitr"]);
    run(
        &[
            format!(
                "backup.destinations.offsite={}",
                moto.destination("pitr", "dev/")
            ),
            "backup.pitr.destination=offsite".to_owned(),
            format!(
                "backup.destinations.local.path={}",
                tmp.path().join("backups").display()
            ),
        ],
        &tmp,
        None,
    );
}

#[test]
fn a_segment_missing_from_the_archive_ends_the_window_and_a_restore_past_it_refuses() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dest = tmp.path().join("backups");
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.extend(cp_testkit::only(&[cp_core::names::CoreKind::Postgres]));
    sets.retain(|s| s != "backup.enabled=false");
    sets.extend([
        "platform=process".to_owned(),
        "backup.services=[postgres]".to_owned(),
        "backup.pitr.enabled=true".to_owned(),
        "backup.pitr.archive_timeout=1s".to_owned(),
        format!("backup.destinations.local.path={}", dest.display()),
    ]);
    let _down = common::down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    psql(
        &state,
        &sets,
        "CREATE TABLE pitr_marks (id serial PRIMARY KEY, name text NOT NULL)",
    );
    let o = controlplane(&state, &sets, &["backup", "--base"]);
    assert!(o.status.success(), "backup --base:\n{}", text(&o));
    // One marker per archive_timeout: each lands in a segment of its own.
    let mut at = Vec::new();
    for n in 1..=5 {
        at.push(mark(&state, &sets, &format!("m{n}")));
        std::thread::sleep(Duration::from_millis(2500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let wals = dest.join("pitr/dev/wals");
    let mut segments: Vec<std::path::PathBuf> = listing(&wals)
        .lines()
        .filter(|l| {
            let name = l.rsplit('/').next().unwrap_or("");
            name.len() == 28
                && name.ends_with(".zst")
                && name[..24].chars().all(|c| c.is_ascii_hexdigit())
        })
        .map(|l| wals.join(l))
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "segments:\n{}", listing(&wals));
    // The second newest segment goes missing (a later one exists: a gap, not an end).
    let lost = segments[segments.len() - 2].clone();
    let lost_name = lost.file_name().unwrap().to_string_lossy()[..24].to_owned();
    std::fs::remove_file(&lost).unwrap();

    let o = controlplane(&state, &sets, &["-o", "json", "backup", "list"]);
    assert!(o.status.success(), "backup list:\n{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &list["pitr"];
    assert_eq!(
        p["window"]["gap"],
        lost_name.as_str(),
        "{p}\nremoved {}; archive now:\n{}",
        lost.display(),
        listing(&wals)
    );
    let latest = chrono::DateTime::parse_from_rfc3339(p["window"]["latest"].as_str().unwrap())
        .unwrap()
        .timestamp() as f64;
    assert!(latest < at[4], "the window ends before the gap: {p}");
    let o = controlplane(&state, &sets, &["backup", "list"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("WAL segment {lost_name} is missing")),
        "{}",
        text(&o)
    );

    // A restore past the gap refuses, naming the segment; nothing is touched.
    let past = rfc3339(at[4] + 0.5);
    let o = controlplane(
        &state,
        &sets,
        &[
            "restore",
            "--to-time",
            &past,
            "--service",
            "postgres",
            "--yes",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&lost_name), "{err}");
    assert_eq!(marks(&state, &sets), ["m1", "m2", "m3", "m4", "m5"]);
}
