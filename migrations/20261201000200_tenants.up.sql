-- Tenants. The control plane (admin role) creates and deletes them; the application
-- sees only the row of the tenant its transaction is bound to.
CREATE TABLE anumate.tenants (
    id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 63),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE anumate.tenants ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- Unset or empty means no tenant: NULLIF makes the comparison NULL, so no row matches.
CREATE POLICY tenant_isolation ON anumate.tenants
    USING (id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
-- The control plane manages the tenant registry itself (create, list, delete).
CREATE POLICY control_plane ON anumate.tenants TO anumate_admin
    USING (true)
    WITH CHECK (true);
GRANT SELECT ON anumate.tenants TO anumate_app, anumate_readonly;
