//! The committed spec (`openapi/openapi.json`) must equal the one the code generates, and every
//! operation must be documented well enough for a client generator: an operation id, a tag and
//! the error responses it can give (and no others). Regenerate with `cargo run -- openapi > openapi/openapi.json`.

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
        // Health and readiness are for probes: no token, nothing but their own answers.
        if !path.starts_with("/api/v1/") {
            assert!(["/healthz", "/readyz"].contains(&path.as_str()), "{path}");
            let op = &item["get"];
            assert!(op["security"].is_null(), "{path} needs no token");
            assert!(!op["responses"].as_object().unwrap().contains_key("401"));
            continue;
        }
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
            // Logging in and out is how a browser gets and drops its credential.
            let open = path == "/api/v1/session" && method != "get";
            assert_eq!(
                op["security"].as_array().is_some_and(|s| !s.is_empty()),
                !open,
                "{id}: behind the token: {}",
                !open
            );
            let responses = op["responses"].as_object().unwrap();
            // Every operation needs a token and can fail inside; writes can meet a viewer's
            // token; an operation on one resource can find it missing. Nothing else is
            // documented unless the operation can answer it.
            // Accounts are the admin's: reading them can be refused too.
            let admin_only =
                path.starts_with("/api/v1/users") || path.starts_with("/api/v1/tokens");
            let write = (method != "get" || admin_only) && !open;
            let one = path.contains('{');
            for (code, needed) in [("401", true), ("500", true), ("403", write), ("404", one)] {
                if open && code == "403" {
                    continue;
                }
                assert_eq!(
                    responses.contains_key(code),
                    needed,
                    "{id}: {code} documented: {}",
                    responses.contains_key(code)
                );
            }
            for (code, response) in responses {
                if code.starts_with('4') || code.starts_with('5') {
                    let err =
                        &response["content"]["application/json; charset=utf-8"]["schema"]["$ref"];
                    assert_eq!(
                        err, "#/components/schemas/ErrorBody",
                        "{id}: {code} is not the error body"
                    );
                }
            }
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

#[test]
fn closed_sets_are_enums_in_the_spec() {
    let spec: Value = serde_json::from_str(&hostwatch::api::spec_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let values = |name: &str| -> Vec<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not an enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        values("HostStatus"),
        [
            "pending",
            "ok",
            "unreachable",
            "auth_failed",
            "host_key_mismatch",
            "unsupported",
            "provision_failed"
        ]
    );
    assert_eq!(values("Level"), ["info", "warning", "critical"]);
    assert_eq!(values("NotificationState"), ["firing", "resolved"]);
    assert!(values("Event").contains(&"de-escalated".to_owned()));
    assert!(values("AlertKind").contains(&"host_unreachable".to_owned()));
    assert!(values("AlertKind").contains(&"provision_failed".to_owned()));
    assert!(values("PollErrorKind").contains(&"probe_failed".to_owned()));
    for (schema, field, enum_name) in [
        ("Host", "status", "HostStatus"),
        ("Notification", "kind", "AlertKind"),
        ("Notification", "level", "Level"),
        ("Notification", "state", "NotificationState"),
        ("Poll", "outcome", "PollOutcome"),
        ("Channel", "kind", "ChannelKind"),
    ] {
        let property = &schemas[schema]["properties"][field];
        let reference = property["$ref"]
            .as_str()
            .or_else(|| property["allOf"][0]["$ref"].as_str())
            .unwrap_or_else(|| panic!("{schema}.{field} is not an enum: {property}"));
        assert_eq!(reference, format!("#/components/schemas/{enum_name}"));
    }
}
