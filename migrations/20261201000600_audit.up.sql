-- The audit trail: the application appends and reads its own tenant's events; it can
-- neither change nor remove one (no UPDATE, DELETE or TRUNCATE is granted).
CREATE TABLE audit.events (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    details jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_tenant_time ON audit.events (tenant_id, occurred_at);

ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit.events
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

GRANT SELECT, INSERT ON audit.events TO anumate_app;
GRANT SELECT ON audit.events TO anumate_readonly;
