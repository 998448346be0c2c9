--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: anumate; Type: SCHEMA; Schema: -; Owner: anumate_admin
--

CREATE SCHEMA anumate;

ALTER SCHEMA anumate OWNER TO anumate_admin;

--
-- Name: SCHEMA anumate; Type: COMMENT; Schema: -; Owner: anumate_admin
--

COMMENT ON SCHEMA anumate IS 'Anumate tenant data: every table carries tenant_id and is under forced row-level security';

--
-- Name: audit; Type: SCHEMA; Schema: -; Owner: anumate_admin
--

CREATE SCHEMA audit;

ALTER SCHEMA audit OWNER TO anumate_admin;

--
-- Name: SCHEMA audit; Type: COMMENT; Schema: -; Owner: anumate_admin
--

COMMENT ON SCHEMA audit IS 'Append-only audit trail (insert and read for the application role)';

--
-- Name: events; Type: SCHEMA; Schema: -; Owner: anumate_admin
--

CREATE SCHEMA events;

ALTER SCHEMA events OWNER TO anumate_admin;

--
-- Name: SCHEMA events; Type: COMMENT; Schema: -; Owner: anumate_admin
--

COMMENT ON SCHEMA events IS 'Transactional outbox of events to publish to NATS JetStream';

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: approvals; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.approvals (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    run_id uuid NOT NULL,
    approver_id uuid,
    decision text DEFAULT 'pending'::text NOT NULL,
    reason text,
    decided_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT approvals_decision_check CHECK ((decision = ANY (ARRAY['pending'::text, 'approved'::text, 'rejected'::text])))
);

ALTER TABLE ONLY anumate.approvals FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.approvals OWNER TO anumate_admin;

--
-- Name: capability_tokens; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.capability_tokens (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    token_sha256 bytea NOT NULL,
    run_id uuid,
    capabilities text[] DEFAULT '{}'::text[] NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT capability_tokens_token_sha256_check CHECK ((length(token_sha256) = 32))
);

ALTER TABLE ONLY anumate.capability_tokens FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.capability_tokens OWNER TO anumate_admin;

--
-- Name: capsules; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.capsules (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    definition jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT capsules_version_check CHECK ((version > 0))
);

ALTER TABLE ONLY anumate.capsules FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.capsules OWNER TO anumate_admin;

--
-- Name: connectors; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.connectors (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY anumate.connectors FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.connectors OWNER TO anumate_admin;

--
-- Name: plans; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.plans (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    capsule_id uuid NOT NULL,
    status text DEFAULT 'draft'::text NOT NULL,
    spec jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT plans_status_check CHECK ((status = ANY (ARRAY['draft'::text, 'ready'::text, 'archived'::text])))
);

ALTER TABLE ONLY anumate.plans FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.plans OWNER TO anumate_admin;

--
-- Name: roles; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.roles (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    permissions text[] DEFAULT '{}'::text[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY anumate.roles FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.roles OWNER TO anumate_admin;

--
-- Name: runs; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.runs (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    plan_id uuid NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT runs_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])))
);

ALTER TABLE ONLY anumate.runs FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.runs OWNER TO anumate_admin;

--
-- Name: run_overview; Type: VIEW; Schema: anumate; Owner: anumate_admin
--

CREATE VIEW anumate.run_overview WITH (security_invoker='true') AS
 SELECT r.tenant_id,
    r.id AS run_id,
    r.status,
    r.created_at,
    p.id AS plan_id,
    c.name AS capsule_name,
    c.version AS capsule_version
   FROM ((anumate.runs r
     JOIN anumate.plans p ON (((p.tenant_id = r.tenant_id) AND (p.id = r.plan_id))))
     JOIN anumate.capsules c ON (((c.tenant_id = p.tenant_id) AND (c.id = p.capsule_id))));

ALTER TABLE anumate.run_overview OWNER TO anumate_admin;

--
-- Name: team_members; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.team_members (
    tenant_id uuid NOT NULL,
    team_id uuid NOT NULL,
    user_id uuid NOT NULL
);

