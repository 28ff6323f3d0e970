//! Tenants: created with their built-in roles and SUPER_ADMIN; managed by
//! platform admins only.

use serde::Deserialize;
use serde_json::json;

use super::audit::record;
use super::{Accounts, Page, Paged, ServiceError, new_id};
use crate::auth::{Principal, rbac};
use crate::storage::{RoleRow, TenantRow, Tx, UserRow, now_rfc3339};
use crate::validation;

/// `POST /api/tenants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// `[a-z0-9][a-z0-9-]{1,39}`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The tenant's first SUPER_ADMIN.
    pub admin: NewTenantAdmin,
}

/// The first administrator of a new tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantAdmin {
    /// E-mail.
    pub email: String,
    /// Password (10 to 1,024 characters).
    pub password: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `PATCH /api/tenants/{id}` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Activate or deactivate.
    #[serde(default)]
    pub active: Option<bool>,
}

fn require_platform_admin(actor: &Principal) -> Result<(), ServiceError> {
    if actor.inner.platform_admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "only platform admins manage tenants".into(),
        ))
    }
}

/// Validate a new tenant's fields, all at once.
pub(super) fn validate_new_tenant(t: &NewTenant) -> Result<(), ServiceError> {
    let mut errors = Vec::new();
    if let Err(e) = validation::check_slug(&t.slug) {
        errors.push(e);
    }
    if let Err(e) = validation::check_name("name", &t.name, true) {
        errors.push(e);
    }
    if let Err(e) = validation::check_email(&t.admin.email) {
        errors.push(e.under("admin"));
    }
    if let Err(e) = validation::check_password(&t.admin.password) {
        errors.push(e.under("admin"));
    }
    if let Some(name) = &t.admin.name
        && let Err(e) = validation::check_name("name", name, false)
    {
        errors.push(e.under("admin"));
    }
    ServiceError::fields(errors)
}

