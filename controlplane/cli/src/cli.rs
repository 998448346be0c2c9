//! The command line: global flags every command shares, and the commands, each with
//! examples in its help. The exit-code table is in the top-level help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Renders, validates, brings up, seeds, backs up and serves a platform's environments.
#[derive(Debug, Parser)]
#[command(
    name = "controlplane",
    version,
    about,
    long_about = None,
    after_help = cp_app::exit::TABLE,
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// The environment to act on (a file `environments/<NAME>.yaml`).
    #[arg(
        short = 'e',
        long,
        global = true,
        env = "CONTROLPLANE_ENV",
        default_value = "dev"
    )]
    pub(crate) env: String,
    /// The directory holding `base.yaml` and one file per environment.
    #[arg(
        long,
        global = true,
        env = "CONTROLPLANE_ENVIRONMENTS",
        default_value = "environments"
    )]
    pub(crate) environments: PathBuf,
    /// Override one value of the loaded model, validated like the files
    /// (e.g. `--set services.postgres.port=15432`). Repeatable.
    #[arg(long = "set", global = true, value_name = "PATH=VALUE")]
    pub(crate) sets: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Where the environment's local state lives (default `.controlplane/<env>` in the
    /// project root).
    #[arg(long, global = true, env = "CONTROLPLANE_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

