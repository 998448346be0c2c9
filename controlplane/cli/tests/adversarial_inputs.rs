//! Hostile input, one table row each: broken YAML, hostile values in environment files
//! and `--set`, malformed flags, environment names, tenant slugs and state directories.
//!
//! Every row runs the real binary in a fresh copy of the project and must be refused
//! as invalid input: exit 3, a message naming the problem, one error (plus its snippet
//! and hint lines) in a few lines however absurd the input, no raw control character
//! on the terminal, answered within seconds, and nothing written: the project
//! directory (state dirs, rendered output and all) is byte-for-byte the same after.
//! None of them needs a running service: invalid input is refused before any is
//! touched.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

use cp_testkit::project::tree;
use std::time::{Duration, Instant};

/// One hostile input.
struct Case {
    /// What it tries.
    name: &'static str,
    /// Files to write into the project copy first (relative path, contents).
    files: &'static [(&'static str, &'static str)],
    /// The command line (`{dir}` is replaced by the project copy's path).
    args: &'static [&'static str],
    /// A substring of stderr that names the problem.
    says: &'static str,
}

/// The dev file with `text` appended (a mapping key it does not already have).
macro_rules! dev_plus {
    ($text:expr) => {
        concat!(include_str!("../../../environments/dev.yaml"), "\n", $text)
    };
}

/// A dev file of its own (over base.yaml) that is valid but for `$text`.
macro_rules! dev_only {
    ($text:expr) => {
        concat!("tier: dev\nbackup: {enabled: false}\n", $text)
    };
}

const PROCESS: &str = "platform=process";

