//! The enrolment QR code, rendered on the server as an SVG document (no JavaScript, no
//! third-party service): the `otpauth://` URI an authenticator app scans.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// `text` as an SVG image, black modules on white, with the standard quiet zone.
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_otpauth_uri_renders_as_an_svg_document() {
        let image = super::svg(
            "otpauth://totp/latchkey:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=latchkey",
        )
        .unwrap();
        assert!(
            image.starts_with("<?xml")
                && image.contains("<svg")
                && image.trim_end().ends_with("</svg>")
        );
        assert!(!image.contains("<script"));
    }
}
