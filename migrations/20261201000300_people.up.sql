-- Users, teams (with members) and tenant-defined roles. Keys and uniques include
-- tenant_id, so one tenant's ids and names never collide with (or reveal) another's.
CREATE TABLE anumate.users (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    email text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);

CREATE TABLE anumate.teams (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL,
    parent_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    -- Teams nest; a parent is always of the same tenant.
    FOREIGN KEY (tenant_id, parent_id) REFERENCES anumate.teams (tenant_id, id) ON DELETE SET NULL (parent_id),
    CHECK (parent_id IS DISTINCT FROM id)
);

CREATE TABLE anumate.team_members (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    team_id uuid NOT NULL,
    user_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, team_id, user_id),
    FOREIGN KEY (tenant_id, team_id) REFERENCES anumate.teams (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES anumate.users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX team_members_user ON anumate.team_members (tenant_id, user_id);

CREATE TABLE anumate.roles (
    tenant_id uuid NOT NULL REFERENCES anumate.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL,
    permissions text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

ALTER TABLE anumate.users ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE anumate.teams ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE anumate.team_members ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE anumate.roles ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON anumate.users
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON anumate.teams
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON anumate.team_members
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON anumate.roles
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON anumate.users, anumate.teams, anumate.roles TO anumate_app;
GRANT SELECT, INSERT, DELETE ON anumate.team_members TO anumate_app;
GRANT SELECT ON anumate.users, anumate.teams, anumate.team_members, anumate.roles TO anumate_readonly;
