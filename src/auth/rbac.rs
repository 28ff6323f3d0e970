//! Role-based access control: the core permissions, the built-in roles and
//! their seeded grants, and the rule that computes effective permissions.

use std::collections::BTreeSet;

/// Implicitly holds every permission, including ones registered later.
pub const SUPER_ADMIN: &str = "SUPER_ADMIN";
/// Seeded with every core permission.
pub const ADMIN: &str = "ADMIN";
/// Seeded with none (plugins seed theirs).
pub const EMPLOYEE: &str = "EMPLOYEE";
/// Seeded with none (plugins seed theirs).
pub const VIEWER: &str = "VIEWER";

/// The built-in roles with their descriptions.
pub const BUILTIN_ROLES: [(&str, &str); 4] = [
    (SUPER_ADMIN, "Every permission, always"),
    (ADMIN, "Manages users, roles, plugins and the audit log"),
    (EMPLOYEE, "Works with plugin data"),
    (VIEWER, "Reads plugin data"),
];

/// See users.
pub const USERS_VIEW: &str = "USERS_VIEW";
/// Create, change and delete users.
pub const USERS_MANAGE: &str = "USERS_MANAGE";
/// See roles and their permissions.
pub const ROLES_VIEW: &str = "ROLES_VIEW";
/// Create, change and delete roles and grants.
pub const ROLES_MANAGE: &str = "ROLES_MANAGE";
/// See plugins.
pub const PLUGINS_VIEW: &str = "PLUGINS_VIEW";
/// Install, uninstall and configure plugins.
pub const PLUGINS_MANAGE: &str = "PLUGINS_MANAGE";
/// Read the audit log.
pub const AUDIT_VIEW: &str = "AUDIT_VIEW";

/// Core permissions with descriptions; source `core`.
pub const CORE_PERMISSIONS: [(&str, &str); 7] = [
    (USERS_VIEW, "See users"),
    (USERS_MANAGE, "Create, change and delete users"),
    (ROLES_VIEW, "See roles and their permissions"),
    (
        ROLES_MANAGE,
        "Create, change and delete roles and their permissions",
    ),
    (PLUGINS_VIEW, "See plugins and their health"),
    (PLUGINS_MANAGE, "Install, uninstall and configure plugins"),
    (AUDIT_VIEW, "Read the audit log"),
];

/// Whether `name` is a built-in role.
pub fn is_builtin_role(name: &str) -> bool {
    BUILTIN_ROLES.iter().any(|(n, _)| *n == name)
}

/// Grants seeded into a new tenant's built-in role.
pub fn seeded_grants(role: &str) -> Vec<String> {
    if role == ADMIN {
        CORE_PERMISSIONS
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect()
    } else {
        Vec::new()
    }
}

/// Effective permissions: everything grantable for a SUPER_ADMIN, otherwise
/// the union of the roles' explicit grants.
pub fn effective_permissions(
    roles: &[String],
    grants: Vec<String>,
    catalog: impl IntoIterator<Item = String>,
) -> BTreeSet<String> {
    if roles.iter().any(|r| r == SUPER_ADMIN) {
        catalog.into_iter().collect()
    } else {
        grants.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn super_admin_gets_whole_catalog() {
        let catalog = vec!["A".to_owned(), "B".to_owned()];
        let p = effective_permissions(&[SUPER_ADMIN.to_owned()], vec![], catalog.clone());
        assert_eq!(p.len(), 2);
        let p = effective_permissions(&[ADMIN.to_owned()], vec!["B".into()], catalog);
        assert_eq!(p.into_iter().collect::<Vec<_>>(), vec!["B".to_owned()]);
    }

    #[test]
    fn admin_seeded_with_core_only() {
        assert_eq!(seeded_grants(ADMIN).len(), CORE_PERMISSIONS.len());
        assert!(seeded_grants(EMPLOYEE).is_empty());
    }
}
