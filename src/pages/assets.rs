//! The stylesheet, icon and passkey script, compiled into the binary so it runs from any
//! directory. Their URLs carry a content hash, so browsers may cache them for a year.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::HttpResponse;
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../static/icon.svg"),
    },
    Asset {
        name: "passkeys.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/passkeys.js"),
    },
];

/// A short content hash over every asset: a new build with changed assets gets new URLs.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for asset in ASSETS {
        hash.update(asset.body);
    }
    hash.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
});
static CSS_URL: LazyLock<String> =
    LazyLock::new(|| format!("/static/app.css?v={}", VERSION.as_str()));
static ICON_URL: LazyLock<String> =
    LazyLock::new(|| format!("/static/icon.svg?v={}", VERSION.as_str()));
static PASSKEYS_URL: LazyLock<String> =
    LazyLock::new(|| format!("/static/passkeys.js?v={}", VERSION.as_str()));

pub fn css_url() -> &'static str {
    CSS_URL.as_str()
}

pub fn icon_url() -> &'static str {
    ICON_URL.as_str()
}

pub fn passkeys_url() -> &'static str {
    PASSKEYS_URL.as_str()
}

/// The answer to `GET /static/{name}?{query}`, or `None` for a name that is no asset:
/// immutable for a year under the current version, otherwise revalidated, so an old URL
/// never pins stale content.
pub fn response(name: &str, query: &str) -> Option<HttpResponse> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    let current = query.strip_prefix("v=") == Some(VERSION.as_str());
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, cache))
            .content_type(asset.content_type)
            .body(asset.body),
    )
}