const CASES: &[Case] = &[
    // Broken YAML files.
    Case {
        name: "unclosed flow sequence",
        files: &[("environments/dev.yaml", "tier: dev\nservices: [1, 2\n")],
        args: &["validate"],
        says: "environments/dev.yaml:",
    },
    Case {
        name: "a file holding a scalar",
        files: &[("environments/dev.yaml", "just some text\n")],
        args: &["validate"],
        says: "the file holds",
    },
    Case {
        name: "duplicate keys",
        files: &[("environments/dev.yaml", "tier: dev\ntier: staging\n")],
        args: &["validate"],
        says: "tier",
    },
    Case {
        name: "a tab where indentation is expected",
        files: &[(
            "environments/dev.yaml",
            "services:\n\tredis:\n\t\tport: 1\n",
        )],
        args: &["validate"],
        says: "environments/dev.yaml:",
    },
    Case {
        name: "a file that is not UTF-8",
        files: &[(
            "environments/dev.yaml",
            "tier: dev\nproject: \u{FFFD}\u{0}\n",
        )],
        args: &["validate"],
        says: "project",
    },
    Case {
        name: "a base.yaml holding a list",
        files: &[("environments/base.yaml", "- a\n- b\n")],
        args: &["validate"],
        says: "the file holds",
    },
    Case {
        name: "an unknown top-level key",
        files: &[("environments/dev.yaml", dev_plus!("servics: {}\n"))],
        args: &["validate"],
        says: "servics",
    },
    // Hostile values in environment files.
    Case {
        name: "a quote in the NATS app user breaks nats.conf",
        files: &[(
            "environments/dev.yaml",
            dev_only!("services:\n  nats:\n    app_user: 'a\"b'\n"),
        )],
        args: &["validate"],
        says: "is not a valid NATS user name",
    },
    Case {
        name: "a stream over JetStream's API",
        files: &[(
            "environments/dev.yaml",
            dev_only!("streams:\n  EVIL:\n    subjects: [\"$JS.API.>\"]\n"),
        )],
        args: &["validate"],
        says: "overlaps `$JS.>`",
    },
    Case {
        name: "a stream over controlplane's own inbox",
        files: &[(
            "environments/dev.yaml",
            dev_only!("streams:\n  EVIL:\n    subjects: [\"_INBOX_CP.>\"]\n"),
        )],
        args: &["validate"],
        says: "controlplane's own reply inbox",
    },
    Case {
        name: "a stream max_age of 10^14 days",
        files: &[(
            "environments/dev.yaml",
            dev_only!("streams:\n  CAPSULE_EVENTS:\n    max_age: 100000000000000d\n"),
        )],
        args: &["validate"],
        says: "longer than 100 years",
    },
    Case {
        name: "a million NATS replicas",
        files: &[(
            "environments/dev.yaml",
            dev_only!("platform: process\nservices:\n  nats:\n    replicas: 1000000\n"),
        )],
        args: &["render", "--out", "out"],
        says: "services.nats.replicas: replicas is 1000000",
    },
    Case {
        name: "a PostgreSQL database name with SQL in it",
        files: &[(
            "environments/dev.yaml",
            dev_only!("services:\n  postgres:\n    database: 'x\"; DROP DATABASE y; --'\n"),
        )],
        args: &["validate"],
        says: "is not a valid PostgreSQL database name",
    },
    Case {
        name: "a redis maxmemory that injects a directive",
        files: &[(
            "environments/dev.yaml",
            dev_only!("services:\n  redis:\n    maxmemory: \"1mb\\nrequirepass x\"\n"),
        )],
        args: &["validate"],
        says: "is not a Redis memory size",
    },
    Case {
        name: "an escape sequence in the namespace",
        files: &[(
            "environments/dev.yaml",
            dev_only!("namespace: \"a\\e[2Jb\"\n"),
        )],
        args: &["validate"],
        says: "`a\\x1b[2Jb` is not a valid namespace",
    },
    Case {
        name: "a newline in the project name forging a line",
        files: &[(
            "environments/dev.yaml",
            dev_only!("namespace: x\nproject: \"x\\nok: dev valid\"\n"),
        )],
        args: &["validate"],
        says: "`x\\nok: dev valid` is not a valid project name",
    },
    Case {
        name: "a KV mount outside its path",
        files: &[(
            "environments/dev.yaml",
            dev_plus!("vault:\n  kv_mount: ../sys\n"),
        )],
        args: &["validate"],
        says: "is not a valid Vault mount path",
    },
    Case {
        name: "an even OpenBao cluster",
        files: &[(
            "environments/dev.yaml",
            dev_only!("platform: process\nservices:\n  vault:\n    replicas: 4\n"),
        )],
        args: &["validate"],
        says: "survives no more failures than one of 3",
    },
    Case {
        name: "a threshold of NaN",
        files: &[(
            "environments/dev.yaml",
            dev_only!("alerts:\n  rules:\n    high_latency_p95: {threshold: .nan}\n"),
        )],
        args: &["validate"],
        says: "non-finite float",
    },
    Case {
        name: "a threshold of 10^300",
        files: &[(
            "environments/dev.yaml",
            dev_only!("alerts:\n  rules:\n    high_latency_p95: {threshold: 1e300}\n"),
        )],
        args: &["validate"],
        says: "alerts.rules.high_latency_p95.threshold: threshold",
    },
    Case {
        name: "an image that is two words",
        files: &[(
            "environments/dev.yaml",
            dev_only!("services:\n  redis:\n    image: \"redis:7 --rename-command\"\n"),
        )],
        args: &["validate"],
        says: "is not an image reference",
    },
    Case {
        name: "port 0 on Kubernetes",
        files: &[(
            "environments/dev.yaml",
            dev_only!("platform: kubernetes\nservices:\n  redis:\n    port: 0\n"),
        )],
        args: &["validate"],
        says: "port 0",
    },
    Case {
        name: "a port beyond 65535",
        files: &[(
            "environments/dev.yaml",
            dev_only!("services:\n  redis:\n    port: 70000\n"),
        )],
        args: &["validate"],
        says: "services.redis.port",
    },
    Case {
        name: "a backup destination named like a path",
        files: &[(
            "environments/dev.yaml",
            "tier: dev\nbackup:\n  destinations:\n    \"../x\": {type: local, path: b}\n",
        )],
        args: &["validate"],
        says: "is not a valid destination name",
    },
    // `--set` values.
    Case {
        name: "a --set without `=`",
        files: &[],
        args: &["--set", "services.redis.port", "validate"],
        says: "--set services.redis.port",
    },
    Case {
        name: "a --set with an escape sequence in the NATS user",
        files: &[],
        args: &["--set", "services.nats.app_user=a\u{1b}[2Jb", "validate"],
        says: "a\\x1b[2Jb",
    },
    Case {
        name: "a --set of a negative port",
        files: &[],
        args: &["--set", "services.postgres.port=-1", "validate"],
        says: "services.postgres.port",
    },
    Case {
        name: "a --set of a stream over the system account",
        files: &[],
        args: &["--set", "streams.X.subjects=[\"$SYS.>\"]", "validate"],
        says: "the NATS system account",
    },
    Case {
        name: "a --set of a stream capturing everything",
        files: &[],
        args: &["--set", "streams.X.subjects=[\">\"]", "validate"],
        says: "overlaps",
    },
    Case {
        name: "a --set of a PostgreSQL setting spanning lines",
        files: &[],
        args: &[
            "--set",
            "services.postgres.settings.work_mem=\"1MB\\nfsync = off\"",
            "validate",
        ],
        says: "spans lines",
    },
    Case {
        name: "a --set of an app with four billion replicas",
        files: &[],
        args: &[
            "--set",
            "apps.a={image: x, port: 9000, replicas: 4000000000}",
            "render",
            "--out",
            "out",
        ],
        says: "apps.a.replicas",
    },
    Case {
        name: "a --set of backup retention beyond u32 sums",
        files: &[],
        args: &[
            "--set",
            "backup.retention={daily: 4294967295, weekly: 4294967295, monthly: 1}",
            "--set",
            "backup.retention.weekly=4",
            "validate",
        ],
        says: "backup.retention.daily",
    },
    Case {
        name: "a --set of an unlimited Vault token TTL",
        files: &[],
        args: &["--set", "vault.app_role.token_ttl=0s", "validate"],
        says: "unlimited token TTL",
    },
    Case {
        name: "a --set of hostile NATS replicas on `up`",
        files: &[],
        args: &[
            "--set",
            PROCESS,
            "--set",
            "services.nats.replicas=60000",
            "up",
        ],
        says: "replicas is 60000",
    },
    Case {
        name: "a --set of a hostile value on `plan`",
        files: &[],
        args: &[
            "--set",
            PROCESS,
            "--set",
            "services.nats.app_user=x y",
            "plan",
        ],
        says: "services.nats.app_user",
    },
    // Flags.
    Case {
        name: "a --state-dir that is a file",
        files: &[("a-file", "x")],
        args: &["--state-dir", "{dir}/a-file", "--set", PROCESS, "up"],
        says: "is a file, not a directory",
    },
    Case {
        name: "a --state-dir with a newline",
        files: &[],
        args: &["--state-dir", "{dir}/st\nate", "--set", PROCESS, "up"],
        says: "--state-dir `",
    },
    Case {
        name: "an --env with an escape sequence",
        files: &[],
        args: &["--env", "dev\u{1b}[31m", "validate"],
        says: "dev\\x1b[31m",
    },
    Case {
        name: "an --env naming the shared layer",
        files: &[],
        args: &["--env", "base", "validate"],
        says: "`base` is reserved",
    },
    Case {
        name: "an unknown --env",
        files: &[],
        args: &["--env", "nope", "--set", PROCESS, "up"],
        says: "unknown environment `nope`",
    },
    Case {
        name: "an --output that does not exist",
        files: &[],
        args: &["--output", "yaml", "validate"],
        says: "yaml",
    },
    Case {
        name: "up --timeout 0s",
        files: &[],
        args: &["--set", PROCESS, "up", "--timeout", "0s"],
        says: "--timeout",
    },
    Case {
        name: "up --timeout of 10^14 days",
        files: &[],
        args: &["--set", PROCESS, "up", "--timeout", "100000000000000d"],
        says: "longer than 100 years",
    },
    Case {
        name: "up --plan naming a file that is no plan",
        files: &[("plan.json", "{\"not\": \"a plan\"}")],
        args: &["--set", PROCESS, "up", "--plan", "plan.json"],
        says: "is not a plan saved by",
    },
    Case {
        name: "up --plan naming a file that does not exist",
        files: &[],
        args: &["--set", PROCESS, "up", "--plan", "no-such.plan"],
        says: "--plan no-such.plan: no such file",
    },
    Case {
        name: "up --plan naming a directory",
        files: &[],
        args: &["--set", PROCESS, "up", "--plan", "environments"],
        says: "--plan environments: it is a directory",
    },
    Case {
        name: "up --reinitialise of a cache",
        files: &[],
        args: &["--set", PROCESS, "up", "--reinitialise", "redis", "--yes"],
        says: "redis is a cache",
    },
    Case {
        name: "plan --out into a directory that does not exist",
        files: &[],
        args: &["--set", PROCESS, "plan", "--out", "no/such/dir/dev.plan"],
        says: "--out no/such/dir/dev.plan: its directory does not exist",
    },
    Case {
        name: "plan --out naming a directory",
        files: &[],
        args: &["--set", PROCESS, "plan", "--out", "environments"],
        says: "--out environments: it is a directory",
    },
    Case {
        name: "render --out under a file",
        files: &[],
        args: &["render", "--out", "environments/dev.yaml/out"],
        says: "environments/dev.yaml is not a directory",
    },
    Case {
        name: "token revoke of a name no token can have",
        files: &[],
        args: &["token", "revoke", "Bad Name!"],
        says: "is not a token name",
    },
    Case {
        name: "backup list from an unknown destination",
        files: &[],
        args: &["--set", PROCESS, "backup", "list", "--destination", "nope"],
        says: "no backup destination `nope`",
    },
    Case {
        name: "backup prune at an unknown destination",
        files: &[],
        args: &["--set", PROCESS, "backup", "prune", "--destination", "nope"],
        says: "no backup destination `nope`",
    },
    Case {
        name: "up --service naming no service",
        files: &[],
        args: &["--set", PROCESS, "up", "--service", "no\u{7}pe"],
        says: "no service `no\\x07pe`",
    },
    Case {
        name: "tenant delete with an invalid slug",
        files: &[],
        args: &["--set", PROCESS, "tenant", "delete", "Bad Slug!", "--yes"],
        says: "is neither a tenant id",
    },
    Case {
        name: "tenant create with a slug starting with `-`",
        files: &[],
        args: &["--set", PROCESS, "tenant", "create", "--", "-acme"],
        says: "-acme",
    },
    Case {
        name: "token create with a zero TTL",
        files: &[],
        args: &[
            "token", "create", "--role", "viewer", "--name", "ci", "--ttl", "0s",
        ],
        says: "--ttl",
    },
    Case {
        name: "token create longer than its role's serve.tokens.max_ttl",
        files: &[],
        args: &[
            "--set",
            "serve.tokens.max_ttl.admin=24h",
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "ci",
            "--ttl",
            "30d",
        ],
        says: "serve.tokens.max_ttl.admin",
    },
    Case {
        name: "token create with a TTL beyond chrono's range",
        files: &[],
        args: &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "ci",
            "--ttl",
            "100000000000000d",
        ],
        says: "longer than 100 years",
    },
];