ALTER TABLE ONLY anumate.team_members FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.team_members OWNER TO anumate_admin;

--
-- Name: teams; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.teams (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    parent_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT teams_check CHECK ((parent_id IS DISTINCT FROM id))
);

ALTER TABLE ONLY anumate.teams FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.teams OWNER TO anumate_admin;

--
-- Name: tenants; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.tenants (
    id uuid NOT NULL,
    slug text NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tenants_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT tenants_slug_check CHECK (((length(slug) >= 1) AND (length(slug) <= 63)))
);

ALTER TABLE ONLY anumate.tenants FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.tenants OWNER TO anumate_admin;

--
-- Name: users; Type: TABLE; Schema: anumate; Owner: anumate_admin
--

CREATE TABLE anumate.users (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    display_name text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY anumate.users FORCE ROW LEVEL SECURITY;

ALTER TABLE anumate.users OWNER TO anumate_admin;

--
-- Name: events; Type: TABLE; Schema: audit; Owner: anumate_admin
--

CREATE TABLE audit.events (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    occurred_at timestamp with time zone DEFAULT now() NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    details jsonb DEFAULT '{}'::jsonb NOT NULL
);

ALTER TABLE ONLY audit.events FORCE ROW LEVEL SECURITY;

ALTER TABLE audit.events OWNER TO anumate_admin;

--
-- Name: outbox; Type: TABLE; Schema: events; Owner: anumate_admin
--

CREATE TABLE events.outbox (
    tenant_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    subject text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    published_at timestamp with time zone
);

ALTER TABLE ONLY events.outbox FORCE ROW LEVEL SECURITY;

ALTER TABLE events.outbox OWNER TO anumate_admin;

--
-- Name: _sqlx_migrations; Type: TABLE; Schema: public; Owner: anumate_admin
--

CREATE TABLE public._sqlx_migrations (
    version bigint NOT NULL,
    description text NOT NULL,
    installed_on timestamp with time zone DEFAULT now() NOT NULL,
    success boolean NOT NULL,
    checksum bytea NOT NULL,
    execution_time bigint NOT NULL
);

ALTER TABLE public._sqlx_migrations OWNER TO anumate_admin;

--
-- Name: approvals approvals_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.approvals
    ADD CONSTRAINT approvals_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: capability_tokens capability_tokens_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capability_tokens
    ADD CONSTRAINT capability_tokens_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: capability_tokens capability_tokens_tenant_id_token_sha256_key; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capability_tokens
    ADD CONSTRAINT capability_tokens_tenant_id_token_sha256_key UNIQUE (tenant_id, token_sha256);

--
-- Name: capsules capsules_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capsules
    ADD CONSTRAINT capsules_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: capsules capsules_tenant_id_name_version_key; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capsules
    ADD CONSTRAINT capsules_tenant_id_name_version_key UNIQUE (tenant_id, name, version);

--
-- Name: connectors connectors_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.connectors
    ADD CONSTRAINT connectors_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: connectors connectors_tenant_id_name_key; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.connectors
    ADD CONSTRAINT connectors_tenant_id_name_key UNIQUE (tenant_id, name);

--
-- Name: plans plans_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.plans
    ADD CONSTRAINT plans_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: roles roles_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.roles
    ADD CONSTRAINT roles_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: roles roles_tenant_id_name_key; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.roles
    ADD CONSTRAINT roles_tenant_id_name_key UNIQUE (tenant_id, name);

--
-- Name: runs runs_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: team_members team_members_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.team_members
    ADD CONSTRAINT team_members_pkey PRIMARY KEY (tenant_id, team_id, user_id);

--
-- Name: teams teams_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.teams
    ADD CONSTRAINT teams_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: teams teams_tenant_id_name_key; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.teams
    ADD CONSTRAINT teams_tenant_id_name_key UNIQUE (tenant_id, name);

--
-- Name: tenants tenants_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);

