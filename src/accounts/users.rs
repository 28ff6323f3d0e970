//! Users of a tenant: listing, creation, changes and deletion, without
//! privilege escalation (nobody hands out or takes over more than they hold).

use serde::Deserialize;
use serde_json::json;

use super::audit::record;
use super::principals::effective_permissions;
use super::{Accounts, Page, Paged, ServiceError, new_id, require};
use crate::auth::{Principal, rbac};
use crate::storage::{RoleRow, Tx, UserRow, now_rfc3339};
use crate::validation::{self, FieldError};

/// `POST /api/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// E-mail, unique in the tenant.
    pub email: String,
    /// Password (10 to 1,024 characters).
    pub password: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `PATCH /api/users/{id}` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New password.
    #[serde(default)]
    pub password: Option<String>,
    /// Replacement role names.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Activate or deactivate.
    #[serde(default)]
    pub active: Option<bool>,
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("no such user".into())
}

/// Resolve role names of a tenant; unknown names are a 400 naming them.
fn resolve_roles(
    tx: &Tx<'_>,
    tenant_id: &str,
    names: &[String],
) -> Result<Vec<RoleRow>, ServiceError> {
    let mut roles = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match tx.role_by_name(tenant_id, name)? {
            Some(r) => {
                if !roles.iter().any(|x: &RoleRow| x.id == r.id) {
                    roles.push(r);
                }
            }
            None => errors.push(FieldError::new(
                "roles",
                "unknown",
                format!("unknown role \"{name}\""),
            )),
        }
    }
    ServiceError::fields(errors)?;
    Ok(roles)
}

/// A caller may only hand out roles whose permissions it holds itself.
fn check_may_assign(actor: &Principal, roles: &[RoleRow]) -> Result<(), ServiceError> {
    for role in roles {
        if role.name == rbac::SUPER_ADMIN && !actor.is_super_admin() {
            return Err(ServiceError::Forbidden(
                "only a SUPER_ADMIN may assign the SUPER_ADMIN role".into(),
            ));
        }
        if let Some(p) = role.permissions.iter().find(|p| !actor.can(p)) {
            return Err(ServiceError::Forbidden(format!(
                "cannot assign role {}: missing permission {p}",
                role.name
            )));
        }
    }
    Ok(())
}

/// A caller may only change or delete users who hold no more than it does.
fn check_may_manage(tx: &Tx<'_>, actor: &Principal, target: &UserRow) -> Result<(), ServiceError> {
    if target.id == actor.user_id() {
        return Ok(());
    }
    if target.roles.iter().any(|r| r == rbac::SUPER_ADMIN) && !actor.is_super_admin() {
        return Err(ServiceError::Forbidden(
            "only a SUPER_ADMIN may change a SUPER_ADMIN user".into(),
        ));
    }
    let held = effective_permissions(tx, &target.id, &target.roles)?;
    if let Some(p) = held.iter().find(|p| !actor.can(p)) {
        return Err(ServiceError::Forbidden(format!(
            "cannot change a user who holds permission {p}, which you do not hold"
        )));
    }
    Ok(())
}

/// After a change, the caller must still hold ROLES_MANAGE if it did before.
pub(super) fn check_keeps_roles_manage(tx: &Tx<'_>, actor: &Principal) -> Result<(), ServiceError> {
    if !actor.can(rbac::ROLES_MANAGE) {
        return Ok(());
    }
    let still = match tx.user_by_id(actor.tenant_id(), actor.user_id())? {
        Some(me) if me.active => {
            effective_permissions(tx, &me.id, &me.roles)?.contains(rbac::ROLES_MANAGE)
        }
        _ => false,
    };
    if still {
        Ok(())
    } else {
        Err(ServiceError::BadRequest(
            "this change would remove your own last path to ROLES_MANAGE".into(),
        ))
    }
}

fn validate_new_user(u: &NewUser) -> Result<(), ServiceError> {
    let mut errors = Vec::new();
    if let Err(e) = validation::check_email(&u.email) {
        errors.push(e);
    }
    if let Err(e) = validation::check_password(&u.password) {
        errors.push(e);
    }
    if let Some(name) = &u.name
        && let Err(e) = validation::check_name("name", name, false)
    {
        errors.push(e);
    }
    ServiceError::fields(errors)
}

/// Insert a user with roles into a tenant (no permission checks).
fn insert_user_tx(
    tx: &Tx<'_>,
    tenant_id: &str,
    u: &NewUser,
    hash: String,
    platform_admin: bool,
    roles: &[RoleRow],
) -> Result<UserRow, ServiceError> {
    let email = validation::normalize_email(&u.email);
    if tx.user_by_email(tenant_id, &email)?.is_some() {
        return Err(ServiceError::Conflict(format!(
            "a user with email \"{email}\" already exists in this tenant"
        )));
    }
    let now = now_rfc3339();
    let mut names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
    names.sort();
    let user = UserRow {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        email,
        name: u.name.clone().unwrap_or_default().trim().to_owned(),
        password_hash: hash,
        roles: names,
        active: true,
        platform_admin,
        created_at: now.clone(),
        updated_at: now,
    };
    tx.insert_user(&user)?;
    let ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();
    tx.set_user_roles(&user.id, &ids)?;
    Ok(user)
}

impl Accounts {
    /// `GET /api/users`.
    pub async fn list_users(
        &self,
        actor: &Principal,
        page: Page,
    ) -> Result<Paged<UserRow>, ServiceError> {
        require(actor, rbac::USERS_VIEW)?;
        let tenant = actor.tenant_id().to_owned();
        let (items, total) = self
            .inner
            .db
            .read(move |tx| tx.list_users(&tenant, page.limit, page.offset))
            .await
            .map_err(ServiceError::from)?;
        Ok(Paged {
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        })
    }

