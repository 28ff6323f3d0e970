//! First start: the core permission catalog, then — when no tenant exists —
//! the default (or pinned) tenant with a SUPER_ADMIN platform admin. Running
//! it again changes nothing.

use super::tenants::{NewTenant, NewTenantAdmin, create_tenant_tx, validate_new_tenant};
use super::{Accounts, ServiceError};
use crate::auth::rbac;
use crate::storage::{StorageError, Tx};

/// What first start did.
#[derive(Debug)]
pub enum BootstrapOutcome {
    /// Tenants existed already; nothing was created.
    AlreadyInitialised,
    /// A tenant and its admin were created.
    Created {
        /// Tenant slug.
        tenant: String,
        /// Admin e-mail.
        email: String,
        /// The generated password, when none was configured (printed once).
        generated_password: Option<String>,
    },
}

/// Register the core permissions in the catalog (idempotent).
pub fn sync_core_permissions(tx: &Tx<'_>) -> Result<(), StorageError> {
    for (name, description) in rbac::CORE_PERMISSIONS {
        tx.upsert_permission(name, description, "core")?;
    }
    Ok(())
}

impl Accounts {
    /// Sync the core catalog and create the first tenant if there is none.
    pub async fn bootstrap(
        &self,
        tenant_slug: Option<String>,
        admin_email: Option<String>,
        admin_password: Option<String>,
    ) -> Result<BootstrapOutcome, ServiceError> {
        self.inner.db.write(sync_core_permissions).await?;
        let slug = tenant_slug.unwrap_or_else(|| "default".to_owned());
        let count = self.inner.db.read(|tx| tx.count_tenants()).await?;
        if count > 0 {
            let lookup = slug.clone();
            let pinned_exists = self
                .inner
                .db
                .read(move |tx| tx.tenant_by_slug(&lookup))
                .await?
                .is_some();
            if self.inner.pinned_tenant.is_some() && !pinned_exists {
                return Err(ServiceError::NotFound(format!(
                    "pinned tenant \"{slug}\" does not exist"
                )));
            }
            return Ok(BootstrapOutcome::AlreadyInitialised);
        }
        let generated = admin_password.is_none();
        let password = admin_password.unwrap_or_else(|| crate::auth::token::random_hex(12));
        let email = admin_email.unwrap_or_else(|| "admin@localhost".to_owned());
        let new = NewTenant {
            slug: slug.clone(),
            name: if slug == "default" {
                "Default".to_owned()
            } else {
                slug.clone()
            },
            admin: NewTenantAdmin {
                email: email.clone(),
                password: password.clone(),
                name: Some("Administrator".to_owned()),
            },
        };
        validate_new_tenant(&new)?;
        let hash = self.hash_password(password.clone()).await?;
        let registry = self.inner.registry.clone();
        self.inner
            .db
            .write(move |tx| create_tenant_tx(tx, &registry, &new, hash, true, None))
            .await?;
        self.invalidate_principals();
        Ok(BootstrapOutcome::Created {
            tenant: slug,
            email,
            generated_password: generated.then_some(password),
        })
    }
}