--
-- Name: tenants tenants_slug_key; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.tenants
    ADD CONSTRAINT tenants_slug_key UNIQUE (slug);

--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: users users_tenant_id_email_key; Type: CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.users
    ADD CONSTRAINT users_tenant_id_email_key UNIQUE (tenant_id, email);

--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: audit; Owner: anumate_admin
--

ALTER TABLE ONLY audit.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: events; Owner: anumate_admin
--

ALTER TABLE ONLY events.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (tenant_id, id);

--
-- Name: _sqlx_migrations _sqlx_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: anumate_admin
--

ALTER TABLE ONLY public._sqlx_migrations
    ADD CONSTRAINT _sqlx_migrations_pkey PRIMARY KEY (version);

--
-- Name: approvals_run; Type: INDEX; Schema: anumate; Owner: anumate_admin
--

CREATE INDEX approvals_run ON anumate.approvals USING btree (tenant_id, run_id);

--
-- Name: plans_capsule; Type: INDEX; Schema: anumate; Owner: anumate_admin
--

CREATE INDEX plans_capsule ON anumate.plans USING btree (tenant_id, capsule_id);

--
-- Name: runs_plan; Type: INDEX; Schema: anumate; Owner: anumate_admin
--

CREATE INDEX runs_plan ON anumate.runs USING btree (tenant_id, plan_id);

--
-- Name: team_members_user; Type: INDEX; Schema: anumate; Owner: anumate_admin
--

CREATE INDEX team_members_user ON anumate.team_members USING btree (tenant_id, user_id);

--
-- Name: events_tenant_time; Type: INDEX; Schema: audit; Owner: anumate_admin
--

CREATE INDEX events_tenant_time ON audit.events USING btree (tenant_id, occurred_at);

--
-- Name: outbox_unpublished; Type: INDEX; Schema: events; Owner: anumate_admin
--

CREATE INDEX outbox_unpublished ON events.outbox USING btree (tenant_id, created_at) WHERE (published_at IS NULL);

--
-- Name: approvals approvals_tenant_id_approver_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.approvals
    ADD CONSTRAINT approvals_tenant_id_approver_id_fkey FOREIGN KEY (tenant_id, approver_id) REFERENCES anumate.users(tenant_id, id) ON DELETE SET NULL (approver_id);

--
-- Name: approvals approvals_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.approvals
    ADD CONSTRAINT approvals_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: approvals approvals_tenant_id_run_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.approvals
    ADD CONSTRAINT approvals_tenant_id_run_id_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES anumate.runs(tenant_id, id) ON DELETE CASCADE;

--
-- Name: capability_tokens capability_tokens_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capability_tokens
    ADD CONSTRAINT capability_tokens_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: capability_tokens capability_tokens_tenant_id_run_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capability_tokens
    ADD CONSTRAINT capability_tokens_tenant_id_run_id_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES anumate.runs(tenant_id, id) ON DELETE CASCADE;

--
-- Name: capsules capsules_tenant_id_created_by_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capsules
    ADD CONSTRAINT capsules_tenant_id_created_by_fkey FOREIGN KEY (tenant_id, created_by) REFERENCES anumate.users(tenant_id, id) ON DELETE SET NULL (created_by);

--
-- Name: capsules capsules_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.capsules
    ADD CONSTRAINT capsules_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: connectors connectors_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.connectors
    ADD CONSTRAINT connectors_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: plans plans_tenant_id_capsule_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.plans
    ADD CONSTRAINT plans_tenant_id_capsule_id_fkey FOREIGN KEY (tenant_id, capsule_id) REFERENCES anumate.capsules(tenant_id, id) ON DELETE CASCADE;

--
-- Name: plans plans_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.plans
    ADD CONSTRAINT plans_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: roles roles_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.roles
    ADD CONSTRAINT roles_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: runs runs_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.runs
    ADD CONSTRAINT runs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: runs runs_tenant_id_plan_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.runs
    ADD CONSTRAINT runs_tenant_id_plan_id_fkey FOREIGN KEY (tenant_id, plan_id) REFERENCES anumate.plans(tenant_id, id) ON DELETE CASCADE;