/// Create a tenant with its built-in roles, seeded grants and SUPER_ADMIN
/// user, inside `tx`. Shared by the API, the CLI and first start.
pub(super) fn create_tenant_tx(
    tx: &Tx<'_>,
    registry: &crate::plugins::Registry,
    t: &NewTenant,
    admin_hash: String,
    admin_platform: bool,
    actor: Option<&Principal>,
) -> Result<TenantRow, ServiceError> {
    if tx.tenant_by_slug(&t.slug)?.is_some() {
        return Err(ServiceError::Conflict(format!(
            "tenant slug \"{}\" is taken",
            t.slug
        )));
    }
    let now = now_rfc3339();
    let tenant = TenantRow {
        id: new_id(),
        slug: t.slug.clone(),
        name: t.name.trim().to_owned(),
        active: true,
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    tx.insert_tenant(&tenant)?;
    let mut super_admin_role = String::new();
    for (name, description) in rbac::BUILTIN_ROLES {
        let role = RoleRow {
            id: new_id(),
            tenant_id: tenant.id.clone(),
            name: name.to_owned(),
            description: description.to_owned(),
            builtin: true,
            permissions: Vec::new(),
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        tx.insert_role(&role)?;
        tx.set_role_grants(&role.id, &rbac::seeded_grants(name))?;
        if name == rbac::SUPER_ADMIN {
            super_admin_role.clone_from(&role.id);
        }
    }
    let admin = UserRow {
        id: new_id(),
        tenant_id: tenant.id.clone(),
        email: validation::normalize_email(&t.admin.email),
        name: t.admin.name.clone().unwrap_or_default().trim().to_owned(),
        password_hash: admin_hash,
        roles: vec![rbac::SUPER_ADMIN.to_owned()],
        active: true,
        platform_admin: admin_platform,
        created_at: now.clone(),
        updated_at: now,
    };
    tx.insert_user(&admin)?;
    tx.set_user_roles(&admin.id, &[super_admin_role])?;
    crate::plugins::install::install_defaults(tx, registry, &tenant.id)?;
    let after = json!({"tenant": tenant, "admin": admin});
    let actor_id = actor.map(Principal::user_id);
    record(
        tx,
        &tenant.id,
        actor_id,
        "tenant.create",
        ("tenant", &tenant.id),
        None,
        Some(after.clone()),
    )?;
    if let Some(actor) = actor {
        record(
            tx,
            actor.tenant_id(),
            actor_id,
            "tenant.create",
            ("tenant", &tenant.id),
            None,
            Some(after),
        )?;
    }
    Ok(tenant)
}

impl Accounts {
    /// Create a tenant (API: platform admins; CLI: `actor` is `None`).
    pub async fn create_tenant(
        &self,
        actor: Option<&Principal>,
        t: NewTenant,
    ) -> Result<TenantRow, ServiceError> {
        if let Some(actor) = actor {
            require_platform_admin(actor)?;
        }
        validate_new_tenant(&t)?;
        let hash = self.hash_password(t.admin.password.clone()).await?;
        let actor = actor.cloned();
        let registry = self.inner.registry.clone();
        let tenant = self
            .inner
            .db
            .write(move |tx| create_tenant_tx(tx, &registry, &t, hash, false, actor.as_ref()))
            .await?;
        self.invalidate_principals();
        Ok(tenant)
    }

    /// Every tenant.
    pub async fn list_tenants(
        &self,
        actor: &Principal,
        page: Page,
    ) -> Result<Paged<TenantRow>, ServiceError> {
        require_platform_admin(actor)?;
        let (items, total) = self
            .inner
            .db
            .read(move |tx| tx.list_tenants(page.limit, page.offset))
            .await
            .map_err(ServiceError::from)?;
        Ok(Paged {
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        })
    }

    /// One tenant.
    pub async fn get_tenant(
        &self,
        actor: &Principal,
        id: String,
    ) -> Result<TenantRow, ServiceError> {
        require_platform_admin(actor)?;
        self.inner
            .db
            .read(move |tx| tx.tenant_by_id(&id))
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::NotFound("no such tenant".into()))
    }

    /// Rename, activate or deactivate a tenant.
    pub async fn update_tenant(
        &self,
        actor: &Principal,
        id: String,
        patch: TenantPatch,
    ) -> Result<TenantRow, ServiceError> {
        require_platform_admin(actor)?;
        if let Some(name) = &patch.name {
            validation::check_name("name", name, true).map_err(ServiceError::field)?;
        }
        if patch.active == Some(false) && id == actor.tenant_id() {
            return Err(ServiceError::BadRequest(
                "you cannot deactivate your own tenant".into(),
            ));
        }
        let actor = actor.clone();
        let tenant = self
            .inner
            .db
            .write(move |tx| -> Result<TenantRow, ServiceError> {
                let before = tx
                    .tenant_by_id(&id)?
                    .ok_or_else(|| ServiceError::NotFound("no such tenant".into()))?;
                let mut after = before.clone();
                if let Some(name) = patch.name {
                    after.name = name.trim().to_owned();
                }
                if let Some(active) = patch.active {
                    after.active = active;
                }
                after.updated_at = now_rfc3339();
                tx.update_tenant(&after)?;
                for tenant_id in dedup2(actor.tenant_id(), &after.id) {
                    record(
                        tx,
                        tenant_id,
                        Some(actor.user_id()),
                        "tenant.update",
                        ("tenant", &after.id),
                        Some(json!(before)),
                        Some(json!(after)),
                    )?;
                }
                Ok(after)
            })
            .await?;
        self.invalidate_principals();
        Ok(tenant)
    }

    /// Delete a tenant and everything it owns.
    pub async fn delete_tenant(&self, actor: &Principal, id: String) -> Result<(), ServiceError> {
        require_platform_admin(actor)?;
        if id == actor.tenant_id() {
            return Err(ServiceError::BadRequest(
                "you cannot delete your own tenant".into(),
            ));
        }
        let actor = actor.clone();
        self.inner
            .db
            .write(move |tx| -> Result<(), ServiceError> {
                let before = tx
                    .tenant_by_id(&id)?
                    .ok_or_else(|| ServiceError::NotFound("no such tenant".into()))?;
                tx.delete_tenant(&id)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "tenant.delete",
                    ("tenant", &id),
                    Some(json!(before)),
                    None,
                )?;
                Ok(())
            })
            .await?;
        self.invalidate_principals();
        Ok(())
    }
}

fn dedup2<'a>(a: &'a str, b: &'a str) -> Vec<&'a str> {
    if a == b { vec![a] } else { vec![a, b] }
}
