//! The command line: global flags every command shares, and the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Renders, validates, brings up, seeds, backs up and serves a platform's environments.
#[derive(Debug, Parser)]
#[command(name = "controlplane", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The environment to act on (a file `environments/<NAME>.yaml`).
    #[arg(long, global = true, env = "CONTROLPLANE_ENV", default_value = "dev")]
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
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Where the environment's local state lives (default `.controlplane/<env>` in the
    /// project root).
    #[arg(long, global = true, env = "CONTROLPLANE_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// For people.
    Text,
    /// For machines.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check environment files: every error, with file:line:col. Exit 2 when invalid.
    Validate {
        /// Check every environment, not just --env.
        #[arg(long)]
        all: bool,
    },
    /// Render compose, Kustomize, Prometheus and Grafana files.
    Render {
        /// Render every environment.
        #[arg(long)]
        all: bool,
        /// Output directory (default: `rendered/` in the project root).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Compare with DIR instead of writing; exit 1 with a diff on drift.
        #[arg(long)]
        check: bool,
    },
    /// Print the resolved environment (secrets redacted).
    Config,
    /// Print the JSON Schema of an environment file.
    Schema,
    /// Show what `up` would create, change or remove; never changes anything. Exit 2
    /// when changes are pending.
    Plan,
    /// Start what is missing and wait until every service answers a real request.
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
    },
    /// Stop everything of the environment.
    Down {
        /// Also delete its data.
        #[arg(long)]
        volumes: bool,
    },
    /// State, version, uptime, endpoint and health of every service.
    Status {
        /// Refresh every two seconds.
        #[arg(long)]
        watch: bool,
    },
    /// A service's log.
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
    Psql {
        /// Which role to connect as.
        #[arg(long, value_enum, default_value_t = PgRole::Admin)]
        role: PgRole,
        /// Arguments passed to psql (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Open redis-cli as the admin user.
    RedisCli {
        /// Arguments passed to redis-cli (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// NATS server and JetStream information.
    Nats,
    /// Print `export VAULT_ADDR=... VAULT_TOKEN=...` for a shell (`eval "$(controlplane vault-env)"`).
    VaultEnv,
    /// Seed the running services: database roles and migrations, JetStream streams,
    /// Redis ACL users, Vault configuration. Idempotent; `up` runs it too.
    Seed,
    /// Database schema migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Tenants: their row, Vault key, KV subtree and policy.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
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
        /// Confirm: this cannot be undone.
        #[arg(long)]
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
