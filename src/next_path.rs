//! The `next` parameter: where to go after signing in. Only local paths, so latchkey
//! can never be used as an open redirect.

pub const DEFAULT: &str = "/dashboard";

/// A local path has one leading `/`, no scheme, no `//`, no backslash, no whitespace or
/// control characters at its start (or anywhere: browsers strip some of them).
pub fn is_local(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.contains("://")
        && path.len() <= 2048
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
}

pub fn local_or_default(next: Option<&str>) -> String {
    next.filter(|p| is_local(p)).unwrap_or(DEFAULT).to_owned()
}

/// `/login?next=…`, with `next` percent-encoded.
pub fn login_url(next: &str) -> String {
    format!("/login?next={}", encode(next))
}

/// `/auth/renew?next=…`, with `next` percent-encoded.
pub fn renew_url(next: &str) -> String {
    format!("/auth/renew?next={}", encode(next))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for ok in ["/dashboard", "/admin/sessions?user=alice&after=3", "/a/b#c"] {
            assert_eq!(local_or_default(Some(ok)), ok);
        }
    }

    #[test]
    fn anything_that_could_leave_the_site_becomes_the_dashboard() {
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            " /dashboard",
            "\t//evil.example",
            "/\t/evil.example",
            "javascript:alert(1)",
            "dashboard",
            "",
            "/x/http://evil",
        ] {
            assert_eq!(local_or_default(Some(bad)), DEFAULT, "{bad:?}");
        }
        assert_eq!(local_or_default(None), DEFAULT);
    }

    #[test]
    fn next_is_percent_encoded_into_urls() {
        assert_eq!(login_url("/a?b=c&d"), "/login?next=/a%3Fb%3Dc%26d");
    }
}