/// Runs one case; returns what is wrong with the outcome, if anything.
fn check(case: &Case) -> Result<(), String> {
    check_input(case.name, case.files, case.args, case.says)
}

/// Runs `args` in a fresh project copy with `files` written first, and checks the
/// outcome against every rule of this file.
fn check_input(
    name: &str,
    files: &[(&str, &str)],
    args: &[&str],
    says: &str,
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    cp_testkit::project::copy_project(dir.path());
    for (rel, text) in files {
        std::fs::write(dir.path().join(rel), text).unwrap();
    }
    let before = tree(dir.path());
    let root = dir.path().to_str().unwrap();
    let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", root)).collect();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_controlplane"))
        .args(&args)
        .current_dir(dir.path())
        .env_remove("CONTROLPLANE_ENV")
        .env_remove("CONTROLPLANE_ENVIRONMENTS")
        .env_remove("CONTROLPLANE_STATE_DIR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = if stderr.len() > 2000 {
        format!("{}... ({} bytes)", &stderr[..2000], stderr.len())
    } else {
        stderr.to_string()
    };
    let mut wrong = Vec::new();
    if out.status.code() != Some(3) {
        wrong.push(format!("exit {:?}, not 3", out.status.code()));
    }
    if !stderr.contains(says) {
        wrong.push(format!("stderr does not say `{says}`"));
    }
    let lines = stderr.lines().count();
    let errors = stderr.lines().filter(|l| l.starts_with("error")).count();
    if stderr.len() > 4096 || lines > 16 || errors != 1 {
        wrong.push(format!(
            "{lines} lines, {errors} `error` lines, {} bytes: expected one error in at most 16 lines",
            stderr.len()
        ));
    }
    if stderr
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        wrong.push("a raw control character reached the terminal".into());
    }
    if took > Duration::from_secs(10) {
        wrong.push(format!("answered after {took:?}"));
    }
    let after = tree(dir.path());
    if after != before {
        let changed = cp_testkit::project::changed(&before, &after);
        wrong.push(format!("wrote or changed: {}", changed.join(", ")));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}\n--- stderr\n{shown}", wrong.join("; ")))
    }
}

