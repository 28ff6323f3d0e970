-- Plugins: the schema each plugin's tables were last brought to, the plugin
-- migrations applied, and per-tenant installation state, seeded grants and
-- settings. Entity tables themselves are created from manifests.

CREATE TABLE plugin_schemas (
    plugin      TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    schema      TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);

CREATE TABLE plugin_migrations (
    plugin      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    applied_at  TEXT NOT NULL,
    PRIMARY KEY (plugin, version)
);

CREATE TABLE plugin_installs (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin        TEXT NOT NULL,
    status        TEXT NOT NULL,
    installed_at  TEXT,
    installed_by  TEXT,
    updated_at    TEXT NOT NULL,
    error         TEXT,
    PRIMARY KEY (tenant_id, plugin)
);

-- A grant is seeded into a tenant once; revoking it later is respected.
CREATE TABLE plugin_grant_seeds (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin      TEXT NOT NULL,
    role        TEXT NOT NULL,
    permission  TEXT NOT NULL,
    seeded_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, role, permission)
);

CREATE TABLE plugin_settings (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin, key)
);
