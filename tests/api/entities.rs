//! Entity CRUD generated from plugin manifests: records and their server
//! fields, validation of every field type, unique and ref rules, lists with
//! filters, sort and paging, the manifest's permissions, installation per
//! tenant, tenant isolation, persistence across restarts, and query plans
//! that always go through an index led by `tenant_id`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const INVENTORY: &str = include_str!("../../plugin-manifests/inventory.toml");
const LOYALTY: &str = include_str!("../../plugin-manifests/loyalty.toml");

/// A plugin with one field of every type (and every constraint) on `product`.
const SHOP: &str = r#"
name = "shop"
version = "1.0.0"
description = "One field of every type"
default_install = true

[permissions]
SHOP_VIEW = "View the shop"
SHOP_EDIT = "Edit the shop"

[grants]
ADMIN = ["SHOP_VIEW", "SHOP_EDIT"]

[entities.category]
permissions = { list = "SHOP_VIEW", read = "SHOP_VIEW", create = "SHOP_EDIT", update = "SHOP_EDIT", delete = "SHOP_EDIT" }

[entities.category.fields]
label = { type = "text", required = true }

[entities.product]
permissions = { list = "SHOP_VIEW", read = "SHOP_VIEW", create = "SHOP_EDIT", update = "SHOP_EDIT", delete = "SHOP_EDIT" }
indexes = [["title"]]

[entities.product.fields]
title    = { type = "text", required = true, max_length = 10, pattern = "^[a-z ]+$" }
code     = { type = "text", unique = true }
count    = { type = "integer", min = 1, max = 10 }
weight   = { type = "real", min = 0.5 }
fragile  = { type = "bool" }
ships_at = { type = "datetime" }
batch    = { type = "uuid" }
extra    = { type = "json" }
colour   = { type = "enum", values = ["red", "green"] }
category = { type = "ref", entity = "category" }
note     = { type = "text" }
"#;

const NO_SUCH_ID: &str = "0190aaaa-0000-7000-8000-000000000000";
const ITEMS: &str = "/api/inventory/item";
const SUPPLIERS: &str = "/api/inventory/supplier";
const PRODUCTS: &str = "/api/shop/product";
const CATEGORIES: &str = "/api/shop/category";

/// Start a server whose plugin folder holds exactly these manifests, and
/// check that each of them loaded.
async fn app_with(manifests: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_with(|config| {
        for (name, text) in manifests {
            std::fs::write(config.manifests_dir.join(format!("{name}.toml")), text)
                .expect("write manifest");
        }
    })
    .await;
    for (name, _) in manifests {
        let (status, body) = app
            .get(&format!("/api/plugins/{name}"), &app.root_token)
            .await;
        assert_eq!(status, StatusCode::OK, "plugin {name} loaded: {body}");
    }
    app
}

async fn inventory_app() -> TestApp {
    app_with(&[("inventory", INVENTORY)]).await
}

async fn shop_app() -> TestApp {
    app_with(&[("shop", SHOP)]).await
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

/// Percent-encode a query value.
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// POST and insist on 201.
async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, record) = app.post(path, token, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "POST {path} {body}: {record}");
    record
}

/// GET a list and insist on 200.
async fn list(app: &TestApp, token: &str, path_and_query: &str) -> Value {
    let (status, body) = app.get(path_and_query, token).await;
    assert_eq!(status, StatusCode::OK, "GET {path_and_query}: {body}");
    body
}

/// The `total` of an unfiltered list.
async fn total(app: &TestApp, token: &str, path: &str) -> u64 {
    list(app, token, path).await["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("total of {path}"))
}

/// Ids of a list answer's items, in order.
fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {page}"))
        .iter()
        .map(id_of)
        .collect()
}

/// A 400 with an `errors` entry whose field (or, failing that, message)
/// names `needle`.
fn assert_names(status: StatusCode, body: &Value, needle: &str) {
    assert_problem(status, body, StatusCode::BAD_REQUEST);
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors in {body}"));
    assert!(
        errors.iter().any(|e| {
            e["field"].as_str().is_some_and(|f| f.contains(needle))
                || e["message"].as_str().is_some_and(|m| m.contains(needle))
        }),
        "expected an error naming {needle} in {body}"
    );
}

/// A 400 whose `errors` hold `field` with `code`.
fn assert_field_code(status: StatusCode, body: &Value, field: &str, code: &str) {
    assert_field_error(status, body, field);
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["field"] == field)
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert!(
        codes.contains(&code),
        "expected code {code} for {field} in {body}"
    );
}

async fn my_user_id(app: &TestApp, token: &str) -> String {
    let (status, me) = app.get("/api/auth/me", token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    id_of(&me["user"])
}

fn timestamp(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp string: {v}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("RFC 3339 {s}: {e}"))
}

fn assert_utc_timestamp(v: &Value) {
    let t = timestamp(v);
    assert_eq!(t.offset().local_minus_utc(), 0, "UTC: {v}");
}

// ---------------------------------------------------------------------------
// 1. CRUD happy path
// ---------------------------------------------------------------------------

#[tokio::test]
async fn create_answers_201_with_server_fields_defaults_and_no_tenant_id() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let me = my_user_id(&app, &admin).await;

    let item = create(&app, &admin, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;

    let id = uuid::Uuid::parse_str(item["id"].as_str().expect("id string")).expect("uuid");
    assert_eq!(id.get_version_num(), 7, "uuid v7: {item}");
    assert_utc_timestamp(&item["created_at"]);
    assert_utc_timestamp(&item["updated_at"]);
    assert_eq!(item["created_by"], me.as_str());
    assert_eq!(item["name"], "Bolt");
    assert_eq!(item["sku"], "B-1");
    assert_eq!(item["quantity"], 0, "default quantity: {item}");
    assert_eq!(item["status"], "active", "default status: {item}");
    assert!(item.get("tenant_id").is_none(), "no tenant_id: {item}");
    let allowed: BTreeSet<&str> = [
        "id",
        "created_at",
        "updated_at",
        "created_by",
        "name",
        "sku",
        "quantity",
        "price",
        "status",
        "tags",
        "supplier",
    ]
    .into();
    for key in item.as_object().expect("object").keys() {
        assert!(
            allowed.contains(key.as_str()),
            "unexpected key {key}: {item}"
        );
    }
}

#[tokio::test]
async fn get_one_answers_the_record_as_created() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let item = create(
        &app,
        &admin,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1", "quantity": 4, "price": 2.5, "tags": ["a", {"b": 1}]}),
    )
    .await;

    let (status, got) = app.get(&format!("{ITEMS}/{}", id_of(&item)), &admin).await;

    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, item);
    assert_eq!(got["tags"], json!(["a", {"b": 1}]), "json round trip");
}

#[tokio::test]
async fn patch_changes_only_the_given_fields() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let item = create(
        &app,
        &admin,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1", "quantity": 4, "price": 2.5}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let (status, patched) = app
        .patch(
            &format!("{ITEMS}/{}", id_of(&item)),
            &admin,
            json!({"quantity": 9, "status": "discontinued"}),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["quantity"], 9);
    assert_eq!(patched["status"], "discontinued");
    for unchanged in [
        "id",
        "name",
        "sku",
        "price",
        "created_at",
        "created_by",
        "tags",
        "supplier",
    ] {
        assert_eq!(patched[unchanged], item[unchanged], "{unchanged} unchanged");
    }
    assert_utc_timestamp(&patched["updated_at"]);
    assert!(
        timestamp(&patched["updated_at"]) >= timestamp(&patched["created_at"]),
        "updated_at >= created_at: {patched}"
    );
    assert!(
        timestamp(&patched["updated_at"]) >= timestamp(&item["updated_at"]),
        "updated_at does not go back: {patched}"
    );
    let (status, got) = app.get(&format!("{ITEMS}/{}", id_of(&item)), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, patched, "GET shows the patched record");
}

#[tokio::test]
async fn delete_answers_204_and_the_row_is_gone() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let item = create(&app, &admin, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;
    let path = format!("{ITEMS}/{}", id_of(&item));

    let (status, body) = app.delete(&path, &admin).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "no body");
    let (status, body) = app.get(&path, &admin).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app.delete(&path, &admin).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app.patch(&path, &admin, json!({"quantity": 1})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(total(&app, &admin, ITEMS).await, 0);
}

// ---------------------------------------------------------------------------
// 2. Validation per field type (shop.product)
// ---------------------------------------------------------------------------

