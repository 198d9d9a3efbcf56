//! The committed spec (`openapi/openapi.json`) must equal the one the code generates, and every
//! operation must be documented well enough for a client generator: an operation id, a tag and
//! its error responses. Regenerate with `cargo run -- openapi > openapi/openapi.json`.

use serde_json::Value;

fn committed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
        .expect("openapi/openapi.json is committed")
}

#[test]
fn committed_spec_matches_the_code() {
    let generated = hostwatch::api::spec_json();
    assert!(
        committed().trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json` and commit it"
    );
}

#[test]
fn every_operation_is_documented() {
    let spec: Value = serde_json::from_str(&hostwatch::api::spec_json()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut count = 0;
    for (path, item) in paths {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{id} has no tag"
            );
            assert!(
                op["security"].as_array().is_some_and(|s| !s.is_empty()),
                "{id} is not behind the token"
            );
            let responses = op["responses"].as_object().unwrap();
            for code in ["400", "401", "403", "404", "422"] {
                assert!(
                    responses.contains_key(code),
                    "{id} does not document {code}"
                );
            }
            let err =
                &responses["422"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"];
            assert_eq!(
                err, "#/components/schemas/ErrorBody",
                "{id}: 422 is not the error body"
            );
        }
    }
    assert!(count >= 24, "only {count} operations");
    for id in [
        "create_host",
        "list_hosts",
        "get_host",
        "update_host",
        "delete_host",
        "put_threshold",
        "list_notifications",
        "mark_notification_read",
        "create_url_check",
        "create_channel",
    ] {
        assert!(ids.contains(id), "missing {id}");
    }
    let secrets = &spec["components"]["schemas"]["HostCreate"]["properties"];
    for field in ["private_key", "passphrase", "password"] {
        assert_eq!(
            secrets[field]["writeOnly"], true,
            "{field} is not writeOnly"
        );
    }
    assert!(
        spec["components"]["schemas"]["Host"]["properties"]
            .get("password")
            .is_none()
    );
}
