-- Capsules (versioned automation definitions), the plans made from them, their runs
-- and the approvals runs wait for. References between tenant tables are composite
-- (tenant_id, x_id), so a row can only point at rows of its own tenant, and pointing
-- at another tenant's id fails exactly like pointing at an id that does not exist.
CREATE TABLE anumate.capsules (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    definition jsonb NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name, version),
    FOREIGN KEY (tenant_id, created_by) REFERENCES anumate.users (tenant_id, id) ON DELETE SET NULL (created_by)
);

CREATE TABLE anumate.plans (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    capsule_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'ready', 'archived')),
    spec jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, capsule_id) REFERENCES anumate.capsules (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX plans_capsule ON anumate.plans (tenant_id, capsule_id);

CREATE TABLE anumate.runs (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    plan_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    started_at timestamptz,
    finished_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, plan_id) REFERENCES anumate.plans (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX runs_plan ON anumate.runs (tenant_id, plan_id);

CREATE TABLE anumate.approvals (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    run_id uuid NOT NULL,
    approver_id uuid,
    decision text NOT NULL DEFAULT 'pending' CHECK (decision IN ('pending', 'approved', 'rejected')),
    reason text,
    decided_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES anumate.runs (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, approver_id) REFERENCES anumate.users (tenant_id, id) ON DELETE SET NULL (approver_id)
);
CREATE INDEX approvals_run ON anumate.approvals (tenant_id, run_id);

ALTER TABLE anumate.capsules ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE anumate.plans ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE anumate.runs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE anumate.approvals ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON anumate.capsules
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON anumate.plans
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON anumate.runs
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON anumate.approvals
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

-- The console's run list. security_invoker: the view reads its tables with the
-- caller's rights and policies, not its owner's.
CREATE VIEW anumate.run_overview WITH (security_invoker = true) AS
    SELECT r.tenant_id, r.id AS run_id, r.status, r.created_at,
           p.id AS plan_id, c.name AS capsule_name, c.version AS capsule_version
    FROM anumate.runs r
    JOIN anumate.plans p ON p.tenant_id = r.tenant_id AND p.id = r.plan_id
    JOIN anumate.capsules c ON c.tenant_id = p.tenant_id AND c.id = p.capsule_id;

-- Capsule versions are immutable once published: no UPDATE. Runs and approvals
-- change state but are history: no DELETE (tenant deletion removes them).
GRANT SELECT, INSERT, DELETE ON anumate.capsules TO anumate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON anumate.plans TO anumate_app;
GRANT SELECT, INSERT, UPDATE ON anumate.runs, anumate.approvals TO anumate_app;
GRANT SELECT ON anumate.run_overview TO anumate_app;
GRANT SELECT ON anumate.capsules, anumate.plans, anumate.runs, anumate.approvals,
    anumate.run_overview TO anumate_readonly;
