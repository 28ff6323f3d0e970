//! Roles of a tenant, their grants, and the permission catalog.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::json;

use super::audit::record;
use super::users::check_keeps_roles_manage;
use super::{Accounts, Page, Paged, ServiceError, new_id, require};
use crate::auth::{Principal, rbac};
use crate::storage::{PermissionRow, RoleRow, Tx, now_rfc3339};
use crate::validation::{self, FieldError};

/// `POST /api/roles` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// `[A-Z][A-Z0-9_]{1,63}`, unique in the tenant.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /api/roles/{id}` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    /// New name (not for built-in roles).
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("no such role".into())
}

fn check_description(d: &str) -> Result<(), ServiceError> {
    if d.chars().count() > 1000 {
        return Err(ServiceError::field(FieldError::new(
            "description",
            "max_length",
            "must be at most 1000 characters",
        )));
    }
    Ok(())
}

/// SUPER_ADMIN shows its effective permissions: the whole catalog.
fn shown(tx: &Tx<'_>, mut role: RoleRow) -> Result<RoleRow, ServiceError> {
    if role.name == rbac::SUPER_ADMIN {
        role.permissions = tx
            .list_permissions(false)?
            .into_iter()
            .map(|p| p.name)
            .collect();
    }
    Ok(role)
}

impl Accounts {
    /// `GET /api/roles`: a page of roles (by name) with their permissions.
    pub async fn list_roles(
        &self,
        actor: &Principal,
        page: Page,
    ) -> Result<Paged<RoleRow>, ServiceError> {
        require(actor, rbac::ROLES_VIEW)?;
        let tenant = actor.tenant_id().to_owned();
        // A tenant has a handful of roles: page in memory.
        let all = self
            .inner
            .db
            .read(move |tx| -> Result<Vec<RoleRow>, ServiceError> {
                tx.list_roles(&tenant)?
                    .into_iter()
                    .map(|r| shown(tx, r))
                    .collect()
            })
            .await?;
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
            .collect();
        Ok(Paged {
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        })
    }

    /// `GET /api/roles/{id}`.
    pub async fn get_role(&self, actor: &Principal, id: String) -> Result<RoleRow, ServiceError> {
        require(actor, rbac::ROLES_VIEW)?;
        let tenant = actor.tenant_id().to_owned();
        self.inner
            .db
            .read(move |tx| -> Result<RoleRow, ServiceError> {
                let role = tx.role_by_id(&tenant, &id)?.ok_or_else(not_found)?;
                shown(tx, role)
            })
            .await
    }

