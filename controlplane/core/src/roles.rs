//! The platform's fixed PostgreSQL role names. They are not settings: the migrations
//! grant to these names, so a configurable name would be validated and then ignored.

/// The bootstrap superuser (`initdb -U postgres`); used only to create roles and the
/// database.
pub const SUPERUSER: &str = "postgres";
/// The admin role: owns the database, schemas and tables; runs the migrations.
pub const ADMIN: &str = "anumate_admin";
/// The application role: DML only, subject to row-level security, owns nothing.
pub const APP: &str = "anumate_app";
/// The read-only role: SELECT only, subject to row-level security (the exporter and
/// people reading).
pub const READONLY: &str = "anumate_readonly";
/// The backup role: reads everything (`pg_read_all_data`) and bypasses row-level
/// security, so a dump never silently misses rows.
pub const BACKUP: &str = "anumate_backup";

/// Every role the seeder manages, superuser excluded.
pub const MANAGED: [&str; 4] = [ADMIN, APP, READONLY, BACKUP];