/// (field, bad value, expected code).
fn bad_values() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("title", json!(5), "type"),
        ("title", json!(["abc"]), "type"),
        ("title", json!("abcdefghijk"), "max_length"),
        ("title", json!("ABC"), "pattern"),
        ("title", json!("abc1"), "pattern"),
        ("code", json!(12), "type"),
        ("count", json!("3"), "type"),
        ("count", json!(1.5), "type"),
        ("count", json!(true), "type"),
        ("count", json!(0), "min"),
        ("count", json!(-4), "min"),
        ("count", json!(11), "max"),
        ("count", json!(u64::MAX), "type"),
        ("count", json!(1e20), "type"),
        ("weight", json!("heavy"), "type"),
        ("weight", json!(0.4), "min"),
        ("weight", json!(0), "min"),
        ("fragile", json!("yes"), "type"),
        ("fragile", json!(1), "type"),
        ("ships_at", json!("tomorrow"), "type"),
        ("ships_at", json!("2024-13-01T00:00:00Z"), "type"),
        ("ships_at", json!(1_700_000_000), "type"),
        ("batch", json!("not-a-uuid"), "type"),
        ("batch", json!(42), "type"),
        ("colour", json!("blue"), "enum"),
        ("colour", json!("RED"), "enum"),
        ("colour", json!(1), "type"),
        ("category", json!(7), "type"),
        ("category", json!(NO_SUCH_ID), "ref"),
        ("category", json!("garbage"), "ref"),
        ("note", json!({"a": 1}), "type"),
        ("note", json!(false), "type"),
    ]
}

#[tokio::test]
async fn create_refuses_each_bad_value_with_an_error_naming_the_field() {
    let app = shop_app().await;
    let token = app.root_token.clone();

    for (field, value, code) in bad_values() {
        let mut body = json!({"title": "ok"});
        body[field] = value.clone();
        let (status, problem) = app.post(PRODUCTS, &token, body).await;
        assert_field_code(status, &problem, field, code);
    }

    assert_eq!(total(&app, &token, PRODUCTS).await, 0, "nothing created");
}

#[tokio::test]
async fn patch_refuses_each_bad_value_and_leaves_the_row_unchanged() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let product = create(&app, &token, PRODUCTS, json!({"title": "ok", "count": 2})).await;
    let path = format!("{PRODUCTS}/{}", id_of(&product));

    for (field, value, code) in bad_values() {
        let (status, problem) = app.patch(&path, &token, json!({ field: value })).await;
        assert_field_code(status, &problem, field, code);
    }

    let (status, got) = app.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, product, "row unchanged");
}

#[tokio::test]
async fn boundary_and_well_typed_values_are_accepted() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let category = create(&app, &token, CATEGORIES, json!({"label": "Tools"})).await;
    let batch = "0190aaaa-0000-7000-8000-00000000abcd";

    let product = create(
        &app,
        &token,
        PRODUCTS,
        json!({
            "title": "abcdefghij",
            "code": "X1",
            "count": 10,
            "weight": 0.5,
            "fragile": true,
            "ships_at": "2024-05-01T10:30:00Z",
            "batch": batch,
            "extra": {"nested": [1, 2, {"deep": null}], "n": 1.25},
            "colour": "green",
            "category": id_of(&category),
            "note": "anything at all: ÀÉ 🎉",
        }),
    )
    .await;

    assert_eq!(product["title"], "abcdefghij");
    assert_eq!(product["count"], 10);
    assert_eq!(product["weight"].as_f64(), Some(0.5));
    assert_eq!(product["fragile"], true);
    assert_eq!(product["batch"], batch);
    assert_eq!(
        product["extra"],
        json!({"nested": [1, 2, {"deep": null}], "n": 1.25})
    );
    assert_eq!(product["colour"], "green");
    assert_eq!(product["category"], id_of(&category).as_str());
    assert_eq!(product["note"], "anything at all: ÀÉ 🎉");
    let min = create(&app, &token, PRODUCTS, json!({"title": "a", "count": 1})).await;
    assert_eq!(min["count"], 1);
}

#[tokio::test]
async fn a_missing_or_null_required_field_is_400_required() {
    let app = shop_app().await;
    let token = app.root_token.clone();

    for body in [json!({}), json!({"title": null}), json!({"count": 2})] {
        let (status, problem) = app.post(PRODUCTS, &token, body).await;
        assert_field_code(status, &problem, "title", "required");
    }

    assert_eq!(total(&app, &token, PRODUCTS).await, 0, "nothing created");
}

#[tokio::test]
async fn several_bad_fields_are_all_reported_at_once() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let product = create(&app, &token, PRODUCTS, json!({"title": "ok"})).await;
    let bad = json!({"title": 5, "count": 0, "weight": "x", "colour": "blue", "bogus": 1});
    let expected = ["title", "count", "weight", "colour", "bogus"];

    let (status, created) = app.post(PRODUCTS, &token, bad.clone()).await;
    let (status2, patched) = app
        .patch(&format!("{PRODUCTS}/{}", id_of(&product)), &token, bad)
        .await;

    for (status, problem) in [(status, &created), (status2, &patched)] {
        for field in expected {
            assert_field_error(status, problem, field);
        }
    }
    let (_, create_missing) = app
        .post(PRODUCTS, &token, json!({"count": 0, "fragile": "no"}))
        .await;
    for field in ["title", "count", "fragile"] {
        assert_field_error(StatusCode::BAD_REQUEST, &create_missing, field);
    }
    assert_eq!(total(&app, &token, PRODUCTS).await, 1, "nothing created");
}

#[tokio::test]
async fn unknown_and_server_set_keys_in_a_body_are_400_naming_them() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let product = create(&app, &token, PRODUCTS, json!({"title": "ok"})).await;
    let path = format!("{PRODUCTS}/{}", id_of(&product));
    let tenant_id = "00000000-0000-7000-8000-000000000001";
    let cases = [
        ("bogus", json!(1)),
        ("Title", json!("ok")),
        ("tenant_id", json!(tenant_id)),
        ("id", json!(NO_SUCH_ID)),
        ("created_at", json!("2024-01-01T00:00:00Z")),
        ("updated_at", json!("2024-01-01T00:00:00Z")),
        ("created_by", json!(NO_SUCH_ID)),
    ];

    for (key, value) in cases {
        let mut body = json!({"title": "ok"});
        body[key] = value.clone();
        let (status, problem) = app.post(PRODUCTS, &token, body).await;
        assert_field_error(status, &problem, key);
        let (status, problem) = app.patch(&path, &token, json!({ key: value })).await;
        assert_field_error(status, &problem, key);
    }
    let (status, problem) = app
        .post(
            PRODUCTS,
            &token,
            json!({"title": "ok", "tenant_id": tenant_id, "id": NO_SUCH_ID, "created_at": "2024-01-01T00:00:00Z"}),
        )
        .await;
    for key in ["tenant_id", "id", "created_at"] {
        assert_field_error(status, &problem, key);
    }

    assert_eq!(total(&app, &token, PRODUCTS).await, 1, "nothing created");
    let (_, got) = app.get(&path, &token).await;
    assert_eq!(got, product, "row unchanged");
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let product = create(&app, &token, PRODUCTS, json!({"title": "ok"})).await;
    let path = format!("{PRODUCTS}/{}", id_of(&product));
    let raw_bodies = [
        "[]",
        "[\"ok\"]",
        "\"ok\"",
        "5",
        "null",
        "true",
        "{",
        "{\"title\": \"ok\",}",
        "",
    ];

    for raw in raw_bodies {
        for (method, target) in [(Method::POST, PRODUCTS), (Method::PATCH, path.as_str())] {
            let resp = app
                .request(method.clone(), target, Some(&token))
                .header("content-type", "application/json")
                .body(raw.to_owned())
                .send()
                .await
                .expect("sent");
            let (status, problem) = split(resp).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{method} {target} {raw:?}: {problem}"
            );
            assert_problem(status, &problem, StatusCode::BAD_REQUEST);
        }
    }

    assert_eq!(total(&app, &token, PRODUCTS).await, 1, "nothing created");
    let (_, got) = app.get(&path, &token).await;
    assert_eq!(got, product, "row unchanged");
}