#[test]
fn every_hostile_input_is_refused_with_one_clear_error_and_nothing_written() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = CASES
            .chunks(CASES.len().div_ceil(4))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|c| check(c).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

/// Inputs too large to write out: each is still one error in a few lines, quickly.
#[test]
fn huge_inputs_are_refused_in_a_few_lines() {
    let valid = "tier: dev\nbackup: {enabled: false}\n";
    let nested = format!("{valid}x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let mut bomb = format!("{valid}a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let long_name = format!("{valid}namespace: x\nproject: {}\n", "a".repeat(1_000_000));
    let long_set = format!("services.nats.app_user={}", "\u{1b}".repeat(100_000));
    /// A case whose input is made at run time.
    struct Generated<'a> {
        name: &'a str,
        files: Vec<(&'a str, &'a str)>,
        args: Vec<&'a str>,
        says: &'a str,
    }
    let cases = [
        Generated {
            name: "a flow sequence nested 100 000 deep",
            files: vec![("environments/dev.yaml", nested.as_str())],
            args: vec!["validate"],
            says: "recursion limit",
        },
        Generated {
            name: "a billion laughs of aliases",
            files: vec![("environments/dev.yaml", bomb.as_str())],
            args: vec!["validate"],
            says: "environments/dev.yaml:",
        },
        Generated {
            name: "a project name of a megabyte",
            files: vec![("environments/dev.yaml", long_name.as_str())],
            args: vec!["validate"],
            says: "more characters)",
        },
        Generated {
            name: "a --set of 100 000 escape characters",
            files: vec![],
            args: vec!["--set", long_set.as_str(), "validate"],
            says: "more characters)",
        },
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_input(c.name, &c.files, &c.args, c.says).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