impl Global {
    /// The application layer's view of these flags.
    pub(crate) fn target(&self) -> cp_app::Target {
        cp_app::Target {
            env: self.env.clone(),
            environments: self.environments.clone(),
            sets: self.sets.clone(),
            state_dir: self.state_dir.clone(),
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// For people.
    Text,
    /// For machines (the shapes are documented in docs/views/).
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check environment files: every error, with file:line:col. Exit 3 when invalid.
    #[command(after_help = "Examples:
  controlplane validate                 # the environment given by --env (default dev)
  controlplane validate --all           # every environment; an error in base.yaml once
  controlplane -e production validate --set services.postgres.port=6543")]
    Validate {
        /// Check every environment, not just --env.
        #[arg(long)]
        all: bool,
    },
    /// Render compose, Kustomize, Prometheus and Grafana files.
    #[command(after_help = "Examples:
  controlplane render --all              # write rendered/ for every environment
  controlplane render --all --check      # CI: exit 2 with a diff when rendered/ drifted
  controlplane -e staging render --out /tmp/out")]
    Render {
        /// Render every environment.
        #[arg(long)]
        all: bool,
        /// Output directory (default: `rendered/` in the project root).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Compare with the output directory instead of writing; exit 2 with a diff on
        /// drift.
        #[arg(long)]
        check: bool,
    },
    /// Print the resolved environment (secrets redacted); valid as an environment file.
    #[command(after_help = "Examples:
  controlplane -e production config
  controlplane -e dev config -o json | jq .services.postgres")]
    Config,
    /// Print the JSON Schema of an environment file, or of a command's JSON output.
    #[command(after_help = "Examples:
  controlplane schema > environments/schema.json
  controlplane schema --view plan        # the shape of `plan -o json`")]
    Schema {
        /// The JSON output of this view instead (`plan`, `status`, `up`, ...).
        #[arg(long)]
        view: Option<String>,
    },
    /// Show what `up` would change across every layer (platform, database, streams,
    /// Redis ACLs, Vault, tenants); never changes anything. Exit 2 when changes are
    /// pending.
    #[command(after_help = "Examples:
  controlplane plan                      # dev
  controlplane -e staging plan -o json   # the documented plan document
  controlplane plan --out dev.plan && controlplane up --plan dev.plan")]
    Plan {
        /// Also save the plan, with a fingerprint of what it observed, for `up --plan`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check what drifted: the whole-environment plan as a drift view (per layer and
    /// resource), as `serve`'s drift watch computes it. Exit 2 when drifted.
    #[command(after_help = "Examples:
  controlplane drift                     # dev
  controlplane -e production drift -o json")]
    Drift,
    /// Rotate now: transit keys (a new version, the platform's own ciphertexts
    /// rewrapped, old versions beyond `rotation.transit_keys.keep_versions` no longer
    /// decrypting) and the platform's passwords (PostgreSQL roles, Redis ACL users: a
    /// new value on the server, written to the state file or the vault:// entry). An
    /// env:// password in scope refuses the whole request before anything changes.
    /// Certificates: each running server gets a new one from the environment's CA and
    /// reloads it without dropping its connections.
    #[command(after_help = "Examples:
  controlplane rotate keys
  controlplane rotate certificates --service postgres
  controlplane rotate passwords --service redis --yes
  controlplane -e staging rotate all -o json --yes")]
    Rotate {
        /// What to rotate.
        #[arg(value_enum)]
        what: RotateArg,
        /// Only this core service's (repeatable): postgres, redis, nats (certificates
        /// only), vault.
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// Confirm rotating passwords without asking (needed without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Apply the plan: start what is missing, wait until every service answers, seed.
    #[command(after_help = "Examples:
  controlplane up                        # dev: everything
  controlplane up --service postgres     # postgres and what it needs
  controlplane up --plan dev.plan        # exactly a saved plan, or refuse if the world moved
  controlplane -e staging up --backup    # a backup set of what the plan touches first")]
    Up {
        /// Only this service and what it depends on (repeatable).
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// Give up when services are not ready after this long (e.g. `90s`, `5m`).
        #[arg(long, default_value = "2m")]
        timeout: String,
        /// Do not seed after bring-up.
        #[arg(long)]
        no_seed: bool,
        /// First back up the stateful services the plan changes; apply nothing if
        /// that backup fails.
        #[arg(long)]
        backup: bool,
        /// Apply exactly this saved plan (`plan --out FILE`); refused, touching nothing,
        /// when what it observed has changed.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Start this stateful service empty (`postgres`, `vault`, `nats`; repeatable): only
        /// one whose data is missing, or a Vault whose first initialisation was
        /// interrupted (`plan` shows either as blocked). Asks first; --yes confirms.
        #[arg(long, value_name = "SERVICE")]
        reinitialise: Vec<String>,
        /// Confirm --reinitialise without asking (needed without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Stop everything of the environment (outside dev, or with --volumes, after a
    /// confirmation).
    #[command(after_help = "Examples:
  controlplane down                      # dev: stop, keep the data
  controlplane down --volumes            # asks, then deletes the data too
  controlplane -e staging down --yes     # no terminal: --yes confirms")]
    Down {
        /// Also delete its data.
        #[arg(long)]
        volumes: bool,
        /// Confirm without asking (needed without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// State, version, uptime, endpoint and health of every service.
    #[command(after_help = "Examples:
  controlplane status
  controlplane status --watch
  controlplane status -o json --show-secrets   # dev only: URLs with passwords")]
    Status {
        /// Refresh every two seconds.
        #[arg(long)]
        watch: bool,
        /// Put dev passwords in the connection URLs (never outside dev).
        #[arg(long)]
        show_secrets: bool,
    },
    /// The alerts firing and pending in the environment's Prometheus (what the
    /// console's alerts page shows).
    #[command(after_help = "Examples:
  controlplane alerts
  controlplane -e staging alerts -o json | jq '.alerts[] | select(.state == \"firing\")'")]
    Alerts,
    /// A service's log.
    #[command(after_help = "Examples:
  controlplane logs postgres
  controlplane logs nats --follow --tail 20")]
    Logs {
        /// The service (`postgres`, `redis`, `nats`, `vault`, ...).
        service: String,
        /// Keep printing new lines.
        #[arg(long, short)]
        follow: bool,
        /// How many lines of history to print first.
        #[arg(long, default_value_t = 100)]
        tail: usize,
    },
    /// Open psql on the environment's database.
    #[command(after_help = "Examples:
  controlplane psql
  controlplane psql --role app -- -c 'select 1'")]
    Psql {
        /// Which role to connect as.
        #[arg(long, value_enum, default_value_t = PgRole::Admin)]
        role: PgRole,
        /// Arguments passed to psql (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Open redis-cli as the admin user.
    #[command(after_help = "Examples:
  controlplane redis-cli
  controlplane redis-cli -- PING")]
    RedisCli {
        /// Arguments passed to redis-cli (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// NATS server and JetStream information; publish, subscribe and list streams as
    /// the admin identity (the app user may only use its streams' subjects).
    #[command(after_help = "Examples:
  controlplane nats
  controlplane nats -o json
  controlplane nats pub events.test '{\"message\": \"hello\"}'
  controlplane nats sub 'events.*' --count 1
  controlplane nats stream ls
  controlplane nats stream info CAPSULE_EVENTS")]
    Nats {
        /// Without one: the server and the declared streams.
        #[command(subcommand)]
        action: Option<NatsAction>,
    },
    /// Print `export VAULT_ADDR=... VAULT_TOKEN=...` for a shell.
    #[command(after_help = "Examples:
  eval \"$(controlplane vault-env)\"")]
    VaultEnv,
    /// Seed the running services: database roles, privileges and migrations, JetStream
    /// streams, Redis ACL users, Vault configuration, tenants' parts. Idempotent; `up`
    /// runs it too.
    #[command(after_help = "Examples:
  controlplane seed
  VAULT_TOKEN=... controlplane -e staging seed")]
    Seed,
    /// Database schema migrations.
    #[command(after_help = "Examples:
  controlplane migrate status
  controlplane migrate up
  controlplane migrate down --steps 1")]
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Tenants: their row, Vault key, KV subtree and policy.
    #[command(after_help = "Examples:
  controlplane tenant create acme --name 'Acme Corp'
  controlplane tenant list
  controlplane tenant delete acme --yes")]
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Serve the REST API and the web console for the environments (default: every
    /// environment in --environments).
    #[command(after_help = "Examples:
  controlplane serve                                   # http://127.0.0.1:7700/console
  controlplane serve --listen 0.0.0.0:7700 --public-url https://cp.example.com
  controlplane serve --only dev --prometheus dev=http://127.0.0.1:9091
  controlplane serve --oidc-issuer https://id.example.com --oidc-audience controlplane")]
    Serve(crate::commands::serve::ServeArgs),
    /// API tokens for `serve`: create (printed once), list, revoke.
    #[command(after_help = "Examples:
  controlplane token create --role admin --name alice
  controlplane token create --role viewer --name acme-dash --tenant acme --ttl 30d
  controlplane token list
  controlplane token revoke alice")]
    Token(crate::commands::token::TokenArgs),
    /// Back up the environment's stateful services into one set (then prune), or
    /// manage sets: `list`, `verify`, `prune`.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:
  controlplane backup                          # every service in backup.services
  controlplane -e production backup --service postgres --destination offsite
  controlplane backup list -o json
  controlplane backup list --destination all   # each destination's sets
  controlplane backup verify 20261201T021500000Z-3fa9c1
  controlplane backup prune --dry-run          # what retention would delete, and why"
    )]
    Backup {
        #[command(subcommand)]
        action: Option<BackupAction>,
        /// Only this service (repeatable): postgres, redis, nats, vault.
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// The destination (default: `all`, every one of backup.destinations: the set
        /// is taken once, written to the first and copied to the others; each
        /// destination's outcome is reported).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// A PostgreSQL base backup for point-in-time recovery (`backup.pitr`)
        /// instead of a set.
        #[arg(long, conflicts_with_all = ["services", "destination"])]
        base: bool,
    },
    /// Restore a backup set over the environment's services (after a confirmation that
    /// lists what it replaces).
    #[command(after_help = "Examples:
  controlplane restore 20261201T021500000Z-3fa9c1             # asks on a terminal
  controlplane restore 20261201T021500000Z-3fa9c1 --service postgres --yes
  controlplane -e production restore ID --into-env staging --yes
  controlplane restore --to-time 2026-12-07T17:30:00Z --yes   # every service, to one moment
  controlplane restore --to-time 2026-12-07T17:30:00Z --service postgres")]
    Restore {
        /// The set's id (`backup list` shows them); not with --to-time/--to-lsn/--to-latest.
        #[arg(required_unless_present_any = ["to_time", "to_lsn", "to_latest"])]
        id: Option<String>,
        /// Restore the environment to this moment (RFC 3339): PostgreSQL replayed from
        /// the WAL archive to exactly it (`backup.pitr`), Redis and OpenBao from the
        /// newest set finished by then, JetStream from the nearest set taken after it,
        /// trimmed to the messages stored by then; with --service, only those. Prints
        /// how far from the moment each service landed. On Kubernetes: PostgreSQL only,
        /// a new CloudNativePG Cluster recovering to it beside the running one.
        #[arg(long, value_name = "TIME", conflicts_with_all = ["id", "to_lsn", "to_latest", "into_env"])]
        to_time: Option<String>,
        /// Point-in-time recovery of PostgreSQL to this LSN.
        #[arg(long, value_name = "LSN", conflicts_with_all = ["id", "to_latest", "services", "into_env"])]
        to_lsn: Option<String>,
        /// Point-in-time recovery of PostgreSQL to the end of the WAL archive.
        #[arg(long, conflicts_with_all = ["id", "services", "into_env"])]
        to_latest: bool,
        /// Only this service (repeatable).
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// Restore into this environment instead (the set is read from --env's
        /// destination).
        #[arg(long, value_name = "ENV")]
        into_env: Option<String>,
        /// The destination to read from (default: the first).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Confirm without asking (needed without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Serve Prometheus metrics for a server that has none of its own; the process
    /// platform runs `exporter nats` beside NATS.
    #[command(after_help = "Examples:
  controlplane exporter nats --listen 127.0.0.1:7777 --monitor http://127.0.0.1:8222
  curl -s 127.0.0.1:7777/metrics | grep jetstream_consumer_num_pending")]
    Exporter {
        #[command(subcommand)]
        exporter: ExporterKind,
    },
    /// PostgreSQL's `archive_command` and `restore_command` (point-in-time
    /// recovery); PostgreSQL runs these, not people.
    #[command(hide = true)]
    Pitr {
        #[command(subcommand)]
        action: PitrAction,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  source <(controlplane completions bash)
  controlplane completions zsh > ~/.zfunc/_controlplane
  controlplane completions fish > ~/.config/fish/completions/controlplane.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `exporter` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ExporterKind {
    /// NATS and JetStream metrics from nats-server's monitoring endpoints (`/varz`,
    /// `/jsz`), named and labelled as prometheus-nats-exporter does, on
    /// `http://LISTEN/metrics`; every scrape asks NATS afresh.
    Nats {
        /// The address to serve `/metrics` and `/healthz` on.
        #[arg(long, default_value = "127.0.0.1:7777", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// nats-server's monitoring URL (its `http` port).
        #[arg(long, default_value = "http://127.0.0.1:8222", value_name = "URL")]
        monitor: String,
    },
}

/// `pitr` subcommands (run by PostgreSQL).
#[derive(Debug, Subcommand)]
pub(crate) enum PitrAction {
    /// Ships WAL file `NAME` at `PATH` to the archive (`archive_command`).
    WalPush {
        /// `pitr.json` beside postgresql.conf.
        #[arg(long)]
        config: std::path::PathBuf,
        /// `%p`.
        path: std::path::PathBuf,
        /// `%f`.
        name: String,
    },
    /// Fetches WAL file `NAME` into `PATH` (`restore_command`).
    WalFetch {
        /// `pitr.json` beside postgresql.conf.
        #[arg(long)]
        config: std::path::PathBuf,
        /// `%f`.
        name: String,
        /// `%p`.
        path: std::path::PathBuf,
    },
}

/// `migrate` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the last applied migrations.
    Down {
        /// How many to revert.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

/// What `rotate` rotates.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RotateArg {
    /// Transit keys.
    Keys,
    /// The platform's passwords.
    Passwords,
    /// The servers' TLS certificates (renewed now, each server reloading its own).
    Certificates,
    /// Keys, passwords and certificates.
    All,
}

impl From<RotateArg> for cp_app::views::rotate::RotateTarget {
    fn from(a: RotateArg) -> Self {
        match a {
            RotateArg::Keys => Self::Keys,
            RotateArg::Passwords => Self::Passwords,
            RotateArg::Certificates => Self::Certificates,
            RotateArg::All => Self::All,
        }
    }
}

/// `backup` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BackupAction {
    /// Every set at the destination with its state, age and size.
    List {
        /// The destination (default: the first; `all`: each destination in turn).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
    /// Re-read every artifact of a set: SHA-256, decryption, decompression.
    Verify {
        /// The set's id.
        id: String,
        /// Also restore it into scratch targets (a scratch database, scratch servers on
        /// free ports) and check row counts, stream messages and the Vault canary.
        #[arg(long)]
        restore_drill: bool,
        /// The destination (default: the first).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
    /// Apply retention (daily/weekly/monthly) and remove debris of dead runs.
    Prune {
        /// Only show what would be deleted and which rule keeps each kept set.
        #[arg(long)]
        dry_run: bool,
        /// The destination (default: the first).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
}

/// `nats` subcommands, as the admin identity.
#[derive(Debug, Subcommand)]
pub(crate) enum NatsAction {
    /// Publish a message; through JetStream (acknowledged) when a stream captures the
    /// subject.
    Pub {
        /// The subject (`events.test`).
        subject: String,
        /// The payload.
        message: String,
    },
    /// Print messages published to a subject (wildcards `*` and `>`) as they arrive.
    Sub {
        /// The subject (`events.*`).
        subject: String,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after waiting this long with no message (`30s`, `2m`).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<cp_core::units::Duration>,
    },
    /// JetStream streams.
    Stream {
        #[command(subcommand)]
        action: NatsStreamAction,
    },
}

fn parse_duration(s: &str) -> Result<cp_core::units::Duration, cp_core::units::UnitError> {
    cp_core::units::Duration::parse(s)
}

/// `nats stream` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NatsStreamAction {
    /// Every stream on the server, and each declared one it lacks.
    #[command(alias = "list")]
    Ls,
    /// One stream's configuration and state.
    Info {
        /// The stream (`CAPSULE_EVENTS`).
        name: String,
    },
}

/// `tenant` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TenantAction {
    /// Create a tenant (or finish creating it after a crash).
    Create {
        /// Unique slug (`acme-corp`).
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants with the state of each of their parts.
    List,
    /// Delete a tenant: its transit key is destroyed (crypto-shred), then its rows.
    Delete {
        /// The tenant's id or slug.
        tenant: String,
        /// Confirm without asking (needed without a terminal): this cannot be undone.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// A PostgreSQL role to connect as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PgRole {
    /// The owner (migrations, DDL).
    Admin,
    /// The application role (RLS applies).
    App,
    /// The read-only role.
    Readonly,
    /// The bootstrap superuser.
    Superuser,
}
