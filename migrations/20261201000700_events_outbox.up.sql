-- The transactional outbox: the application writes an event in the same transaction
-- as the change it describes; a publisher sends it to JetStream (as a CloudEvent with
-- the tenantid extension) and marks it published.
CREATE TABLE events.outbox (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    subject text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_unpublished ON events.outbox (tenant_id, created_at) WHERE published_at IS NULL;

ALTER TABLE events.outbox ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events.outbox
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

GRANT SELECT, INSERT ON events.outbox TO anumate_app;
GRANT UPDATE (published_at) ON events.outbox TO anumate_app;
GRANT SELECT ON events.outbox TO anumate_readonly;
