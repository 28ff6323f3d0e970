//! Accounts: the core records every plugin stands on — tenants, users,
//! roles, grants, sessions and the audit log — with their rules (validation,
//! permission checks, no privilege escalation, tenant isolation). Each
//! operation is one write transaction; every change to who-may-do-what
//! invalidates the principal cache before the answer leaves.

mod audit;
mod bootstrap;
mod error;
mod hashing;
mod principals;
mod roles;
mod sessions;
mod tenants;
mod users;

pub use bootstrap::{BootstrapOutcome, sync_core_permissions};
pub use error::ServiceError;
pub use roles::{NewRole, RolePatch};
pub use sessions::{LoginRequest, Session};
pub use tenants::{NewTenant, NewTenantAdmin, TenantPatch};
pub use users::{NewUser, UserPatch};

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Principal;
use crate::auth::ratelimit::LoginLimiter;
use crate::auth::token::TokenKeys;
use crate::plugins::Registry;
use crate::storage::Db;

use hashing::HashPool;
use principals::PrincipalCache;

/// A page request: `?limit&offset`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// 1..=500.
    pub limit: u32,
    /// 0..
    pub offset: u32,
}

/// A page of results with the total count.
#[derive(Debug, serde::Serialize)]
pub struct Paged<T> {
    /// This page.
    pub items: Vec<T>,
    /// Matching rows in all pages.
    pub total: u64,
    /// Echo of the request.
    pub limit: u32,
    /// Echo of the request.
    pub offset: u32,
}

/// The accounts service; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    keys: TokenKeys,
    refresh_ttl: Duration,
    pinned_tenant: Option<String>,
    limiter: LoginLimiter,
    cache: PrincipalCache,
    /// Hash checked when no account matches, so that costs the same time.
    dummy_hash: Arc<std::sync::OnceLock<String>>,
    /// Dedicated low-priority threads for argon2 (one hash per thread at once).
    hashing: HashPool,
    /// Loaded plugins (new tenants get the `default_install` ones).
    registry: Registry,
}

impl Accounts {
    /// Build the service over an open, migrated database.
    pub fn new(
        db: Db,
        keys: TokenKeys,
        refresh_ttl: Duration,
        pinned_tenant: Option<String>,
        registry: Registry,
    ) -> Accounts {
        let permits = std::thread::available_parallelism().map_or(2, usize::from);
        let hashing = HashPool::new(permits);
        let dummy_hash = Arc::new(std::sync::OnceLock::new());
        let warm = Arc::clone(&dummy_hash);
        hashing.submit(move || {
            warm.get_or_init(crate::auth::password::dummy_hash);
        });
        Accounts {
            inner: Arc::new(Inner {
                db,
                keys,
                refresh_ttl,
                pinned_tenant,
                limiter: LoginLimiter::default(),
                cache: PrincipalCache::default(),
                dummy_hash,
                hashing,
                registry,
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Hash a password on a hashing thread.
    async fn hash_password(&self, password: String) -> Result<String, ServiceError> {
        Ok(self
            .inner
            .hashing
            .run(move || crate::auth::password::hash(&password))
            .await?)
    }

    /// Verify a password against hashes on a hashing thread; which matched.
    /// With no hashes, one verification against a dummy hash still runs.
    async fn verify_passwords(
        &self,
        password: String,
        hashes: Vec<String>,
    ) -> Result<Vec<bool>, ServiceError> {
        let dummy = Arc::clone(&self.inner.dummy_hash);
        Ok(self
            .inner
            .hashing
            .run(move || {
                if hashes.is_empty() {
                    let stand_in = dummy.get_or_init(crate::auth::password::dummy_hash);
                    let _ = crate::auth::password::verify(&password, stand_in);
                }
                hashes
                    .iter()
                    .map(|h| crate::auth::password::verify(&password, h))
                    .collect()
            })
            .await?)
    }

    /// Drop every cached principal: called after any change to users, roles,
    /// grants, tenants or the catalog, before the answer is sent.
    pub fn invalidate_principals(&self) {
        self.inner.cache.invalidate();
    }
}

/// Require a permission of the caller.
fn require(actor: &Principal, permission: &str) -> Result<(), ServiceError> {
    if actor.can(permission) {
        Ok(())
    } else {
        Err(ServiceError::missing_permission(permission))
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
