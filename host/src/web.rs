//! The browser client at `/web/`: the page, its scripts and the client module, embedded in
//! this binary from `web/page/` and `web/dist/` (built by `web/build.sh`, committed, checked
//! in CI), so serving it needs no files and no wasm toolchain.
//!
//! The page is filled in per request with the SHA-256 of the registry's `1.root.json` (the
//! pin the client checks the root against, shown to the user), the Subresource Integrity
//! values of its stylesheet and scripts, and the SHA-384 of the two files the page loads
//! itself and checks before use: the client module and the transform Worker. Every answer
//! carries a strict Content-Security-Policy: scripts from this origin only (plus
//! `'wasm-unsafe-eval'`, which WebAssembly needs, and the page's one inline script by its
//! hash), the Worker from a `blob:` the page made of the checked bytes, fetches to this
//! origin only, no framing, no forms to elsewhere.

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256, Sha384};

/// The policy on every `/web/` answer: scripts from this origin and the page's one inline
/// script, by its hash ([`inline_script`]). Base64 makes a valid header value; were it not
/// one, `default-src 'none'` would stand instead (a page that does not run, never one
/// without a policy).
pub fn csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let inline =
            base64::engine::general_purpose::STANDARD.encode(Sha384::digest(inline_script()));
        let policy = format!(
            "default-src 'none'; script-src 'self' 'wasm-unsafe-eval' 'sha384-{inline}'; \
             worker-src blob:; connect-src 'self'; style-src 'self'; img-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
    })
}

/// The text of the page's inline `<script>` (its one script without `src`: the message
/// shown when another file of the page fails its integrity check), as the policy hashes it.
fn inline_script() -> &'static str {
    let (_, after) = INDEX.split_once("<script>").unwrap_or_default();
    after.split_once("</script>").map_or("", |(text, _)| text)
}

const INDEX: &str = include_str!("../../web/page/index.html");
const APP: &[u8] = include_bytes!("../../web/page/app.js");
const WORKER: &[u8] = include_bytes!("../../web/page/worker.js");
const STYLE: &[u8] = include_bytes!("../../web/page/style.css");
const GLUE: &[u8] = include_bytes!("../../web/dist/kasane_web.js");
const WASM: &[u8] = include_bytes!("../../web/dist/kasane_web_bg.wasm");

/// An embedded file and its media type.
struct Asset {
    bytes: &'static [u8],
    media_type: &'static str,
}

fn asset(name: &str) -> Option<Asset> {
    let (bytes, media_type) = match name {
        "app.js" => (APP, "text/javascript; charset=utf-8"),
        "worker.js" => (WORKER, "text/javascript; charset=utf-8"),
        "kasane_web.js" => (GLUE, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "kasane_web_bg.wasm" => (WASM, "application/wasm"),
        _ => return None,
    };
    Some(Asset { bytes, media_type })
}

/// `sha384-<base64>`, the Subresource Integrity form.
fn sri(bytes: &[u8]) -> String {
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes))
    )
}

/// The page with everything but the root pin filled in (computed once).
fn template() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let plain = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(Sha384::digest(b));
        INDEX
            .replace("{{SRI_STYLE}}", &sri(STYLE))
            .replace("{{SRI_GLUE}}", &sri(GLUE))
            .replace("{{SRI_APP}}", &sri(APP))
            .replace("{{WASM_SHA384}}", &plain(WASM))
            .replace("{{WORKER_SHA384}}", &plain(WORKER))
    })
}

/// The page for a registry whose first root is `root` (`None`: the registry has none, and
/// the page says the client is unavailable).
pub fn page(root: Option<&[u8]>) -> Response {
    let Some(root) = root else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "registry root unavailable\n",
        )
            .into_response();
    };
    let pin = hex::encode(Sha256::digest(root));
    let body = template().replace("{{ROOT_SHA256}}", &pin);
    with_headers(body.into_response(), "text/html; charset=utf-8")
}

/// `GET /web/<name>`: an embedded file, or 404.
pub fn file(name: &str) -> Response {
    match asset(name) {
        Some(a) => with_headers(a.bytes.into_response(), a.media_type),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// The security headers of every `/web/` answer.
fn with_headers(mut r: Response, media_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CONTENT_SECURITY_POLICY, csp().clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The host serves TLS only: a browser that has seen the page once never tries the name
    // over plain HTTP again (where anyone on the path could serve a page that asks for the
    // password). Browsers ignore it over a certificate they do not accept (a dev host's).
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_and_every_script_has_integrity() {
        let page = template().replace("{{ROOT_SHA256}}", "00");
        assert!(!page.contains("{{"), "a placeholder is left: {page}");
        for line in page.lines().filter(|l| l.contains("<script ")) {
            assert!(line.contains("integrity=\"sha384-"), "no SRI: {line}");
        }
        // The one inline script: allowed by its hash, and the policy is a valid header.
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(inline_script().contains("addEventListener('error'"));
        let policy = csp().to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'none'; script-src 'self' 'wasm-unsafe-eval' 'sha384-")
        );
        assert!(page.contains(&sri(APP)) && page.contains(&sri(GLUE)));
    }

    #[test]
    fn unknown_files_are_not_served() {
        assert_eq!(file("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(file("index.html.bak").status(), StatusCode::NOT_FOUND);
        assert_eq!(file("app.js").status(), StatusCode::OK);
    }
}
