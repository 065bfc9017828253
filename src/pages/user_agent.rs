//! A short, human description of a `User-Agent` ("Firefox 132 on Windows"): enough to
//! recognise one's own devices in a list. Unknown agents are shown as they are.

/// The browser (or program) and operating system a user agent names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub browser: String,
    pub os: String,
}

impl Device {
    pub fn describe(&self) -> String {
        match (self.browser.is_empty(), self.os.is_empty()) {
            (false, false) => format!("{} on {}", self.browser, self.os),
            (false, true) => self.browser.clone(),
            (true, false) => format!("Unknown browser on {}", self.os),
            (true, true) => "Unknown device".to_owned(),
        }
    }
}

/// The major version after `token/` in `ua`, if present.
fn version_after(ua: &str, token: &str) -> Option<String> {
    let start = ua.find(token)? + token.len();
    let major: String = ua[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!major.is_empty()).then_some(major)
}

fn named(name: &str, ua: &str, token: &str) -> String {
    match version_after(ua, token) {
        Some(v) => format!("{name} {v}"),
        None => name.to_owned(),
    }
}

fn browser(ua: &str) -> String {
    // Order matters: most agents also claim to be the ones they derive from.
    const KNOWN: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Vivaldi/", "Vivaldi"),
        ("YaBrowser/", "Yandex Browser"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("CriOS/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("curl/", "curl"),
        ("Wget/", "Wget"),
        ("python-requests/", "Python requests"),
        ("reqwest/", "reqwest"),
        ("latchkey-cli", "latchkey CLI"),
    ];
    for (token, name) in KNOWN {
        if ua.contains(token) {
            return named(name, ua, token);
        }
    }
    if ua.contains("Safari/") && ua.contains("Version/") {
        return named("Safari", ua, "Version/");
    }
    String::new()
}

fn os(ua: &str) -> String {
    const KNOWN: &[(&str, &str)] = &[
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
        ("FreeBSD", "FreeBSD"),
    ];
    KNOWN
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_default()
}

pub fn parse(ua: &str) -> Device {
    Device {
        browser: browser(ua),
        os: os(ua),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(ua: &str) -> String {
        parse(ua).describe()
    }

    #[test]
    fn common_desktop_browsers() {
        assert_eq!(
            described("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
            "Chrome 131 on Windows"
        );
        assert_eq!(
            described("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"),
            "Edge 131 on Windows"
        );
        assert_eq!(
            described(
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
            ),
            "Firefox 133 on Linux"
        );
        assert_eq!(
            described("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"),
            "Safari 18 on macOS"
        );
        assert_eq!(
            described("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"),
            "Headless Chrome 131 on Linux"
        );
    }

    #[test]
    fn phones_are_not_mistaken_for_their_desktop_kin() {
        assert_eq!(
            described("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
            "Safari 18 on iOS"
        );
        assert_eq!(
            described("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"),
            "Chrome 131 on iOS"
        );
        assert_eq!(
            described("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"),
            "Samsung Internet 26 on Android"
        );
    }

    #[test]
    fn programs_and_unknown_agents() {
        assert_eq!(described("curl/8.5.0"), "curl 8");
        assert_eq!(described("latchkey-cli"), "latchkey CLI");
        assert_eq!(described(""), "Unknown device");
        assert_eq!(
            described("Mozilla/5.0 (X11; Linux x86_64)"),
            "Unknown browser on Linux"
        );
    }
}
