//! Custom routes (`[[routes]]`): the route's permission, the plugin
//! installed for the caller's tenant, then the script in one transaction —
//! read-only for GET, one write transaction otherwise — whose writes commit
//! only if the handler returns normally.

use std::sync::Arc;

use super::crud::{Writer, ensure_installed};
use super::manifest::RouteMethod;
use super::{PluginError, PluginVersion, Plugins};
use crate::auth::Principal;
use crate::runtime::routes::{RouteRequest, RouteResponse, run};
use crate::storage::Tx;

impl Plugins {
    /// Answer route `index` of `version` for `request`.
    pub async fn call_route(
        &self,
        actor: &Principal,
        version: Arc<PluginVersion>,
        index: usize,
        request: RouteRequest,
        request_id: Option<String>,
    ) -> Result<RouteResponse, PluginError> {
        let started = std::time::Instant::now();
        let plugin = version.manifest.name.clone();
        let route = &version.manifest.routes[index];
        let read_only = route.method == RouteMethod::Get;
        let result = if actor.can(&route.permission) {
            let req = request.to_value();
            let (actor, registry) = (actor.clone(), self.registry().clone());
            let work = move |tx: &Tx<'_>| {
                ensure_installed(tx, actor.tenant_id(), &version.manifest.name)?;
                let w = Writer {
                    tx,
                    registry: &registry,
                    tenant_id: actor.tenant_id(),
                    caller: Some(&actor),
                    request_id: request_id.as_deref(),
                };
                run(&w, &version, index, req)
            };
            if read_only {
                self.db().read(work).await
            } else {
                self.db().write(work).await
            }
        } else {
            Err(PluginError::missing_permission(&route.permission))
        };
        self.observe(&plugin, started, result)
    }
}