--
-- Name: team_members team_members_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.team_members
    ADD CONSTRAINT team_members_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: team_members team_members_tenant_id_team_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.team_members
    ADD CONSTRAINT team_members_tenant_id_team_id_fkey FOREIGN KEY (tenant_id, team_id) REFERENCES anumate.teams(tenant_id, id) ON DELETE CASCADE;

--
-- Name: team_members team_members_tenant_id_user_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.team_members
    ADD CONSTRAINT team_members_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES anumate.users(tenant_id, id) ON DELETE CASCADE;

--
-- Name: teams teams_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.teams
    ADD CONSTRAINT teams_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: teams teams_tenant_id_parent_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.teams
    ADD CONSTRAINT teams_tenant_id_parent_id_fkey FOREIGN KEY (tenant_id, parent_id) REFERENCES anumate.teams(tenant_id, id) ON DELETE SET NULL (parent_id);

--
-- Name: users users_tenant_id_fkey; Type: FK CONSTRAINT; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE ONLY anumate.users
    ADD CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: events events_tenant_id_fkey; Type: FK CONSTRAINT; Schema: audit; Owner: anumate_admin
--

ALTER TABLE ONLY audit.events
    ADD CONSTRAINT events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: outbox outbox_tenant_id_fkey; Type: FK CONSTRAINT; Schema: events; Owner: anumate_admin
--

ALTER TABLE ONLY events.outbox
    ADD CONSTRAINT outbox_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES anumate.tenants(id) ON DELETE CASCADE;

--
-- Name: approvals; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.approvals ENABLE ROW LEVEL SECURITY;

--
-- Name: capability_tokens; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.capability_tokens ENABLE ROW LEVEL SECURITY;

--
-- Name: capsules; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.capsules ENABLE ROW LEVEL SECURITY;

--
-- Name: connectors; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.connectors ENABLE ROW LEVEL SECURITY;

--
-- Name: tenants control_plane; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY control_plane ON anumate.tenants TO anumate_admin USING (true) WITH CHECK (true);

--
-- Name: plans; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.plans ENABLE ROW LEVEL SECURITY;

--
-- Name: roles; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.roles ENABLE ROW LEVEL SECURITY;

--
-- Name: runs; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.runs ENABLE ROW LEVEL SECURITY;

--
-- Name: team_members; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.team_members ENABLE ROW LEVEL SECURITY;

--
-- Name: teams; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.teams ENABLE ROW LEVEL SECURITY;

--
-- Name: approvals tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.approvals USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: capability_tokens tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.capability_tokens USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: capsules tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.capsules USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: connectors tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.connectors USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: plans tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.plans USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: roles tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.roles USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: runs tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.runs USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: team_members tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.team_members USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: teams tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.teams USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: tenants tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.tenants USING ((id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: users tenant_isolation; Type: POLICY; Schema: anumate; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON anumate.users USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: tenants; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.tenants ENABLE ROW LEVEL SECURITY;

--
-- Name: users; Type: ROW SECURITY; Schema: anumate; Owner: anumate_admin
--

ALTER TABLE anumate.users ENABLE ROW LEVEL SECURITY;

--
-- Name: events; Type: ROW SECURITY; Schema: audit; Owner: anumate_admin
--

ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;

--
-- Name: events tenant_isolation; Type: POLICY; Schema: audit; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON audit.events USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: outbox; Type: ROW SECURITY; Schema: events; Owner: anumate_admin
--

ALTER TABLE events.outbox ENABLE ROW LEVEL SECURITY;

--
-- Name: outbox tenant_isolation; Type: POLICY; Schema: events; Owner: anumate_admin
--

CREATE POLICY tenant_isolation ON events.outbox USING ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid));

--
-- Name: SCHEMA anumate; Type: ACL; Schema: -; Owner: anumate_admin
--