    /// `POST /api/roles`.
    pub async fn create_role(
        &self,
        actor: &Principal,
        new: NewRole,
    ) -> Result<RoleRow, ServiceError> {
        require(actor, rbac::ROLES_MANAGE)?;
        let mut errors = Vec::new();
        if let Err(e) = validation::check_role_name(&new.name) {
            errors.push(e);
        }
        if let Some(d) = &new.description
            && let Err(ServiceError::Invalid { errors: e, .. }) = check_description(d)
        {
            errors.extend(e);
        }
        ServiceError::fields(errors)?;
        let actor = actor.clone();
        let role = self
            .inner
            .db
            .write(move |tx| -> Result<RoleRow, ServiceError> {
                if tx.role_by_name(actor.tenant_id(), &new.name)?.is_some() {
                    return Err(ServiceError::Conflict(format!(
                        "role \"{}\" already exists",
                        new.name
                    )));
                }
                let now = now_rfc3339();
                let role = RoleRow {
                    id: new_id(),
                    tenant_id: actor.tenant_id().to_owned(),
                    name: new.name,
                    description: new.description.unwrap_or_default(),
                    builtin: false,
                    permissions: Vec::new(),
                    created_at: now.clone(),
                    updated_at: now,
                };
                tx.insert_role(&role)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "role.create",
                    ("role", &role.id),
                    None,
                    Some(json!(role)),
                )?;
                Ok(role)
            })
            .await?;
        self.invalidate_principals();
        Ok(role)
    }

    /// `PATCH /api/roles/{id}`: built-in roles cannot be renamed.
    pub async fn update_role(
        &self,
        actor: &Principal,
        id: String,
        patch: RolePatch,
    ) -> Result<RoleRow, ServiceError> {
        require(actor, rbac::ROLES_MANAGE)?;
        if let Some(name) = &patch.name {
            validation::check_role_name(name).map_err(ServiceError::field)?;
        }
        if let Some(d) = &patch.description {
            check_description(d)?;
        }
        let actor = actor.clone();
        let role = self
            .inner
            .db
            .write(move |tx| -> Result<RoleRow, ServiceError> {
                let before = tx
                    .role_by_id(actor.tenant_id(), &id)?
                    .ok_or_else(not_found)?;
                let mut after = before.clone();
                if let Some(name) = patch.name
                    && name != before.name
                {
                    if before.builtin {
                        return Err(ServiceError::BadRequest(format!(
                            "built-in role {} cannot be renamed",
                            before.name
                        )));
                    }
                    if tx.role_by_name(actor.tenant_id(), &name)?.is_some() {
                        return Err(ServiceError::Conflict(format!(
                            "role \"{name}\" already exists"
                        )));
                    }
                    after.name = name;
                }
                if let Some(d) = patch.description {
                    after.description = d;
                }
                after.updated_at = now_rfc3339();
                tx.update_role(&after)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "role.update",
                    ("role", &after.id),
                    Some(json!(before)),
                    Some(json!(after)),
                )?;
                shown(tx, after)
            })
            .await?;
        self.invalidate_principals();
        Ok(role)
    }

    /// `DELETE /api/roles/{id}`: built-in roles cannot be deleted.
    pub async fn delete_role(&self, actor: &Principal, id: String) -> Result<(), ServiceError> {
        require(actor, rbac::ROLES_MANAGE)?;
        let actor = actor.clone();
        self.inner
            .db
            .write(move |tx| -> Result<(), ServiceError> {
                let before = tx
                    .role_by_id(actor.tenant_id(), &id)?
                    .ok_or_else(not_found)?;
                if before.builtin {
                    return Err(ServiceError::BadRequest(format!(
                        "built-in role {} cannot be deleted",
                        before.name
                    )));
                }
                tx.delete_role(actor.tenant_id(), &id)?;
                check_keeps_roles_manage(tx, &actor)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "role.delete",
                    ("role", &id),
                    Some(json!(before)),
                    None,
                )?;
                Ok(())
            })
            .await?;
        self.invalidate_principals();
        Ok(())
    }

    /// `GET /api/roles/{id}/permissions`.
    pub async fn role_permissions(
        &self,
        actor: &Principal,
        id: String,
    ) -> Result<Vec<String>, ServiceError> {
        Ok(self.get_role(actor, id).await?.permissions)
    }

    /// `PUT /api/roles/{id}/permissions`: replace a role's grants. Unknown
    /// names are a 400; granting what the caller lacks is a 403; losing the
    /// caller's own last path to ROLES_MANAGE is a 400.
    pub async fn set_role_permissions(
        &self,
        actor: &Principal,
        id: String,
        permissions: Vec<String>,
    ) -> Result<Vec<String>, ServiceError> {
        require(actor, rbac::ROLES_MANAGE)?;
        let actor = actor.clone();
        let granted = self
            .inner
            .db
            .write(move |tx| -> Result<Vec<String>, ServiceError> {
                let role = tx.role_by_id(actor.tenant_id(), &id)?.ok_or_else(not_found)?;
                if role.name == rbac::SUPER_ADMIN {
                    return Err(ServiceError::BadRequest(
                        "SUPER_ADMIN holds every permission implicitly; its grants cannot be changed"
                            .into(),
                    ));
                }
                let catalog: BTreeSet<String> = tx
                    .list_permissions(false)?
                    .into_iter()
                    .map(|p| p.name)
                    .collect();
                let wanted: BTreeSet<String> = permissions.into_iter().collect();
                let unknown: Vec<FieldError> = wanted
                    .iter()
                    .filter(|p| !catalog.contains(*p))
                    .map(|p| {
                        FieldError::new("permissions", "unknown", format!("unknown permission \"{p}\""))
                    })
                    .collect();
                ServiceError::fields(unknown)?;
                let before: BTreeSet<String> = role.permissions.iter().cloned().collect();
                if let Some(p) = wanted.difference(&before).find(|p| !actor.can(p)) {
                    return Err(ServiceError::Forbidden(format!(
                        "cannot grant permission {p}: you do not hold it"
                    )));
                }
                let list: Vec<String> = wanted.into_iter().collect();
                tx.set_role_grants(&role.id, &list)?;
                check_keeps_roles_manage(tx, &actor)?;
                record(
                    tx,
                    actor.tenant_id(),
                    Some(actor.user_id()),
                    "role.permissions.update",
                    ("role", &role.id),
                    Some(json!({"name": role.name, "permissions": role.permissions})),
                    Some(json!({"name": role.name, "permissions": list})),
                )?;
                Ok(list)
            })
            .await?;
        self.invalidate_principals();
        Ok(granted)
    }

    /// `GET /api/permissions`: the grantable catalog with each entry's source.
    pub async fn list_permissions(
        &self,
        actor: &Principal,
    ) -> Result<Vec<PermissionRow>, ServiceError> {
        require(actor, rbac::ROLES_VIEW)?;
        self.inner
            .db
            .read(|tx| tx.list_permissions(false))
            .await
            .map_err(ServiceError::from)
    }
}
