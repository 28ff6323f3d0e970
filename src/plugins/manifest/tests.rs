//! One bad manifest per rule, with the exact location and message asserted,
//! and the shipped example manifests parsed.

use super::*;

const FILE: &str = "plugin-manifests/shop.toml";

fn ok(text: &str) -> Manifest {
    parse(FILE, Some("shop"), text).unwrap_or_else(|errors| {
        panic!(
            "expected a valid manifest, got:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn errors(text: &str) -> Vec<String> {
    match parse(FILE, Some("shop"), text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

const HEAD: &str = "name = \"shop\"\nversion = \"1.0.0\"\n";

#[test]
fn the_shipped_examples_are_valid() {
    for (file, stem) in [
        (
            include_str!("../../../plugin-manifests/inventory.toml"),
            "inventory",
        ),
        (
            include_str!("../../../plugin-manifests/loyalty.toml"),
            "loyalty",
        ),
    ] {
        let m = parse(&format!("plugin-manifests/{stem}.toml"), Some(stem), file)
            .unwrap_or_else(|e| panic!("{stem}: {e:?}"));
        assert_eq!(m.name, stem);
        assert!(!m.entities.is_empty());
    }
    let inv = parse(
        "i.toml",
        Some("inventory"),
        include_str!("../../../plugin-manifests/inventory.toml"),
    )
    .expect("valid");
    let item = inv.entity("item").expect("item");
    assert_eq!(item.table, "inventory_item");
    assert_eq!(
        item.field("quantity").and_then(|f| f.default.clone()),
        Some(serde_json::json!(0))
    );
    assert_eq!(
        item.field("supplier")
            .and_then(|f| f.entity.clone())
            .as_deref(),
        Some("supplier")
    );
    assert_eq!(
        item.indexes,
        vec![
            vec!["sku".to_owned()],
            vec!["name".to_owned(), "quantity".to_owned()]
        ]
    );
    assert!(inv.default_install);
}

#[test]
fn the_reference_example_is_valid() {
    let doc = include_str!("../../../sdk-docs/manifest-reference.md");
    let start = doc.find("```toml\n").expect("toml block") + "```toml\n".len();
    let len = doc[start..].find("```").expect("end of block");
    let m = parse(
        "plugin-manifests/workshop.toml",
        Some("workshop"),
        &doc[start..start + len],
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(m.entities.len(), 2);
    let order = m.entity("order").expect("order");
    assert_eq!(order.permissions.delete, None);
    assert_eq!(order.fields.len(), 7, "one field of most types");
    assert_eq!(m.settings.len(), 2);
}

#[test]
fn the_design_example_is_valid() {
    let m = ok(&format!(
        "{HEAD}runtime = \"rhai\"\ndescription = \"d\"\ndefault_install = false\nrequires = []\n\
         [permissions]\nSHOP_VIEW = \"v\"\nSHOP_EDIT = \"e\"\n\
         [grants]\nADMIN = [\"SHOP_VIEW\", \"SHOP_EDIT\"]\nCLERK = [\"SHOP_VIEW\"]\n\
         [settings]\nthreshold = {{ type = \"integer\", default = 5, min = 0 }}\n\
         [entities.item]\npermissions = {{ list = \"SHOP_VIEW\", create = \"SHOP_EDIT\" }}\n\
         [entities.item.fields]\nname = {{ type = \"text\", required = true }}\n\
         [[routes]]\nmethod = \"POST\"\npath = \"/item/{{id}}/restock\"\npermission = \"SHOP_EDIT\"\nscript = \"restock.rhai\"\n"
    ));
    assert_eq!(m.routes.len(), 1);
    assert_eq!(m.routes[0].function, "handle");
    assert_eq!(
        m.entity("item").map(|e| e.permissions.read.clone()),
        Some(None)
    );
    assert_eq!(
        m.grants[1],
        ("CLERK".to_owned(), vec!["SHOP_VIEW".to_owned()])
    );
}

/// (manifest text, exact expected error line)
fn cases() -> Vec<(String, &'static str)> {
    vec![
        (
            "version = \"1.0.0\"\n".into(),
            "plugin-manifests/shop.toml:1:1: name: missing (expected the plugin name)",
        ),
        (
            "name = \"Shop\"\nversion = \"1.0.0\"\n".into(),
            "plugin-manifests/shop.toml:1:8: name: \"Shop\" is not a valid plugin name (expected [a-z][a-z0-9_-]{1,39})",
        ),
        (
            "name = \"users\"\nversion = \"1.0.0\"\n".into(),
            "plugin-manifests/shop.toml:1:8: name: \"users\" is reserved (reserved names: auth, tenants, users, roles, permissions, plugins, audit, admin, docs, openapi, health, metrics, static, api)",
        ),
        (
            "name = \"shops\"\nversion = \"1.0.0\"\n".into(),
            "plugin-manifests/shop.toml:1:8: name: \"shops\" does not match the file name (expected \"shop\")",
        ),
        (
            "name = \"shop\"\nversion = \"one\"\n".into(),
            "plugin-manifests/shop.toml:2:11: version: \"one\" is not a semantic version (expected e.g. 1.2.0)",
        ),
        (
            format!("{HEAD}runtime = \"python\"\n"),
            "plugin-manifests/shop.toml:3:11: runtime: unknown runtime \"python\" (expected rhai or lua)",
        ),
        (
            format!("{HEAD}defaults_install = true\n"),
            "plugin-manifests/shop.toml:3:1: defaults_install: unknown key (expected one of name, version, runtime, description, default_install, requires, permissions, grants, settings, entities, routes)",
        ),
        (
            format!("{HEAD}default_install = \"yes\"\n"),
            "plugin-manifests/shop.toml:3:19: default_install: expected true or false, found string",
        ),
        (
            format!("{HEAD}requires = [\"shop\"]\n"),
            "plugin-manifests/shop.toml:3:13: requires[0]: a plugin cannot require itself",
        ),
        (
            format!("{HEAD}[permissions]\nINVENTORY_VIEW = \"x\"\n"),
            "plugin-manifests/shop.toml:4:1: permissions.INVENTORY_VIEW: permission names must start with the plugin prefix (expected SHOP_NAME in [A-Z0-9_])",
        ),
        (
            format!("{HEAD}[permissions]\nSHOP_VIEW = 1\n"),
            "plugin-manifests/shop.toml:4:13: permissions.SHOP_VIEW: expected a description string, found integer",
        ),
        (
            format!("{HEAD}[permissions]\nSHOP_VIEW = \"v\"\n[grants]\nADMIN = [\"SHOP_EDIT\"]\n"),
            "plugin-manifests/shop.toml:6:10: grants.ADMIN[0]: permission \"SHOP_EDIT\" is not declared in [permissions]",
        ),
        (
            format!("{HEAD}[grants]\nclerk = []\n"),
            "plugin-manifests/shop.toml:4:1: grants.clerk: \"clerk\" is not a valid role name (expected [A-Z][A-Z0-9_]{1,63})",
        ),
        (
            format!("{HEAD}[settings]\nlimit = {{ type = \"int\" }}\n"),
            "plugin-manifests/shop.toml:4:1: settings.limit: unknown type \"int\" (expected one of text, integer, real, bool, datetime, uuid, json, enum, ref)",
        ),
        (
            format!("{HEAD}[settings]\nlimit = {{ type = \"integer\", default = \"5\" }}\n"),
            "plugin-manifests/shop.toml:4:39: settings.limit.default: invalid default: expected an integer",
        ),
        (
            format!("{HEAD}[settings]\nlimit = {{ type = \"integer\", required = true }}\n"),
            "plugin-manifests/shop.toml:4:29: settings.limit.required: unknown key (expected one of type, default, min, max, max_length, pattern, values)",
        ),
        (
            format!("{HEAD}[entities.item.fields]\nqty = {{ type = \"int\" }}\n"),
            "plugin-manifests/shop.toml:4:1: entities.item.fields.qty: unknown type \"int\" (expected one of text, integer, real, bool, datetime, uuid, json, enum, ref)",
        ),
        (
            format!("{HEAD}[entities.item.fields]\nid = {{ type = \"text\" }}\n"),
            "plugin-manifests/shop.toml:4:1: entities.item.fields.id: \"id\" is reserved (every entity has id, tenant_id, created_at, updated_at, created_by)",
        ),
        (
            format!("{HEAD}[entities.item.fields]\nQty = {{ type = \"integer\" }}\n"),
            "plugin-manifests/shop.toml:4:1: entities.item.fields.Qty: \"Qty\" is not a valid field name (expected [a-z][a-z0-9_]{0,62})",
        ),
        (
            format!(
                "{HEAD}[entities.item.fields]\nqty = {{ type = \"integer\", requird = true }}\n"
            ),
            "plugin-manifests/shop.toml:4:27: entities.item.fields.qty.requird: unknown key (expected one of type, required, unique, default, min, max, max_length, pattern, values, entity)",
        ),
        (
            format!(
                "{HEAD}[entities.item.fields]\nqty = {{ type = \"integer\", max_length = 5 }}\n"
            ),
            "plugin-manifests/shop.toml:4:40: entities.item.fields.qty.max_length: max_length applies to text fields only",
        ),
        (
            format!("{HEAD}[entities.item.fields]\nname = {{ type = \"text\", min = 1 }}\n"),
            "plugin-manifests/shop.toml:4:31: entities.item.fields.name.min: min applies to integer and real fields only",
        ),
        (
            format!(
                "{HEAD}[entities.item.fields]\nqty = {{ type = \"integer\", min = 5, max = 1 }}\n"
            ),
            "plugin-manifests/shop.toml:4:42: entities.item.fields.qty.max: max 1 is below min 5",
        ),
        (
            format!(
                "{HEAD}[entities.item.fields]\nsku = {{ type = \"text\", pattern = \"([\" }}\n"
            ),
            "plugin-manifests/shop.toml:4:34: entities.item.fields.sku.pattern: invalid regular expression: error: unclosed character class",
        ),
        (
            format!("{HEAD}[entities.item.fields]\ns = {{ type = \"enum\" }}\n"),
            "plugin-manifests/shop.toml:4:14: entities.item.fields.s.values: an enum needs a non-empty list of values",
        ),
        (
            format!(
                "{HEAD}[entities.item.fields]\ns = {{ type = \"enum\", values = [\"a\"], default = \"b\" }}\n"
            ),
            "plugin-manifests/shop.toml:4:48: entities.item.fields.s.default: invalid default: \"b\" is not one of a",
        ),
        (
            format!("{HEAD}[entities.item.fields]\nsup = {{ type = \"ref\" }}\n"),
            "plugin-manifests/shop.toml:4:16: entities.item.fields.sup.entity: a ref field needs entity = \"<entity of this plugin>\"",
        ),
        (
            format!(
                "{HEAD}[entities.item.fields]\nsup = {{ type = \"ref\", entity = \"supplier\" }}\n"
            ),
            "plugin-manifests/shop.toml:4:32: entities.item.fields.sup.entity: unknown entity \"supplier\" (this plugin has: item)",
        ),
        (
            format!("{HEAD}[entities.item.fields]\nt = {{ type = \"json\", unique = true }}\n"),
            "plugin-manifests/shop.toml:4:31: entities.item.fields.t.unique: unique is not supported for json fields",
        ),
        (
            format!(
                "{HEAD}[entities.item]\nindexes = [[\"nope\"]]\n[entities.item.fields]\nname = {{ type = \"text\" }}\n"
            ),
            "plugin-manifests/shop.toml:4:13: entities.item.indexes[0]: unknown field \"nope\" (entity item has: name)",
        ),
        (
            format!("{HEAD}[entities.item]\npermissions = {{ list = \"SHOP_VIEW\" }}\n"),
            "plugin-manifests/shop.toml:4:24: entities.item.permissions.list: permission \"SHOP_VIEW\" is not declared in [permissions]",
        ),
        (
            format!(
                "{HEAD}[permissions]\nSHOP_VIEW = \"v\"\n[entities.item]\npermissions = {{ browse = \"SHOP_VIEW\" }}\n"
            ),
            "plugin-manifests/shop.toml:6:17: entities.item.permissions.browse: unknown key (expected one of list, read, create, update, delete)",
        ),
        (
            format!("{HEAD}[entities.item]\ncolumns = {{}}\n"),
            "plugin-manifests/shop.toml:4:1: entities.item.columns: unknown key (expected one of permissions, indexes, fields)",
        ),
        (
            format!(
                "{HEAD}[[routes]]\nmethod = \"FETCH\"\npath = \"/x\"\npermission = \"USERS_VIEW\"\nscript = \"x.rhai\"\n"
            ),
            "plugin-manifests/shop.toml:4:10: routes[0].method: unknown method \"FETCH\" (expected GET, POST, PUT, PATCH or DELETE)",
        ),
        (
            format!(
                "{HEAD}[[routes]]\nmethod = \"GET\"\npath = \"x\"\npermission = \"USERS_VIEW\"\nscript = \"x.rhai\"\n"
            ),
            "plugin-manifests/shop.toml:5:8: routes[0].path: \"x\" must start with / (expected a path such as \"/item/{id}/restock\": segments of [A-Za-z0-9._~-] or {name})",
        ),
        (
            format!(
                "{HEAD}[[routes]]\nmethod = \"GET\"\npath = \"/x\"\npermission = \"SHOP_NOPE\"\nscript = \"x.rhai\"\n"
            ),
            "plugin-manifests/shop.toml:6:14: routes[0].permission: permission \"SHOP_NOPE\" is neither declared in [permissions] nor a core permission",
        ),
        (
            format!(
                "{HEAD}[[routes]]\nmethod = \"GET\"\npath = \"/x\"\npermission = \"USERS_VIEW\"\nscript = \"../x.rhai\"\n"
            ),
            "plugin-manifests/shop.toml:7:10: routes[0].script: \"../x.rhai\" is not a script file of this plugin (expected a file name ending in .rhai in scripts/<plugin>/, without folders)",
        ),
        (
            format!(
                "{HEAD}[[routes]]\nmethod = \"GET\"\npath = \"/x\"\npermission = \"USERS_VIEW\"\n"
            ),
            "plugin-manifests/shop.toml:3:1: routes[0].script: missing (expected a script file name)",
        ),
        (
            format!(
                "{HEAD}[entities.item.fields]\nname = {{ type = \"text\" }}\n[[routes]]\nmethod = \"GET\"\npath = \"/item/{{id}}\"\npermission = \"USERS_VIEW\"\nscript = \"x.rhai\"\n"
            ),
            "plugin-manifests/shop.toml:7:8: routes[0].path: GET /item/{id} collides with the generated routes of entity item",
        ),
        (
            format!(
                "{HEAD}[[routes]]\nmethod = \"GET\"\npath = \"/a/{{x}}\"\npermission = \"USERS_VIEW\"\nscript = \"x.rhai\"\n[[routes]]\nmethod = \"GET\"\npath = \"/a/b\"\npermission = \"USERS_VIEW\"\nscript = \"y.rhai\"\n"
            ),
            "plugin-manifests/shop.toml:10:8: routes[1].path: GET /a/b collides with routes[0] (/a/{x})",
        ),
        (
            format!("{HEAD}[entities.item\n"),
            "plugin-manifests/shop.toml:3:15: invalid TOML: invalid table header expected `.`, `]`",
        ),
    ]
}

#[test]
fn each_rule_is_reported_with_its_location() {
    let mut failures = Vec::new();
    for (text, expected) in cases() {
        let errors = errors(&text);
        if !errors.iter().any(|e| e == expected) {
            failures.push(format!(
                "expected\n  {expected}\ngot\n  {}",
                errors.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_errors_are_reported_not_only_the_first() {
    let errors = errors(&format!(
        "{HEAD}colour = 1\n[entities.item.fields]\na = {{ type = \"int\" }}\nb = {{ type = \"text\", min = 1 }}\n"
    ));
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn check_value_enforces_types_and_constraints() {
    let m = ok(&format!(
        "{HEAD}[entities.item.fields]\nq = {{ type = \"integer\", min = 0, max = 10 }}\nd = {{ type = \"datetime\" }}\nu = {{ type = \"uuid\" }}\nr = {{ type = \"real\" }}\n"
    ));
    let e = m.entity("item").expect("item");
    let q = e.field("q").expect("q");
    assert!(parse::check_value(q, &serde_json::json!(5)).is_ok());
    assert!(parse::check_value(q, &serde_json::json!(11)).is_err());
    assert!(parse::check_value(q, &serde_json::json!(1.5)).is_err());
    assert!(parse::check_value(q, &serde_json::json!("5")).is_err());
    let d = e.field("d").expect("d");
    assert_eq!(
        parse::check_value(d, &serde_json::json!("2026-01-02T03:04:05+02:00")),
        Ok(serde_json::json!("2026-01-02T01:04:05.000Z"))
    );
    assert!(parse::check_value(d, &serde_json::json!("yesterday")).is_err());
    let u = e.field("u").expect("u");
    assert!(parse::check_value(u, &serde_json::json!("not-a-uuid")).is_err());
    let r = e.field("r").expect("r");
    assert_eq!(
        parse::check_value(r, &serde_json::json!(2)),
        Ok(serde_json::json!(2.0))
    );
}

#[test]
fn routes_match_by_method_and_path() {
    let text = r#"
name = "shop"
version = "1.0.0"

[permissions]
SHOP_USE = "Use"

[[routes]]
method = "GET"
path = "/orders/{id}/lines"
permission = "SHOP_USE"
script = "a.rhai"

[[routes]]
method = "GET"
path = "/orders/open"
permission = "SHOP_USE"
script = "b.rhai"

[[routes]]
method = "POST"
path = "/orders/{id}/lines"
permission = "SHOP_USE"
script = "c.rhai"
"#;
    let m = parse("shop.toml", Some("shop"), text).expect("valid");
    assert_eq!(
        m.match_route("GET", &["orders", "42", "lines"]),
        RouteMatch::Found {
            index: 0,
            params: vec![("id".into(), "42".into())]
        }
    );
    assert_eq!(
        m.match_route("GET", &["orders", "open"]),
        RouteMatch::Found {
            index: 1,
            params: vec![]
        }
    );
    assert_eq!(
        m.match_route("POST", &["orders", "7", "lines"]),
        RouteMatch::Found {
            index: 2,
            params: vec![("id".into(), "7".into())]
        }
    );
    assert_eq!(
        m.match_route("DELETE", &["orders", "7", "lines"]),
        RouteMatch::OtherMethods(vec!["GET", "POST"])
    );
    assert_eq!(m.match_route("GET", &["orders", "7"]), RouteMatch::None);
    assert_eq!(
        m.match_route("GET", &["orders", "7", "lines", "x"]),
        RouteMatch::None
    );
}