GRANT USAGE ON SCHEMA anumate TO anumate_app;
GRANT USAGE ON SCHEMA anumate TO anumate_readonly;

--
-- Name: SCHEMA audit; Type: ACL; Schema: -; Owner: anumate_admin
--

GRANT USAGE ON SCHEMA audit TO anumate_app;
GRANT USAGE ON SCHEMA audit TO anumate_readonly;

--
-- Name: SCHEMA events; Type: ACL; Schema: -; Owner: anumate_admin
--

GRANT USAGE ON SCHEMA events TO anumate_app;
GRANT USAGE ON SCHEMA events TO anumate_readonly;

--
-- Name: TABLE approvals; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,UPDATE ON TABLE anumate.approvals TO anumate_app;
GRANT SELECT ON TABLE anumate.approvals TO anumate_readonly;

--
-- Name: TABLE capability_tokens; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE ON TABLE anumate.capability_tokens TO anumate_app;
GRANT SELECT ON TABLE anumate.capability_tokens TO anumate_readonly;

--
-- Name: COLUMN capability_tokens.revoked_at; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT UPDATE(revoked_at) ON TABLE anumate.capability_tokens TO anumate_app;

--
-- Name: TABLE capsules; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE ON TABLE anumate.capsules TO anumate_app;
GRANT SELECT ON TABLE anumate.capsules TO anumate_readonly;

--
-- Name: TABLE connectors; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE anumate.connectors TO anumate_app;
GRANT SELECT ON TABLE anumate.connectors TO anumate_readonly;

--
-- Name: TABLE plans; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE anumate.plans TO anumate_app;
GRANT SELECT ON TABLE anumate.plans TO anumate_readonly;

--
-- Name: TABLE roles; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE anumate.roles TO anumate_app;
GRANT SELECT ON TABLE anumate.roles TO anumate_readonly;

--
-- Name: TABLE runs; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,UPDATE ON TABLE anumate.runs TO anumate_app;
GRANT SELECT ON TABLE anumate.runs TO anumate_readonly;

--
-- Name: TABLE run_overview; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT ON TABLE anumate.run_overview TO anumate_app;
GRANT SELECT ON TABLE anumate.run_overview TO anumate_readonly;

--
-- Name: TABLE team_members; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE ON TABLE anumate.team_members TO anumate_app;
GRANT SELECT ON TABLE anumate.team_members TO anumate_readonly;

--
-- Name: TABLE teams; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE anumate.teams TO anumate_app;
GRANT SELECT ON TABLE anumate.teams TO anumate_readonly;

--
-- Name: TABLE tenants; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT ON TABLE anumate.tenants TO anumate_app;
GRANT SELECT ON TABLE anumate.tenants TO anumate_readonly;

--
-- Name: TABLE users; Type: ACL; Schema: anumate; Owner: anumate_admin
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE anumate.users TO anumate_app;
GRANT SELECT ON TABLE anumate.users TO anumate_readonly;

--
-- Name: TABLE events; Type: ACL; Schema: audit; Owner: anumate_admin
--

GRANT SELECT,INSERT ON TABLE audit.events TO anumate_app;
GRANT SELECT ON TABLE audit.events TO anumate_readonly;

--
-- Name: TABLE outbox; Type: ACL; Schema: events; Owner: anumate_admin
--

GRANT SELECT,INSERT ON TABLE events.outbox TO anumate_app;
GRANT SELECT ON TABLE events.outbox TO anumate_readonly;

--
-- Name: COLUMN outbox.published_at; Type: ACL; Schema: events; Owner: anumate_admin
--

GRANT UPDATE(published_at) ON TABLE events.outbox TO anumate_app;

--
-- Name: DEFAULT PRIVILEGES FOR FUNCTIONS; Type: DEFAULT ACL; Schema: -; Owner: anumate_admin
--

ALTER DEFAULT PRIVILEGES FOR ROLE anumate_admin REVOKE ALL ON FUNCTIONS  FROM PUBLIC;

--
-- PostgreSQL database dump complete
--

