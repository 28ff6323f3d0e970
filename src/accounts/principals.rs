//! Turning a bearer token into a [`Principal`], cheaply: verified JWT, then a
//! per-user snapshot cached until the next change (an epoch counter bumped by
//! every accounts write). Permissions are therefore evaluated per request
//! without a database round trip, and a grant change applies on the very next
//! request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::json;

use super::{Accounts, ServiceError};
use crate::auth::principal::{Principal, PrincipalData};
use crate::auth::rbac;
use crate::auth::token::TokenError;
use crate::storage::{StorageError, Tx};

const MAX_CACHED: usize = 100_000;

/// Snapshots by user id, valid while their epoch is current.
#[derive(Default)]
pub(super) struct PrincipalCache {
    epoch: AtomicU64,
    map: RwLock<rustc_hash::FxHashMap<String, (u64, Arc<PrincipalData>)>>,
}

impl PrincipalCache {
    pub(super) fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn get(&self, user_id: &str, epoch: u64) -> Option<Arc<PrincipalData>> {
        let map = self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(user_id)
            .filter(|(e, _)| *e == epoch)
            .map(|(_, p)| Arc::clone(p))
    }

    fn put(&self, epoch: u64, data: Arc<PrincipalData>) {
        let mut map = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(data.user_id.clone(), (epoch, data));
    }
}

impl Accounts {
    /// Authenticate a bearer token: 401 unless the signature, expiry, user,
    /// tenant and their `active` flags all check out now.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ServiceError> {
        let claims = self.inner.keys.verify(token).map_err(|e| match e {
            TokenError::Expired => ServiceError::Unauthorized("access token expired".into()),
            TokenError::Invalid => ServiceError::Unauthorized("invalid access token".into()),
        })?;
        // Read the epoch before loading: a change committed meanwhile bumps it
        // and makes this snapshot stale at once.
        let epoch = self.inner.cache.epoch.load(Ordering::SeqCst);
        if let Some(data) = self.inner.cache.get(&claims.sub, epoch) {
            if data.tenant_id == claims.tid {
                return Ok(Principal { inner: data });
            }
            return Err(invalid_token());
        }
        let (sub, tid) = (claims.sub.clone(), claims.tid.clone());
        let loaded = self
            .inner
            .db
            .read(move |tx| load_principal(tx, &sub, &tid))
            .await?;
        let data = Arc::new(loaded.ok_or_else(invalid_token)?);
        self.inner.cache.put(epoch, Arc::clone(&data));
        Ok(Principal { inner: data })
    }
}

fn invalid_token() -> ServiceError {
    ServiceError::Unauthorized("invalid access token".into())
}

/// Effective permissions of a user as stored now (inside a transaction).
pub(super) fn effective_permissions(
    tx: &Tx<'_>,
    user_id: &str,
    roles: &[String],
) -> Result<std::collections::BTreeSet<String>, StorageError> {
    let grants = tx.grants_of_user(user_id)?;
    let catalog = if roles.iter().any(|r| r == rbac::SUPER_ADMIN) {
        tx.list_permissions(false)?
            .into_iter()
            .map(|p| p.name)
            .collect()
    } else {
        Vec::new()
    };
    Ok(rbac::effective_permissions(roles, grants, catalog))
}

/// Load a caller's snapshot; `None` if the user is gone, belongs to another
/// tenant, or either is inactive.
fn load_principal(
    tx: &Tx<'_>,
    user_id: &str,
    tenant_id: &str,
) -> Result<Option<PrincipalData>, ServiceError> {
    let Some(user) = tx.user_by_id(tenant_id, user_id)? else {
        return Ok(None);
    };
    let Some(tenant) = tx.tenant_by_id(tenant_id)? else {
        return Ok(None);
    };
    if !user.active || !tenant.active {
        return Ok(None);
    }
    let permissions = effective_permissions(tx, &user.id, &user.roles)?;
    let me = json!({
        "user": user,
        "tenant": {"id": tenant.id, "slug": tenant.slug, "name": tenant.name},
        "roles": user.roles,
        "permissions": permissions,
    });
    let me_json = bytes::Bytes::from(
        serde_json::to_vec(&me).map_err(|_| StorageError::Corrupt("principal"))?,
    );
    Ok(Some(PrincipalData {
        user_id: user.id,
        email: user.email,
        name: user.name,
        platform_admin: user.platform_admin,
        created_at: user.created_at,
        tenant_id: tenant.id,
        tenant_slug: tenant.slug,
        tenant_name: tenant.name,
        roles: user.roles,
        permissions,
        me_json,
    }))
}