#[tokio::test]
async fn patch_null_clears_an_optional_field_but_not_a_required_one() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let product = create(
        &app,
        &token,
        PRODUCTS,
        json!({"title": "ok", "note": "keep me?", "count": 3, "extra": {"a": 1}, "colour": "red"}),
    )
    .await;
    let path = format!("{PRODUCTS}/{}", id_of(&product));

    let (status, problem) = app.patch(&path, &token, json!({"title": null})).await;
    assert_field_code(status, &problem, "title", "required");
    let (_, got) = app.get(&path, &token).await;
    assert_eq!(got["title"], "ok", "required field kept");

    let (status, cleared) = app
        .patch(
            &path,
            &token,
            json!({"note": null, "count": null, "extra": null, "colour": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    for field in ["note", "count", "extra", "colour"] {
        assert!(
            cleared.get(field).is_none_or(Value::is_null),
            "{field} cleared: {cleared}"
        );
    }
    assert_eq!(cleared["title"], "ok");
    let (_, got) = app.get(&path, &token).await;
    assert_eq!(got, cleared);
}

#[tokio::test]
async fn a_datetime_with_an_offset_is_stored_and_answered_in_utc() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let given = "2024-05-01T12:30:00+02:00";

    let product = create(
        &app,
        &token,
        PRODUCTS,
        json!({"title": "ok", "ships_at": given}),
    )
    .await;

    let expected = timestamp(&json!(given));
    for record in [
        product.clone(),
        app.get(&format!("{PRODUCTS}/{}", id_of(&product)), &token)
            .await
            .1,
    ] {
        assert_utc_timestamp(&record["ships_at"]);
        assert_eq!(
            timestamp(&record["ships_at"]),
            expected,
            "same instant: {record}"
        );
    }
    let (status, patched) = app
        .patch(
            &format!("{PRODUCTS}/{}", id_of(&product)),
            &token,
            json!({"ships_at": "2024-05-01T00:15:00-05:00"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_utc_timestamp(&patched["ships_at"]);
    assert_eq!(
        timestamp(&patched["ships_at"]),
        timestamp(&json!("2024-05-01T05:15:00Z"))
    );
}

#[tokio::test]
async fn a_real_field_given_an_integer_answers_a_number() {
    let app = shop_app().await;
    let token = app.root_token.clone();

    let product = create(&app, &token, PRODUCTS, json!({"title": "ok", "weight": 3})).await;

    assert!(product["weight"].is_number(), "{product}");
    assert_eq!(product["weight"].as_f64(), Some(3.0));
    let (_, got) = app
        .get(&format!("{PRODUCTS}/{}", id_of(&product)), &token)
        .await;
    assert!(got["weight"].is_number(), "{got}");
    assert_eq!(got["weight"].as_f64(), Some(3.0));
}

#[tokio::test]
async fn uuid_values_are_answered_in_canonical_form() {
    let app = shop_app().await;
    let token = app.root_token.clone();

    let product = create(
        &app,
        &token,
        PRODUCTS,
        json!({"title": "ok", "batch": "0190AAAA-0000-7000-8000-00000000ABCD"}),
    )
    .await;

    let batch = product["batch"].as_str().expect("batch string");
    assert_eq!(
        uuid::Uuid::parse_str(batch).expect("uuid"),
        uuid::Uuid::parse_str("0190aaaa-0000-7000-8000-00000000abcd").expect("uuid")
    );
}

#[tokio::test]
async fn a_bad_ref_is_reported_together_with_other_bad_fields() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let product = create(&app, &token, PRODUCTS, json!({"title": "ok"})).await;
    let bad = json!({"title": 5, "category": NO_SUCH_ID});

    let (status, created) = app.post(PRODUCTS, &token, bad.clone()).await;
    let (status2, patched) = app
        .patch(&format!("{PRODUCTS}/{}", id_of(&product)), &token, bad)
        .await;

    for (status, problem) in [(status, &created), (status2, &patched)] {
        assert_field_code(status, problem, "title", "type");
        assert_field_code(status, problem, "category", "ref");
    }
    assert_eq!(total(&app, &token, PRODUCTS).await, 1, "nothing created");
}

#[tokio::test]
async fn patch_with_an_empty_object_changes_no_field() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let product = create(
        &app,
        &token,
        PRODUCTS,
        json!({"title": "ok", "count": 3, "note": "n"}),
    )
    .await;

    let (status, patched) = app
        .patch(
            &format!("{PRODUCTS}/{}", id_of(&product)),
            &token,
            json!({}),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{patched}");
    let mut without_updated_at = patched.clone();
    without_updated_at["updated_at"] = product["updated_at"].clone();
    assert_eq!(without_updated_at, product);
}

#[tokio::test]
async fn an_id_that_is_not_a_uuid_is_refused_on_every_verb_without_a_fault() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    for id in ["not-a-uuid", "1", "%27%20OR%201%3D1%20--"] {
        let path = format!("{ITEMS}/{id}");
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"quantity": 1}))),
            (Method::DELETE, None),
        ] {
            let (status, problem) = app.call(method.clone(), &path, Some(&token), body).await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
                "{method} {path}: {status} {problem}"
            );
            assert_problem(status, &problem, status);
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Unique per tenant
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_unique_value_repeated_in_one_tenant_is_409_and_not_created() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    create(&app, &admin, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;

    let (status, problem) = app
        .post(ITEMS, &admin, json!({"name": "Other", "sku": "B-1"}))
        .await;

    assert_problem(status, &problem, StatusCode::CONFLICT);
    assert_eq!(total(&app, &admin, ITEMS).await, 1);
}

