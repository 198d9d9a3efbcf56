//! Swagger UI at `/docs`: poem-openapi's page (its script and style inline), served under a
//! Content-Security-Policy that allows exactly those inline blocks, by their hashes, and
//! nothing from anywhere else.

use base64::Engine;
use poem::{
    Endpoint, Response,
    endpoint::make_sync,
    http::{StatusCode, header},
};
use sha2::{Digest, Sha256};

/// The `'sha256-…'` sources of every inline `<tag>…</tag>` block of `html`.
fn inline_hashes(html: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start..];
        let Some(body_start) = after.find('>').map(|i| i + 1) else {
            break;
        };
        let Some(body_len) = after[body_start..].find(&close) else {
            break;
        };
        let body = &after[body_start..body_start + body_len];
        let digest = Sha256::digest(body.as_bytes());
        out.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &after[body_start + body_len..];
    }
    out
}

/// The policy of a page whose only scripts and styles are its inline blocks.
pub fn policy_for(html: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'self' data:; \
         font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        inline_hashes(html, "script").join(" "),
        inline_hashes(html, "style").join(" ")
    )
}

/// The page, with its policy.
pub fn endpoint(html: String) -> impl Endpoint {
    let policy = policy_for(&html);
    make_sync(move |_| {
        Response::builder()
            .status(StatusCode::OK)
            .content_type("text/html; charset=utf-8")
            .header(header::CONTENT_SECURITY_POLICY, policy.as_str())
            .body(html.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inline_block_is_allowed_by_its_hash_and_nothing_else() {
        let html = "<html><style charset=\"UTF-8\">a{}</style><script charset=\"UTF-8\">x()</script>\
                    <body><script>\n  y();\n</script></body></html>";
        let policy = policy_for(html);
        let hash = |s: &str| {
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
            )
        };
        assert!(policy.contains(&format!(
            "script-src {} {};",
            hash("x()"),
            hash("\n  y();\n")
        )));
        assert!(policy.contains(&format!("style-src {};", hash("a{}"))));
        assert!(policy.starts_with("default-src 'none';"));
        assert!(!policy.contains("unsafe"));
    }
}