    /// `POST /api/users`.
    pub async fn create_user(
        &self,
        actor: &Principal,
        u: NewUser,
    ) -> Result<UserRow, ServiceError> {
        require(actor, rbac::USERS_MANAGE)?;
        validate_new_user(&u)?;
        let hash = self.hash_password(u.password.clone()).await?;
        let actor = actor.clone();
        let user = self
            .inner
            .db
            .write(move |tx| -> Result<UserRow, ServiceError> {
                let roles = resolve_roles(tx, actor.tenant_id(), &u.roles)?;
                check_may_assign(&actor, &roles)?;
                let user = insert_user_tx(tx, actor.tenant_id(), &u, hash, false, &roles)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "user.create",
                    ("user", &user.id),
                    None,
                    Some(json!(user)),
                )?;
                Ok(user)
            })
            .await?;
        self.invalidate_principals();
        Ok(user)
    }

    /// `plinth user create`: a user in the tenant with this slug.
    pub async fn create_user_in(
        &self,
        tenant_slug: &str,
        u: NewUser,
        platform_admin: bool,
    ) -> Result<UserRow, ServiceError> {
        validate_new_user(&u)?;
        let hash = self.hash_password(u.password.clone()).await?;
        let slug = tenant_slug.to_owned();
        let user = self
            .inner
            .db
            .write(move |tx| -> Result<UserRow, ServiceError> {
                let tenant = tx.tenant_by_slug(&slug)?.ok_or_else(|| {
                    ServiceError::NotFound(format!("no tenant with slug \"{slug}\""))
                })?;
                let roles = resolve_roles(tx, &tenant.id, &u.roles)?;
                let user = insert_user_tx(tx, &tenant.id, &u, hash, platform_admin, &roles)?;
                record(
                    tx,
                    &tenant.id,
                    None,
                    "user.create",
                    ("user", &user.id),
                    None,
                    Some(json!(user)),
                )?;
                Ok(user)
            })
            .await?;
        self.invalidate_principals();
        Ok(user)
    }

    /// `GET /api/users/{id}`.
    pub async fn get_user(&self, actor: &Principal, id: String) -> Result<UserRow, ServiceError> {
        require(actor, rbac::USERS_VIEW)?;
        let tenant = actor.tenant_id().to_owned();
        self.inner
            .db
            .read(move |tx| tx.user_by_id(&tenant, &id))
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(not_found)
    }

    /// `PATCH /api/users/{id}`.
    pub async fn update_user(
        &self,
        actor: &Principal,
        id: String,
        patch: UserPatch,
    ) -> Result<UserRow, ServiceError> {
        require(actor, rbac::USERS_MANAGE)?;
        let mut errors = Vec::new();
        if let Some(name) = &patch.name
            && let Err(e) = validation::check_name("name", name, false)
        {
            errors.push(e);
        }
        if let Some(pw) = &patch.password
            && let Err(e) = validation::check_password(pw)
        {
            errors.push(e);
        }
        ServiceError::fields(errors)?;
        let new_hash = match &patch.password {
            Some(pw) => Some(self.hash_password(pw.clone()).await?),
            None => None,
        };
        let actor = actor.clone();
        let user = self
            .inner
            .db
            .write(move |tx| -> Result<UserRow, ServiceError> {
                let before = tx
                    .user_by_id(actor.tenant_id(), &id)?
                    .ok_or_else(not_found)?;
                check_may_manage(tx, &actor, &before)?;
                let mut after = before.clone();
                let now = now_rfc3339();
                if let Some(name) = patch.name {
                    after.name = name.trim().to_owned();
                }
                let mut revoke = false;
                if let Some(hash) = new_hash {
                    after.password_hash = hash;
                    revoke = true;
                }
                if let Some(active) = patch.active {
                    if !active && before.id == actor.user_id() {
                        return Err(ServiceError::BadRequest(
                            "you cannot deactivate yourself".into(),
                        ));
                    }
                    revoke |= !active;
                    after.active = active;
                }
                after.updated_at = now.clone();
                tx.update_user(&after)?;
                if let Some(names) = patch.roles {
                    let roles = resolve_roles(tx, actor.tenant_id(), &names)?;
                    let added: Vec<RoleRow> = roles
                        .iter()
                        .filter(|r| !before.roles.contains(&r.name))
                        .cloned()
                        .collect();
                    check_may_assign(&actor, &added)?;
                    let ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();
                    tx.set_user_roles(&after.id, &ids)?;
                    after.roles = tx.user_role_names(&after.id)?;
                }
                if revoke {
                    tx.revoke_user_refresh_tokens(&after.id, &now)?;
                }
                check_keeps_roles_manage(tx, &actor)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "user.update",
                    ("user", &after.id),
                    Some(json!(before)),
                    Some(json!(after)),
                )?;
                Ok(after)
            })
            .await?;
        self.invalidate_principals();
        Ok(user)
    }

    /// `DELETE /api/users/{id}`.
    pub async fn delete_user(&self, actor: &Principal, id: String) -> Result<(), ServiceError> {
        require(actor, rbac::USERS_MANAGE)?;
        if id == actor.user_id() {
            return Err(ServiceError::BadRequest(
                "you cannot delete yourself".into(),
            ));
        }
        let actor = actor.clone();
        self.inner
            .db
            .write(move |tx| -> Result<(), ServiceError> {
                let before = tx
                    .user_by_id(actor.tenant_id(), &id)?
                    .ok_or_else(not_found)?;
                check_may_manage(tx, &actor, &before)?;
                tx.delete_user(actor.tenant_id(), &id)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "user.delete",
                    ("user", &id),
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