#[tokio::test]
async fn the_same_unique_value_in_two_tenants_is_allowed() {
    let app = inventory_app().await;
    let (_, admin_a) = app.tenant("alpha").await;
    let (_, admin_b) = app.tenant("beta").await;

    let a = create(&app, &admin_a, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;
    let b = create(&app, &admin_b, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;

    assert_ne!(a["id"], b["id"]);
    assert_eq!(total(&app, &admin_a, ITEMS).await, 1);
    assert_eq!(total(&app, &admin_b, ITEMS).await, 1);
    // and a later PATCH in B to another value and back still works
    let path_b = format!("{ITEMS}/{}", id_of(&b));
    let (status, body) = app.patch(&path_b, &admin_b, json!({"sku": "B-2"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.patch(&path_b, &admin_b, json!({"sku": "B-1"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn patching_to_a_taken_unique_value_is_409_but_keeping_its_own_is_200() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    create(&app, &admin, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;
    let second = create(&app, &admin, ITEMS, json!({"name": "Nut", "sku": "N-1"})).await;
    let path = format!("{ITEMS}/{}", id_of(&second));

    let (status, problem) = app.patch(&path, &admin, json!({"sku": "B-1"})).await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    let (_, got) = app.get(&path, &admin).await;
    assert_eq!(got, second, "unchanged after the 409");

    let (status, kept) = app
        .patch(&path, &admin, json!({"sku": "N-1", "quantity": 2}))
        .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["sku"], "N-1");
    assert_eq!(kept["quantity"], 2);
}

#[tokio::test]
async fn a_unique_field_of_the_shop_conflicts_on_create_and_patch() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    create(&app, &token, PRODUCTS, json!({"title": "a", "code": "X"})).await;
    let other = create(&app, &token, PRODUCTS, json!({"title": "b", "code": "Y"})).await;
    // null values of a unique field do not conflict with each other
    create(&app, &token, PRODUCTS, json!({"title": "c"})).await;
    create(&app, &token, PRODUCTS, json!({"title": "d"})).await;

    let (status, problem) = app
        .post(PRODUCTS, &token, json!({"title": "e", "code": "X"}))
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    let (status, problem) = app
        .patch(
            &format!("{PRODUCTS}/{}", id_of(&other)),
            &token,
            json!({"code": "X"}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    assert_eq!(total(&app, &token, PRODUCTS).await, 4);
}

#[tokio::test]
async fn concurrent_creates_of_one_unique_value_give_one_201_and_the_rest_409() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    let mut tasks = Vec::new();
    for n in 0..10 {
        let request = app
            .request(Method::POST, ITEMS, Some(&token))
            .json(&json!({"name": format!("racer {n}"), "sku": "RACE-1"}));
        tasks.push(tokio::spawn(async move {
            split(request.send().await.expect("sent")).await
        }));
    }

    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert_problem(status, &body, StatusCode::CONFLICT),
            other => panic!("expected 201 or 409, got {other} {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(total(&app, &token, ITEMS).await, 1);
}

// ---------------------------------------------------------------------------
// 4. ref
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_ref_to_a_missing_row_is_400_naming_the_field() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let item = create(&app, &admin, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;

    for value in [json!(NO_SUCH_ID), json!("not-an-id")] {
        let (status, problem) = app
            .post(
                ITEMS,
                &admin,
                json!({"name": "Nut", "sku": "N-1", "supplier": value}),
            )
            .await;
        assert_field_error(status, &problem, "supplier");
        let (status, problem) = app
            .patch(
                &format!("{ITEMS}/{}", id_of(&item)),
                &admin,
                json!({ "supplier": value }),
            )
            .await;
        assert_field_error(status, &problem, "supplier");
    }
    // an item id is not a supplier id
    let (status, problem) = app
        .post(
            ITEMS,
            &admin,
            json!({"name": "Nut", "sku": "N-1", "supplier": id_of(&item)}),
        )
        .await;
    assert_field_error(status, &problem, "supplier");

    assert_eq!(total(&app, &admin, ITEMS).await, 1);
}

#[tokio::test]
async fn a_ref_to_another_tenants_row_is_400() {
    let app = inventory_app().await;
    let (_, admin_a) = app.tenant("alpha").await;
    let (_, admin_b) = app.tenant("beta").await;
    let supplier_b = create(&app, &admin_b, SUPPLIERS, json!({"name": "B's"})).await;
    let item_a = create(&app, &admin_a, ITEMS, json!({"name": "Bolt", "sku": "B-1"})).await;

    let (status, problem) = app
        .post(
            ITEMS,
            &admin_a,
            json!({"name": "Nut", "sku": "N-1", "supplier": id_of(&supplier_b)}),
        )
        .await;
    assert_field_error(status, &problem, "supplier");
    let (status, problem) = app
        .patch(
            &format!("{ITEMS}/{}", id_of(&item_a)),
            &admin_a,
            json!({"supplier": id_of(&supplier_b)}),
        )
        .await;
    assert_field_error(status, &problem, "supplier");

    assert_eq!(total(&app, &admin_a, ITEMS).await, 1);
    let (_, got) = app
        .get(&format!("{ITEMS}/{}", id_of(&item_a)), &admin_a)
        .await;
    assert_eq!(got["supplier"], Value::Null);
}

#[tokio::test]
async fn a_ref_to_an_own_row_is_accepted_and_can_be_cleared() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let supplier = create(&app, &admin, SUPPLIERS, json!({"name": "Acme"})).await;

    let item = create(
        &app,
        &admin,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1", "supplier": id_of(&supplier)}),
    )
    .await;
    assert_eq!(item["supplier"], id_of(&supplier).as_str());

    let (status, cleared) = app
        .patch(
            &format!("{ITEMS}/{}", id_of(&item)),
            &admin,
            json!({"supplier": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(cleared.get("supplier").is_none_or(Value::is_null));
}

#[tokio::test]
async fn deleting_a_referenced_row_is_409_naming_the_referencing_entity() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let supplier = create(&app, &admin, SUPPLIERS, json!({"name": "Acme"})).await;
    let supplier_path = format!("{SUPPLIERS}/{}", id_of(&supplier));
    let item = create(
        &app,
        &admin,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1", "supplier": id_of(&supplier)}),
    )
    .await;

    let (status, problem) = app.delete(&supplier_path, &admin).await;

    assert_problem(status, &problem, StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("item")),
        "detail names item: {problem}"
    );
    let (status, got) = app.get(&supplier_path, &admin).await;
    assert_eq!(status, StatusCode::OK, "supplier still there: {got}");
    assert_eq!(got, supplier);
    // once no longer referenced, it can go
    let (status, body) = app
        .patch(
            &format!("{ITEMS}/{}", id_of(&item)),
            &admin,
            json!({"supplier": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.delete(&supplier_path, &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn another_tenants_reference_does_not_block_a_delete() {
    let app = inventory_app().await;
    let (_, admin_a) = app.tenant("alpha").await;
    let supplier_a = create(&app, &admin_a, SUPPLIERS, json!({"name": "A's"})).await;
    create(
        &app,
        &admin_a,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1", "supplier": id_of(&supplier_a)}),
    )
    .await;
    let (_, admin_b) = app.tenant("beta").await;
    let supplier_b = create(&app, &admin_b, SUPPLIERS, json!({"name": "B's"})).await;

    let (status, body) = app
        .delete(&format!("{SUPPLIERS}/{}", id_of(&supplier_b)), &admin_b)
        .await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

// ---------------------------------------------------------------------------
// 5. Lists
// ---------------------------------------------------------------------------

/// The list fixture: (name, sku, quantity, price, status, supplier index).
#[allow(clippy::type_complexity)]
const FIXTURE: [(&str, &str, i64, Option<f64>, &str, Option<usize>); 6] = [
    ("Blue Bolt", "B-1", 5, Some(1.5), "active", Some(0)),
    ("bolt 50%", "B-2", 10, None, "active", Some(0)),
    ("bolt 500", "B-3", 0, Some(2.0), "discontinued", None),
    ("bolt_x", "B-4", 20, Some(3.25), "active", Some(1)),
    ("boltAx", "B-5", 7, None, "discontinued", None),
    ("Nut", "N-1", 10, Some(0.1), "active", None),
];

struct Fixture {
    token: String,
    user_id: String,
    suppliers: Vec<String>,
    /// Items in creation order.
    items: Vec<Value>,
}

impl Fixture {
    fn id_of_sku(&self, sku: &str) -> String {
        id_of(
            self.items
                .iter()
                .find(|i| i["sku"] == sku)
                .unwrap_or_else(|| panic!("sku {sku}")),
        )
    }

    fn skus(&self, page: &Value) -> BTreeSet<String> {
        page["items"]
            .as_array()
            .unwrap_or_else(|| panic!("items in {page}"))
            .iter()
            .map(|i| i["sku"].as_str().expect("sku").to_owned())
            .collect()
    }
}

async fn fixture(app: &TestApp) -> Fixture {
    let (_, token) = app.tenant("acme").await;
    let user_id = my_user_id(app, &token).await;
    let mut suppliers = Vec::new();
    for name in ["First", "Second"] {
        suppliers.push(id_of(
            &create(app, &token, SUPPLIERS, json!({"name": name})).await,
        ));
    }
    let mut items = Vec::new();
    for (name, sku, quantity, price, status, supplier) in FIXTURE {
        let mut body = json!({"name": name, "sku": sku, "quantity": quantity, "status": status});
        if let Some(p) = price {
            body["price"] = json!(p);
        }
        if let Some(s) = supplier {
            body["supplier"] = json!(suppliers[s]);
        }
        items.push(create(app, &token, ITEMS, body).await);
        // distinct created_at values (millisecond precision)
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    Fixture {
        token,
        user_id,
        suppliers,
        items,
    }
}

#[tokio::test]
async fn a_list_answers_items_total_limit_offset_newest_first() {
    let app = inventory_app().await;
    let f = fixture(&app).await;

    let page = list(&app, &f.token, ITEMS).await;

    let keys: BTreeSet<&str> = page
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["items", "limit", "offset", "total"].into(), "{page}");
    assert_eq!(page["total"], 6);
    assert_eq!(page["limit"], 50);
    assert_eq!(page["offset"], 0);
    let mut expected: Vec<String> = f.items.iter().map(id_of).collect();
    expected.reverse();
    assert_eq!(ids(&page), expected, "newest first");
    assert_eq!(page["items"][0], f.items[5], "items are full records");
}

#[tokio::test]
async fn the_default_page_is_50_ordered_by_created_at_then_id_descending() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    let mut created = Vec::new();
    for n in 0..53 {
        created.push(create(&app, &token, SUPPLIERS, json!({"name": format!("s{n:02}")})).await);
    }

    let page = list(&app, &token, SUPPLIERS).await;

    assert_eq!(page["total"], 53);
    assert_eq!(page["limit"], 50);
    let got = page["items"].as_array().expect("items");
    assert_eq!(got.len(), 50);
    let mut expected = created.clone();
    expected.sort_by(|a, b| {
        (b["created_at"].as_str(), b["id"].as_str())
            .cmp(&(a["created_at"].as_str(), a["id"].as_str()))
    });
    let expected_ids: Vec<String> = expected.iter().take(50).map(id_of).collect();
    assert_eq!(ids(&page), expected_ids);
    // and ids are in creation order (v7), so it is the reverse of creation
    let mut reverse: Vec<String> = created.iter().map(id_of).collect();
    reverse.reverse();
    assert_eq!(ids(&page), reverse[..50].to_vec());
    let rest = list(&app, &token, &format!("{SUPPLIERS}?offset=50")).await;
    assert_eq!(ids(&rest), reverse[50..].to_vec());
}

#[tokio::test]
async fn limit_and_offset_page_through_the_list() {
    let app = inventory_app().await;
    let f = fixture(&app).await;
    let mut newest_first: Vec<String> = f.items.iter().map(id_of).collect();
    newest_first.reverse();

    let page = list(&app, &f.token, &format!("{ITEMS}?limit=2&offset=1")).await;
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    assert_eq!(page["total"], 6);
    assert_eq!(ids(&page), newest_first[1..3].to_vec());

    let page = list(&app, &f.token, &format!("{ITEMS}?limit=500")).await;
    assert_eq!(page["limit"], 500);
    assert_eq!(ids(&page), newest_first);

    let page = list(&app, &f.token, &format!("{ITEMS}?offset=6")).await;
    assert_eq!(ids(&page), Vec::<String>::new());
    assert_eq!(page["total"], 6);

    let page = list(&app, &f.token, &format!("{ITEMS}?offset=100&limit=1")).await;
    assert_eq!(ids(&page), Vec::<String>::new());
}

#[tokio::test]
async fn bad_paging_parameters_are_400_naming_them() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    let cases = [
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
    ];

    for (query, name) in cases {
        let (status, problem) = app.get(&format!("{ITEMS}?{query}"), &token).await;
        assert_names(status, &problem, name);
    }
}

#[tokio::test]
async fn total_false_skips_the_count() {
    let app = inventory_app().await;
    let f = fixture(&app).await;

    let page = list(&app, &f.token, &format!("{ITEMS}?total=false&limit=2")).await;

    assert!(page.get("total").is_some(), "total key present: {page}");
    assert_eq!(page["total"], Value::Null);
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    let page = list(&app, &f.token, &format!("{ITEMS}?total=true")).await;
    assert_eq!(page["total"], 6);
}

#[tokio::test]
async fn every_filter_operator_selects_the_expected_rows() {
    let app = inventory_app().await;
    let f = fixture(&app).await;
    let all = ["B-1", "B-2", "B-3", "B-4", "B-5", "N-1"];
    let third_created_at = f.items[2]["created_at"].as_str().expect("ts").to_owned();
    // the same instant written with an offset
    let third_with_offset = timestamp(&json!(third_created_at))
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))
        .to_rfc3339();
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("name=Nut".into(), vec!["N-1"]),
        ("name[eq]=Nut".into(), vec!["N-1"]),
        (format!("name={}", enc("Blue Bolt")), vec!["B-1"]),
        ("quantity=10".into(), vec!["B-2", "N-1"]),
        ("quantity[eq]=10".into(), vec!["B-2", "N-1"]),
        ("quantity[ne]=10".into(), vec!["B-1", "B-3", "B-4", "B-5"]),
        ("quantity[gt]=7".into(), vec!["B-2", "B-4", "N-1"]),
        ("quantity[gte]=7".into(), vec!["B-2", "B-4", "B-5", "N-1"]),
        ("quantity[lt]=5".into(), vec!["B-3"]),
        ("quantity[lte]=5".into(), vec!["B-1", "B-3"]),
        ("quantity[in]=0,20".into(), vec!["B-3", "B-4"]),
        ("quantity[in]=0".into(), vec!["B-3"]),
        ("price[gt]=1.9".into(), vec!["B-3", "B-4"]),
        ("price[lte]=1.5".into(), vec!["B-1", "N-1"]),
        ("price[null]=true".into(), vec!["B-2", "B-5"]),
        ("price[null]=false".into(), vec!["B-1", "B-3", "B-4", "N-1"]),
        ("status=discontinued".into(), vec!["B-3", "B-5"]),
        (
            "status[ne]=discontinued".into(),
            vec!["B-1", "B-2", "B-4", "N-1"],
        ),
        ("status[in]=active,discontinued".into(), all.to_vec()),
        (format!("sku[in]={}", enc("B-1,N-1")), vec!["B-1", "N-1"]),
        ("sku[gte]=B-4".into(), vec!["B-4", "B-5", "N-1"]),
        (
            "name[like]=BOLT".into(),
            vec!["B-1", "B-2", "B-3", "B-4", "B-5"],
        ),
        ("name[like]=nu".into(), vec!["N-1"]),
        (format!("name[like]={}", enc("50%")), vec!["B-2"]),
        (format!("name[like]={}", enc("%")), vec!["B-2"]),
        ("name[like]=t_x".into(), vec!["B-4"]),
        ("name[like]=_".into(), vec!["B-4"]),
        ("name[like]=zzz".into(), vec![]),
        (format!("supplier={}", f.suppliers[0]), vec!["B-1", "B-2"]),
        (
            format!("supplier[in]={},{}", f.suppliers[0], f.suppliers[1]),
            vec!["B-1", "B-2", "B-4"],
        ),
        ("supplier[null]=true".into(), vec!["B-3", "B-5", "N-1"]),
        ("tags[null]=true".into(), all.to_vec()),
        (
            "status=active&quantity[gte]=10".into(),
            vec!["B-2", "B-4", "N-1"],
        ),
        ("quantity[gt]=0&quantity[lt]=10".into(), vec!["B-1", "B-5"]),
        // base fields
        (format!("id={}", f.id_of_sku("B-4")), vec!["B-4"]),
        (
            format!("id[in]={},{}", f.id_of_sku("B-1"), f.id_of_sku("N-1")),
            vec!["B-1", "N-1"],
        ),
        (
            format!("id[ne]={}", f.id_of_sku("B-1")),
            vec!["B-2", "B-3", "B-4", "B-5", "N-1"],
        ),
        (format!("created_by={}", f.user_id), all.to_vec()),
        (format!("created_by={NO_SUCH_ID}"), vec![]),
        ("created_by[null]=false".into(), all.to_vec()),
        (
            format!("created_at[gte]={}", enc(&third_created_at)),
            vec!["B-3", "B-4", "B-5", "N-1"],
        ),
        (
            format!("created_at[gte]={}", enc(&third_with_offset)),
            vec!["B-3", "B-4", "B-5", "N-1"],
        ),
        (
            format!("created_at[lt]={}", enc(&third_created_at)),
            vec!["B-1", "B-2"],
        ),
        (
            format!("created_at[eq]={}", enc(&third_created_at)),
            vec!["B-3"],
        ),
        (
            format!("created_at[gte]={}", enc("2000-01-01T00:00:00Z")),
            all.to_vec(),
        ),
        (
            format!("created_at[gt]={}", enc("2999-01-01T00:00:00Z")),
            vec![],
        ),
        (
            format!("updated_at[lte]={}", enc("2999-01-01T00:00:00+01:00")),
            all.to_vec(),
        ),
    ];

    let mut failures = Vec::new();
    for (query, expected) in &cases {
        let page = list(&app, &f.token, &format!("{ITEMS}?{query}&limit=500")).await;
        let got = f.skus(&page);
        let want: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        if got != want || page["total"] != want.len() {
            failures.push(format!(
                "{query}: expected {want:?}, got {got:?} (total {})",
                page["total"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn like_is_case_insensitive_beyond_ascii() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    for (name, sku) in [
        ("Écrou Ölig", "E-1"),
        ("écrou ölig", "E-2"),
        ("Ecrou", "E-3"),
    ] {
        create(&app, &token, ITEMS, json!({"name": name, "sku": sku})).await;
    }

    for needle in ["écrou", "ÉCROU", "ölig", "ÖLIG"] {
        let page = list(&app, &token, &format!("{ITEMS}?name[like]={}", enc(needle))).await;
        assert_eq!(page["total"], 2, "name[like]={needle}: {page}");
    }
}

#[tokio::test]
async fn filters_on_bool_real_datetime_uuid_and_json_fields() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let batch = "0190aaaa-0000-7000-8000-00000000abcd";
    for body in [
        json!({"title": "a", "fragile": true, "weight": 1.5, "ships_at": "2024-05-01T10:00:00Z", "batch": batch, "extra": {"x": 1}}),
        json!({"title": "b", "fragile": false, "weight": 2, "ships_at": "2024-06-01T10:00:00Z"}),
        json!({"title": "c"}),
    ] {
        create(&app, &token, PRODUCTS, body).await;
    }
    let titles = |page: &Value| -> BTreeSet<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["title"].as_str().expect("title").to_owned())
            .collect()
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("fragile=true".into(), vec!["a"]),
        ("fragile=false".into(), vec!["b"]),
        ("fragile[null]=true".into(), vec!["c"]),
        ("weight[gte]=2".into(), vec!["b"]),
        ("weight=2".into(), vec!["b"]),
        ("weight[lt]=2.5".into(), vec!["a", "b"]),
        (
            format!("ships_at[lt]={}", enc("2024-05-15T00:00:00Z")),
            vec!["a"],
        ),
        (
            format!("ships_at={}", enc("2024-05-01T12:00:00+02:00")),
            vec!["a"],
        ),
        (format!("batch={batch}"), vec!["a"]),
        ("extra[null]=false".into(), vec!["a"]),
        ("count[null]=true".into(), vec!["a", "b", "c"]),
    ];
    let mut failures = Vec::new();
    for (query, expected) in &cases {
        let page = list(&app, &token, &format!("{PRODUCTS}?{query}")).await;
        let want: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        if titles(&page) != want {
            failures.push(format!("{query}: expected {want:?}, got {page}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    for (query, name) in [
        ("fragile=maybe", "fragile"),
        ("fragile[gt]=true", "fragile"),
        ("weight=heavy", "weight"),
        ("ships_at=tomorrow", "ships_at"),
        ("extra=1", "extra"),
    ] {
        let (status, problem) = app.get(&format!("{PRODUCTS}?{query}"), &token).await;
        assert_names(status, &problem, name);
    }
}

#[tokio::test]
async fn a_uuid_filter_matches_the_value_however_it_was_written() {
    let app = shop_app().await;
    let token = app.root_token.clone();
    let written = "0190AAAA-0000-7000-8000-00000000ABCD";
    create(
        &app,
        &token,
        PRODUCTS,
        json!({"title": "a", "batch": written}),
    )
    .await;

    // uuid input is canonicalised on write, so the filter operand must be too
    for operand in [written, "0190aaaa-0000-7000-8000-00000000abcd"] {
        let page = list(&app, &token, &format!("{PRODUCTS}?batch={operand}")).await;
        assert_eq!(page["total"], 1, "batch={operand}: {page}");
    }
}

#[tokio::test]
async fn filtered_lists_keep_the_default_order_and_paging() {
    let app = inventory_app().await;
    let f = fixture(&app).await;

    let page = list(
        &app,
        &f.token,
        &format!("{ITEMS}?name[like]=bolt&limit=2&offset=1"),
    )
    .await;

    assert_eq!(page["total"], 5);
    assert_eq!(ids(&page), vec![f.id_of_sku("B-4"), f.id_of_sku("B-3")]);
}

#[tokio::test]
async fn sort_orders_by_the_given_fields_and_directions() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    for (name, sku, quantity) in [
        ("a", "A-1", 1),
        ("b", "B-1", 2),
        ("a", "A-3", 3),
        ("c", "C-1", 0),
    ] {
        create(
            &app,
            &token,
            ITEMS,
            json!({"name": name, "sku": sku, "quantity": quantity}),
        )
        .await;
    }
    let skus = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["sku"].as_str().expect("sku").to_owned())
            .collect()
    };
    let cases: [(&str, [&str; 4]); 6] = [
        ("sort=name,-quantity", ["A-3", "A-1", "B-1", "C-1"]),
        ("sort=-name,quantity", ["C-1", "B-1", "A-1", "A-3"]),
        ("sort=quantity", ["C-1", "A-1", "B-1", "A-3"]),
        ("sort=-quantity", ["A-3", "B-1", "A-1", "C-1"]),
        ("sort=sku", ["A-1", "A-3", "B-1", "C-1"]),
        ("sort=created_at", ["A-1", "B-1", "A-3", "C-1"]),
    ];

    for (query, expected) in cases {
        let page = list(&app, &token, &format!("{ITEMS}?{query}")).await;
        assert_eq!(skus(&page), expected.to_vec(), "{query}");
    }
    let page = list(
        &app,
        &token,
        &format!("{ITEMS}?sort=name,-quantity&limit=2&offset=1"),
    )
    .await;
    assert_eq!(skus(&page), vec!["A-1", "B-1"]);
}

#[tokio::test]
async fn bad_filters_and_sorts_are_400_naming_what_is_wrong() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    let cases = [
        ("colour=red", "colour"),
        ("colour[eq]=red", "colour"),
        ("quantity[approx]=3", "approx"),
        ("name[contains]=x", "contains"),
        ("sort=colour", "colour"),
        ("sort=name,-colour", "colour"),
        ("tenant_id=x", "tenant_id"),
        ("tenant_id[in]=x,y", "tenant_id"),
        ("tenant_id[null]=true", "tenant_id"),
        ("sort=tenant_id", "tenant_id"),
        ("sort=-tenant_id", "tenant_id"),
        ("quantity=abc", "quantity"),
        ("quantity[gt]=1.5", "quantity"),
        ("quantity[in]=1,x", "quantity"),
        ("price[gt]=cheap", "price"),
        ("price[null]=maybe", "price"),
        ("created_at[gte]=yesterday", "created_at"),
    ];

    for (query, name) in cases {
        let (status, problem) = app.get(&format!("{ITEMS}?{query}"), &token).await;
        assert_names(status, &problem, name);
    }
    // several at once: all reported
    let (status, problem) = app
        .get(
            &format!("{ITEMS}?colour=red&sort=-tenant_id&limit=0"),
            &token,
        )
        .await;
    for name in ["colour", "tenant_id", "limit"] {
        assert_names(status, &problem, name);
    }
}

// ---------------------------------------------------------------------------
// 6. Permissions
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    List,
    Read,
    Create,
    Update,
    Delete,
}

const OPS: [Op; 5] = [Op::List, Op::Read, Op::Create, Op::Update, Op::Delete];

fn permission_of(op: Op) -> &'static str {
    match op {
        Op::List | Op::Read => "INVENTORY_VIEW",
        Op::Create | Op::Update => "INVENTORY_EDIT",
        Op::Delete => "INVENTORY_DELETE",
    }
}

#[tokio::test]
async fn each_role_gets_exactly_the_operations_its_inventory_grants_allow() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    // (role, granted permissions per the inventory manifest)
    let roles: [(&str, &[&str]); 5] = [
        (
            "ADMIN",
            &["INVENTORY_VIEW", "INVENTORY_EDIT", "INVENTORY_DELETE"],
        ),
        ("EMPLOYEE", &["INVENTORY_VIEW", "INVENTORY_EDIT"]),
        ("VIEWER", &["INVENTORY_VIEW"]),
        ("WAREHOUSE_CLERK", &["INVENTORY_VIEW", "INVENTORY_EDIT"]),
        ("", &[]),
    ];
    let mut failures = Vec::new();
    let mut n = 0;
    for (role, granted) in roles {
        let email = format!("u{}@acme.test", role.to_lowercase().replace('_', "-"));
        let role_list: Vec<&str> = if role.is_empty() { vec![] } else { vec![role] };
        let (_, token) = app.user(&admin, "acme", &email, &role_list).await;
        for base in [ITEMS, SUPPLIERS] {
            for op in OPS {
                n += 1;
                // a fresh row (by the tenant admin) for each attempt
                let row_body = |n: i32| {
                    if base == ITEMS {
                        json!({"name": "Thing", "sku": format!("S-{n}")})
                    } else {
                        json!({"name": format!("Supplier {n}")})
                    }
                };
                let row = create(&app, &admin, base, row_body(n)).await;
                let path = format!("{base}/{}", id_of(&row));
                let (status, body) = match op {
                    Op::List => app.get(base, &token).await,
                    Op::Read => app.get(&path, &token).await,
                    Op::Create => app.post(base, &token, row_body(n + 10_000)).await,
                    Op::Update => app.patch(&path, &token, json!({"name": "Renamed"})).await,
                    Op::Delete => app.delete(&path, &token).await,
                };
                let permission = permission_of(op);
                let allowed = granted.contains(&permission);
                let expected = match (allowed, op) {
                    (false, _) => StatusCode::FORBIDDEN,
                    (true, Op::Create) => StatusCode::CREATED,
                    (true, Op::Delete) => StatusCode::NO_CONTENT,
                    (true, _) => StatusCode::OK,
                };
                let label = if role.is_empty() { "(no role)" } else { role };
                if status != expected {
                    failures.push(format!(
                        "{label} {op:?} {base}: expected {expected}, got {status} {body}"
                    ));
                } else if !allowed
                    && !body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(permission))
                {
                    failures.push(format!(
                        "{label} {op:?} {base}: 403 detail should name {permission}: {body}"
                    ));
                }
                // a refused write changed nothing
                if !allowed && matches!(op, Op::Update | Op::Delete) {
                    let (status, got) = app.get(&path, &admin).await;
                    if status != StatusCode::OK || got != row {
                        failures.push(format!("{label} {op:?} {base}: row changed: {got}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn entity_routes_need_a_token() {
    let app = inventory_app().await;
    let item = create(
        &app,
        &app.root_token,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1"}),
    )
    .await;
    let path = format!("{ITEMS}/{}", id_of(&item));
    for (method, target, body) in [
        (Method::GET, ITEMS, None),
        (Method::POST, ITEMS, Some(json!({"name": "x", "sku": "X"}))),
        (Method::GET, path.as_str(), None),
        (Method::PATCH, path.as_str(), Some(json!({"quantity": 1}))),
        (Method::DELETE, path.as_str(), None),
    ] {
        let (status, problem) = app.call(method, target, None, body).await;
        assert_problem(status, &problem, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(total(&app, &app.root_token, ITEMS).await, 1);
}

#[tokio::test]
async fn an_operation_the_manifest_does_not_expose_is_405() {
    let app = app_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/plugins/loyalty/install",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let customer = create(
        &app,
        &admin,
        "/api/loyalty/customer",
        json!({"name": "Ann", "email": "ann@example.com"}),
    )
    .await;
    let entry = create(
        &app,
        &admin,
        "/api/loyalty/ledger",
        json!({"customer": id_of(&customer), "points": 10}),
    )
    .await;
    let path = format!("/api/loyalty/ledger/{}", id_of(&entry));

    for target in [path.as_str(), &format!("/api/loyalty/ledger/{NO_SUCH_ID}")] {
        let (status, problem) = app.patch(target, &admin, json!({"points": 20})).await;
        assert_problem(status, &problem, StatusCode::METHOD_NOT_ALLOWED);
        let (status, problem) = app.delete(target, &admin).await;
        assert_problem(status, &problem, StatusCode::METHOD_NOT_ALLOWED);
    }

    let (status, got) = app.get(&path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, entry, "ledger entry unchanged");
    assert_eq!(total(&app, &admin, "/api/loyalty/ledger").await, 1);
}

#[tokio::test]
async fn an_unknown_plugin_is_404() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    for (method, target, body) in [
        (Method::GET, "/api/nosuch/item".to_owned(), None),
        (
            Method::POST,
            "/api/nosuch/item".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/api/nosuch/item/{NO_SUCH_ID}"), None),
        (
            Method::PATCH,
            format!("/api/nosuch/item/{NO_SUCH_ID}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::DELETE,
            format!("/api/nosuch/item/{NO_SUCH_ID}"),
            None,
        ),
    ] {
        let (status, problem) = app.call(method, &target, Some(&token), body).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn an_unknown_entity_is_404_naming_the_plugins_entities() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    for (method, target, body) in [
        (Method::GET, "/api/inventory/widget".to_owned(), None),
        (
            Method::POST,
            "/api/inventory/widget".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::GET,
            format!("/api/inventory/widget/{NO_SUCH_ID}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/inventory/widget/{NO_SUCH_ID}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::DELETE,
            format!("/api/inventory/widget/{NO_SUCH_ID}"),
            None,
        ),
    ] {
        let (status, problem) = app.call(method.clone(), &target, Some(&token), body).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND);
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains("item") && detail.contains("supplier"),
            "{method} {target}: detail names the entities: {problem}"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. Not installed
// ---------------------------------------------------------------------------

#[tokio::test]
async fn after_uninstall_every_verb_is_403_and_reinstalling_brings_the_rows_back() {
    let app = inventory_app().await;
    let (_, admin) = app.tenant("acme").await;
    let supplier = create(&app, &admin, SUPPLIERS, json!({"name": "Acme"})).await;
    let item = create(
        &app,
        &admin,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1", "supplier": id_of(&supplier)}),
    )
    .await;
    let item_path = format!("{ITEMS}/{}", id_of(&item));
    let supplier_path = format!("{SUPPLIERS}/{}", id_of(&supplier));
    let (status, body) = app
        .call(
            Method::POST,
            "/api/plugins/inventory/uninstall",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let missing = format!("{ITEMS}/{NO_SUCH_ID}");
    let attempts: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, ITEMS, None),
        (Method::GET, SUPPLIERS, None),
        (
            Method::POST,
            ITEMS,
            Some(json!({"name": "Nut", "sku": "N-1"})),
        ),
        (Method::POST, SUPPLIERS, Some(json!({"name": "Other"}))),
        (Method::GET, &item_path, None),
        (Method::GET, &missing, None),
        (Method::PATCH, &item_path, Some(json!({"quantity": 99}))),
        (
            Method::PATCH,
            &supplier_path,
            Some(json!({"name": "Renamed"})),
        ),
        (Method::DELETE, &item_path, None),
        (Method::DELETE, &supplier_path, None),
    ];
    for (method, target, body) in attempts {
        let (status, problem) = app.call(method.clone(), target, Some(&admin), body).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not installed")),
            "{method} {target}: detail says not installed: {problem}"
        );
    }
    // other tenants are unaffected
    create(
        &app,
        &app.root_token,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1"}),
    )
    .await;

    let (status, body) = app
        .call(
            Method::POST,
            "/api/plugins/inventory/install",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, got) = app.get(&item_path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, item, "item back unchanged");
    let (status, got) = app.get(&supplier_path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, supplier, "supplier back unchanged");
    assert_eq!(total(&app, &admin, ITEMS).await, 1);
    assert_eq!(total(&app, &admin, SUPPLIERS).await, 1);
}

// ---------------------------------------------------------------------------
// 8. Tenant isolation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_rows_are_404_on_every_verb_and_stay_unchanged() {
    let app = inventory_app().await;
    let (_, admin_a) = app.tenant("alpha").await;
    let (_, admin_b) = app.tenant("beta").await;
    let supplier_b = create(&app, &admin_b, SUPPLIERS, json!({"name": "B's"})).await;
    let item_b = create(
        &app,
        &admin_b,
        ITEMS,
        json!({"name": "B item", "sku": "B-1", "quantity": 3}),
    )
    .await;

    for (base, row, patch) in [
        (ITEMS, &item_b, json!({"quantity": 99})),
        (SUPPLIERS, &supplier_b, json!({"name": "Stolen"})),
    ] {
        let theirs = format!("{base}/{}", id_of(row));
        let random = format!("{base}/{NO_SUCH_ID}");
        let (s1, p1) = app.get(&theirs, &admin_a).await;
        let (s2, p2) = app.get(&random, &admin_a).await;
        let (s3, p3) = app.patch(&theirs, &admin_a, patch.clone()).await;
        let (s4, p4) = app.patch(&random, &admin_a, patch.clone()).await;
        let (s5, p5) = app.delete(&theirs, &admin_a).await;
        let (s6, p6) = app.delete(&random, &admin_a).await;
        for (s, p) in [
            (s1, &p1),
            (s2, &p2),
            (s3, &p3),
            (s4, &p4),
            (s5, &p5),
            (s6, &p6),
        ] {
            assert_problem(s, p, StatusCode::NOT_FOUND);
        }
        assert_eq!(p1["detail"], p2["detail"], "GET: same as a random id");
        assert_eq!(p3["detail"], p4["detail"], "PATCH: same as a random id");
        assert_eq!(p5["detail"], p6["detail"], "DELETE: same as a random id");

        let (status, got) = app.get(&theirs, &admin_b).await;
        assert_eq!(status, StatusCode::OK, "B still has it: {got}");
        assert_eq!(&got, row, "B's row unchanged");
    }
}

#[tokio::test]
async fn lists_and_filters_never_reach_another_tenants_rows() {
    let app = inventory_app().await;
    let (_, admin_a) = app.tenant("alpha").await;
    let (_, admin_b) = app.tenant("beta").await;
    let b_user = my_user_id(&app, &admin_b).await;
    let mut a_ids = BTreeSet::new();
    for sku in ["A-1", "A-2"] {
        a_ids.insert(id_of(
            &create(&app, &admin_a, ITEMS, json!({"name": "shared", "sku": sku})).await,
        ));
    }
    let mut b_ids = Vec::new();
    for sku in ["B-1", "B-2", "B-3"] {
        b_ids.push(id_of(
            &create(&app, &admin_b, ITEMS, json!({"name": "shared", "sku": sku})).await,
        ));
    }

    let page = list(&app, &admin_a, ITEMS).await;
    assert_eq!(page["total"], 2);
    assert_eq!(ids(&page).into_iter().collect::<BTreeSet<_>>(), a_ids);
    let page = list(&app, &admin_b, ITEMS).await;
    assert_eq!(page["total"], 3);

    let queries = [
        format!("id={}", b_ids[0]),
        format!("id[in]={}", b_ids.join(",")),
        "sku=B-1".to_owned(),
        "sku[in]=B-1,B-2".to_owned(),
        "sku[like]=B-".to_owned(),
        format!("created_by={b_user}"),
    ];
    for query in &queries {
        let page = list(&app, &admin_a, &format!("{ITEMS}?{query}")).await;
        assert_eq!(page["total"], 0, "{query}: {page}");
        assert_eq!(ids(&page), Vec::<String>::new(), "{query}");
    }
    let page = list(&app, &admin_a, &format!("{ITEMS}?name=shared&sort=sku")).await;
    assert_eq!(page["total"], 2);
    assert_eq!(ids(&page).into_iter().collect::<BTreeSet<_>>(), a_ids);
}

// ---------------------------------------------------------------------------
// 9. Restart
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rows_survive_a_restart() {
    let app = inventory_app().await;
    let token = app.root_token.clone();
    let supplier = create(&app, &token, SUPPLIERS, json!({"name": "Acme"})).await;
    let item = create(
        &app,
        &token,
        ITEMS,
        json!({"name": "Bolt", "sku": "B-1", "price": 1.25, "tags": {"k": [1]}, "supplier": id_of(&supplier)}),
    )
    .await;
    let before = list(&app, &token, ITEMS).await;

    let app = app.restart().await;
    let token = app.root_token.clone();

    let (status, got) = app.get(&format!("{ITEMS}/{}", id_of(&item)), &token).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, item);
    assert_eq!(list(&app, &token, ITEMS).await, before);
    let (status, problem) = app
        .post(ITEMS, &token, json!({"name": "Again", "sku": "B-1"}))
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    let (status, problem) = app
        .delete(&format!("{SUPPLIERS}/{}", id_of(&supplier)), &token)
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
}

// ---------------------------------------------------------------------------
// 10. Query plans
// ---------------------------------------------------------------------------

/// Whether an index's first column is `tenant_id`.
fn index_led_by_tenant(conn: &rusqlite::Connection, index: &str) -> bool {
    let mut stmt = conn
        .prepare(&format!("PRAGMA index_info(\"{index}\")"))
        .expect("index_info");
    let cols: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    cols.iter()
        .find(|(seq, _)| *seq == 0)
        .is_some_and(|(_, name)| name == "tenant_id")
}

/// Whether an index is the table's primary key.
fn is_primary_key_index(conn: &rusqlite::Connection, table: &str, index: &str) -> bool {
    let mut stmt = conn
        .prepare(&format!("PRAGMA index_list(\"{table}\")"))
        .expect("index_list");
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(1)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.iter()
        .any(|(name, origin)| name == index && origin == "pk")
}

/// Problems with the plan of `sql` on `table` (empty when every access to
/// the table goes through an index led by tenant_id, or the primary key
/// where `pk_ok`).
fn plan_problems(
    conn: &rusqlite::Connection,
    label: &str,
    sql: &str,
    table: &str,
    pk_ok: bool,
) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap_or_else(|e| panic!("{label}: {sql}: {e}"));
    // parameters stay unbound: the plan does not depend on their values
    let mut rows = stmt.raw_query();
    let mut details: Vec<String> = Vec::new();
    while let Some(row) = rows.next().expect("plan row") {
        details.push(row.get(3).expect("plan detail"));
    }
    let mut problems = Vec::new();
    let mut touched = false;
    for line in &details {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 2 || !matches!(words[0], "SCAN" | "SEARCH") || words[1] != table {
            continue;
        }
        touched = true;
        let index = ["USING COVERING INDEX ", "USING INDEX "]
            .iter()
            .find_map(|p| line.split_once(p).map(|(_, rest)| rest))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned());
        let ok = match index {
            Some(index) => {
                index_led_by_tenant(conn, &index)
                    || (pk_ok && is_primary_key_index(conn, table, &index))
            }
            None => {
                pk_ok
                    && (line.contains("USING INTEGER PRIMARY KEY")
                        || line.contains("USING PRIMARY KEY"))
            }
        };
        if !ok {
            problems.push(format!("{label}: {line} (plan {details:?})"));
        }
    }
    if !touched {
        problems.push(format!("{label}: plan never reads {table}: {details:?}"));
    }
    problems
}

#[tokio::test]
async fn entity_statements_use_an_index_led_by_tenant_id() {
    let app = inventory_app().await;
    for tenant in ["alpha", "beta"] {
        let (_, admin) = app.tenant(tenant).await;
        let supplier = create(&app, &admin, SUPPLIERS, json!({"name": "Acme"})).await;
        for n in 0..5 {
            create(
                &app,
                &admin,
                ITEMS,
                json!({"name": format!("item {n}"), "sku": format!("S-{n}"), "quantity": n, "supplier": id_of(&supplier)}),
            )
            .await;
        }
    }
    let conn = rusqlite::Connection::open_with_flags(
        app.data_dir().join("plinth.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open plinth.db");
    let item_cols = r#""id", "created_at", "updated_at", "created_by", "name", "sku", "quantity", "price", "status", "tags", "supplier""#;
    let supplier_cols = r#""id", "created_at", "updated_at", "created_by", "name", "email""#;
    let item = "inventory_item";
    let supplier = "inventory_supplier";
    let cases: Vec<(&str, String, &str, bool)> = vec![
        (
            "item list page",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 ORDER BY "created_at" DESC, "id" DESC LIMIT ?2 OFFSET ?3"#),
            item,
            false,
        ),
        (
            "item count",
            r#"SELECT COUNT(*) FROM "inventory_item" WHERE tenant_id = ?1"#.to_owned(),
            item,
            false,
        ),
        (
            "supplier list page",
            format!(r#"SELECT {supplier_cols} FROM "inventory_supplier" WHERE tenant_id = ?1 ORDER BY "created_at" DESC, "id" DESC LIMIT ?2 OFFSET ?3"#),
            supplier,
            false,
        ),
        (
            "item get by id",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 AND id = ?2"#),
            item,
            true,
        ),
        (
            "item update",
            r#"UPDATE "inventory_item" SET "updated_at" = ?3, "quantity" = ?4 WHERE tenant_id = ?1 AND id = ?2"#.to_owned(),
            item,
            true,
        ),
        (
            "item delete",
            r#"DELETE FROM "inventory_item" WHERE tenant_id = ?1 AND id = ?2"#.to_owned(),
            item,
            true,
        ),
        (
            "item unique sku check",
            r#"SELECT EXISTS(SELECT 1 FROM "inventory_item" WHERE tenant_id = ?1 AND "sku" = ?2 AND (?3 IS NULL OR id <> ?3))"#.to_owned(),
            item,
            false,
        ),
        (
            "item.supplier ref check",
            r#"SELECT EXISTS(SELECT 1 FROM "inventory_supplier" WHERE tenant_id = ?1 AND "id" = ?2 AND (?3 IS NULL OR id <> ?3))"#.to_owned(),
            supplier,
            true,
        ),
        (
            "supplier still referenced by item check",
            r#"SELECT EXISTS(SELECT 1 FROM "inventory_item" WHERE tenant_id = ?1 AND "supplier" = ?2 AND (?3 IS NULL OR id <> ?3))"#.to_owned(),
            item,
            false,
        ),
        (
            "item filter on name",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 AND "name" = ?2 ORDER BY "created_at" DESC, "id" DESC LIMIT ?3 OFFSET ?4"#),
            item,
            false,
        ),
        (
            "item filter on name and quantity",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 AND "name" = ?2 AND "quantity" >= ?3 ORDER BY "created_at" DESC, "id" DESC LIMIT ?4 OFFSET ?5"#),
            item,
            false,
        ),
        (
            "item count with a filter on name",
            r#"SELECT COUNT(*) FROM "inventory_item" WHERE tenant_id = ?1 AND "name" = ?2"#.to_owned(),
            item,
            false,
        ),
        (
            "item filter on sku",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 AND "sku" IN (?2, ?3) ORDER BY "created_at" DESC, "id" DESC LIMIT ?4 OFFSET ?5"#),
            item,
            false,
        ),
        (
            "item sorted by name",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 ORDER BY "name" ASC, "quantity" DESC, "id" DESC LIMIT ?2 OFFSET ?3"#),
            item,
            false,
        ),
        (
            "item like filter",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 AND "name" LIKE ?2 ESCAPE '\' ORDER BY "created_at" DESC, "id" DESC LIMIT ?3 OFFSET ?4"#),
            item,
            false,
        ),
        (
            "item id[in] filter",
            format!(r#"SELECT {item_cols} FROM "inventory_item" WHERE tenant_id = ?1 AND "id" IN (?2, ?3) ORDER BY "created_at" DESC, "id" DESC LIMIT ?4 OFFSET ?5"#),
            item,
            true,
        ),
    ];

    let mut problems = Vec::new();
    for (label, sql, table, pk_ok) in &cases {
        problems.extend(plan_problems(&conn, label, sql, table, *pk_ok));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // the declared and implied indexes all lead with tenant_id
    for table in [item, supplier] {
        let mut stmt = conn
            .prepare(&format!("PRAGMA index_list(\"{table}\")"))
            .expect("index_list");
        let indexes: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        for (index, origin) in &indexes {
            if origin != "pk" {
                assert!(
                    index_led_by_tenant(&conn, index),
                    "{table}: index {index} leads with tenant_id"
                );
            }
        }
        assert!(
            indexes.len() >= 2,
            "{table} has its own indexes: {indexes:?}"
        );
    }
}
