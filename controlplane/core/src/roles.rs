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

/// The platform's schemas, in the order a bare table name is looked up: tenant data
/// first, then the audit trail and the outbox. Every managed role gets this
/// `search_path` (role-wide, `ALTER ROLE ... SET search_path`), so `SELECT * FROM users`
/// works as written in a session of any of them; `public` stays last, where nobody but
/// its owner may create (the seeder revokes CREATE from PUBLIC).
pub const SCHEMAS: [&str; 3] = ["anumate", "audit", "events"];

/// The `search_path` the seeder sets on every managed role, as PostgreSQL stores it
/// (`pg_roles.rolconfig` holds `search_path=` followed by this).
pub const SEARCH_PATH: &str = "anumate, audit, events, public";

#[cfg(test)]
mod tests {
    #[test]
    fn search_path_is_the_schemas_then_public() {
        assert_eq!(
            super::SEARCH_PATH,
            format!("{}, public", super::SCHEMAS.join(", "))
        );
    }
}
