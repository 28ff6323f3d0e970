//! Recording to and reading the audit log.

use serde_json::Value;

use super::{Accounts, Page, Paged, ServiceError, new_id, require};
use crate::auth::{Principal, rbac};
use crate::storage::{AuditEntry, NewAuditEntry, StorageError, Tx, now_rfc3339};

/// Record one change in a tenant's log, inside the change's transaction.
pub(super) fn record(
    tx: &Tx<'_>,
    tenant_id: &str,
    actor: Option<&str>,
    action: &str,
    target: (&str, &str),
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), StorageError> {
    tx.insert_audit(
        &new_id(),
        &now_rfc3339(),
        &NewAuditEntry {
            tenant_id: tenant_id.to_owned(),
            actor_id: actor.map(str::to_owned),
            action: action.to_owned(),
            target_type: target.0.to_owned(),
            target_id: Some(target.1.to_owned()),
            before,
            after,
        },
    )
}

impl Accounts {
    /// `GET /api/audit`: the caller's tenant's log, newest first.
    pub async fn list_audit(
        &self,
        actor: &Principal,
        action: Option<String>,
        page: Page,
    ) -> Result<Paged<AuditEntry>, ServiceError> {
        require(actor, rbac::AUDIT_VIEW)?;
        let tenant = actor.tenant_id().to_owned();
        let (items, total) = self
            .inner
            .db
            .read(move |tx| tx.list_audit(&tenant, action.as_deref(), page.limit, page.offset))
            .await
            .map_err(ServiceError::from)?;
        Ok(Paged {
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        })
    }
}
