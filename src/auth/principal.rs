//! The [`Principal`]: who a request acts as, with the effective permissions
//! computed from the current roles and grants.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::rbac;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Shared, immutable snapshot (cached between requests until a change).
    pub inner: Arc<PrincipalData>,
}

/// What is known about a caller.
#[derive(Debug)]
pub struct PrincipalData {
    /// User id.
    pub user_id: String,
    /// User e-mail.
    pub email: String,
    /// User display name.
    pub name: String,
    /// Operator account.
    pub platform_admin: bool,
    /// RFC 3339.
    pub created_at: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Tenant slug.
    pub tenant_slug: String,
    /// Tenant display name.
    pub tenant_name: String,
    /// Role names, sorted.
    pub roles: Vec<String>,
    /// Effective permissions, sorted.
    pub permissions: BTreeSet<String>,
    /// `/api/auth/me` answer, serialized once per snapshot.
    pub me_json: bytes::Bytes,
}

impl Principal {
    /// Whether the caller holds `permission`.
    pub fn can(&self, permission: &str) -> bool {
        self.inner.permissions.contains(permission)
    }

    /// Whether the caller has the SUPER_ADMIN role.
    pub fn is_super_admin(&self) -> bool {
        self.inner.roles.iter().any(|r| r == rbac::SUPER_ADMIN)
    }

    /// User id.
    pub fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// Tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.inner.tenant_id
    }

    /// Tenant slug.
    pub fn tenant_slug(&self) -> &str {
        &self.inner.tenant_slug
    }
}
