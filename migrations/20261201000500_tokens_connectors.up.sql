-- Capability tokens (stored as hashes, never in clear) and connectors to outside
-- systems (their credentials live in Vault, not here).
CREATE TABLE anumate.capability_tokens (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    token_sha256 bytea NOT NULL CHECK (length(token_sha256) = 32),
    run_id uuid,
    capabilities text[] NOT NULL DEFAULT '{}',
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, token_sha256),
    FOREIGN KEY (tenant_id, run_id) REFERENCES anumate.runs (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE anumate.connectors (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    kind text NOT NULL,
    name text NOT NULL,
    config jsonb NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

ALTER TABLE anumate.capability_tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE anumate.connectors ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON anumate.capability_tokens
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON anumate.connectors
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

-- Tokens are issued, revoked (UPDATE of revoked_at only) and purged when expired.
GRANT SELECT, INSERT, DELETE ON anumate.capability_tokens TO anumate_app;
GRANT UPDATE (revoked_at) ON anumate.capability_tokens TO anumate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON anumate.connectors TO anumate_app;
GRANT SELECT ON anumate.capability_tokens, anumate.connectors TO anumate_readonly;
