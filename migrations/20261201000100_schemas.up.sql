-- The platform's schemas. The admin role runs the migrations, so it owns them; the
-- application and read-only roles may look objects up in them but create nothing.
-- (The backup role reads everything through pg_read_all_data, granted by the seeder.)
CREATE SCHEMA anumate;
COMMENT ON SCHEMA anumate IS 'Anumate tenant data: every table carries tenant_id and is under forced row-level security';
CREATE SCHEMA audit;
COMMENT ON SCHEMA audit IS 'Append-only audit trail (insert and read for the application role)';
CREATE SCHEMA events;
COMMENT ON SCHEMA events IS 'Transactional outbox of events to publish to NATS JetStream';

GRANT USAGE ON SCHEMA anumate, audit, events TO anumate_app, anumate_readonly;

-- Functions the admin creates here later are not callable by everyone (PostgreSQL's
-- default): each migration grants EXECUTE to the roles that need it. (A per-schema
-- default cannot revoke what the global default grants, hence for the whole role.)
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
