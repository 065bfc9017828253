//! Every page failure as one enum, answered with an HTML page in the site's layout (or
//! the renew redirect). The cause of an unexpected failure goes to the log only.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::layout::Layout;
use crate::auth::flows::AuthError;
use crate::error::ApiError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No valid access cookie: renew it, then come back to this local path.
    #[error("sign-in needs renewing")]
    Renew(String),
    /// `LATCHKEY_REQUIRE_MFA` asks this account for a second factor it has not set up.
    #[error("two-step sign-in must be set up first")]
    EnrolFirst,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("you do not have the role this page needs")]
    Forbidden,
    #[error("this form has expired or did not come from latchkey; go back, reload the page and try again")]
    Csrf,
    #[error("there is no page here")]
    NotFound,
    #[error("this address does not accept that method")]
    MethodNotAllowed,
    #[error("the form is larger than 16 KiB")]
    PayloadTooLarge,
    #[error("the form must be sent as application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    /// A password, code or passkey that was not accepted, where a page did not answer
    /// it with its own form: the reason, as a 401 page.
    #[error("{0}")]
    NotAccepted(String),
    /// The lockout: try again after this many seconds.
    #[error("too many failed attempts; try again in {}", super::when::wait_text(*.0))]
    TooManyAttempts(i64),
    #[error("the service is busy; try again in a moment")]
    Unavailable,
    #[error("something went wrong on our side; it has been logged")]
    Internal,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    message: String,
}

impl PageError {
    fn heading(&self) -> &'static str {
        match self {
            PageError::Forbidden => "Not allowed",
            PageError::Csrf => "This form has expired",
            PageError::NotFound => "Page not found",
            PageError::Unavailable => "Busy",
            PageError::Internal => "Something went wrong",
            _ => "That did not work",
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Renew(_) | PageError::EnrolFirst => StatusCode::SEE_OTHER,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::Forbidden | PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PageError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PageError::NotAccepted(_) => StatusCode::UNAUTHORIZED,
            PageError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::Renew(next) = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, crate::next_path::renew_url(next)))
                .finish();
        }
        if let PageError::EnrolFirst = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, super::mfa::REQUIRED_PATH))
                .finish();
        }
        let page = ErrorPage {
            layout: Layout::bare(),
            status: self.status_code().as_u16(),
            heading: self.heading(),
            message: self.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let PageError::TooManyAttempts(secs) = self {
            response.insert_header((header::RETRY_AFTER, secs.max(&1).to_string()));
        }
        match page.render() {
            Ok(body) => response.content_type("text/html; charset=utf-8").body(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot render the error page");
                response
                    .content_type("text/plain; charset=utf-8")
                    .body(self.to_string())
            }
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "cannot render a page");
        PageError::Internal
    }
}

/// The flows' refusals as pages: a page that does not answer one with its own form
/// still shows a 4xx page for it (with the API's wording), never a 500.
impl From<AuthError> for PageError {
    fn from(e: AuthError) -> Self {
        match e {
            e @ (AuthError::InvalidCredentials | AuthError::MfaRequired) => {
                PageError::NotAccepted(ApiError::from(e).to_string())
            }
            AuthError::TooManyAttempts(secs) => PageError::TooManyAttempts(secs),
            AuthError::InvalidRefreshToken => PageError::Renew(crate::next_path::DEFAULT.into()),
            AuthError::BadRequest(message) => PageError::BadRequest(message),
            AuthError::Store(e) => e.into(),
            AuthError::Internal => PageError::Internal,
        }
    }
}

/// Other API errors (from shared extractors and helpers) as pages.
impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadRequest(message) => PageError::BadRequest(message),
            ApiError::Conflict(message) => PageError::Conflict(message),
            ApiError::Forbidden | ApiError::CrossSite(_) => PageError::Forbidden,
            ApiError::NotFound => PageError::NotFound,
            ApiError::MethodNotAllowed => PageError::MethodNotAllowed,
            ApiError::PayloadTooLarge => PageError::PayloadTooLarge,
            ApiError::UnsupportedMediaType => PageError::UnsupportedMediaType,
            ApiError::Unavailable => PageError::Unavailable,
            ApiError::MissingToken
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::SessionRevoked
            | ApiError::InvalidRefreshToken => PageError::Renew(crate::next_path::DEFAULT.into()),
            // A page that forgot to answer these with its own form still answers a 4xx.
            e @ (ApiError::InvalidCredentials | ApiError::MfaRequired) => {
                PageError::NotAccepted(e.to_string())
            }
            ApiError::TooManyAttempts(secs) => PageError::TooManyAttempts(secs),
            ApiError::Internal => PageError::Internal,
        }
    }
}

/// Form extractor failures (too large, wrong content type, undecodable) as pages.
pub fn form_error(
    err: actix_web::error::UrlencodedError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::UrlencodedError as E;
    match err {
        E::Overflow { .. } => PageError::PayloadTooLarge,
        // A state-changing post that is not a form cannot carry `csrf_token`.
        E::ContentType => PageError::Csrf,
        _ => PageError::BadRequest("the form could not be read".into()),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;
    use actix_web::ResponseError;

    use super::*;

    #[actix_web::test]
    async fn an_internal_error_is_a_page_in_the_layout_without_its_cause() {
        let response = PageError::Internal.error_response();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/html; charset=utf-8"
        );
        let body = to_bytes(response.into_body()).await.unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(body.contains(r#"class="topbar""#));
        assert!(body.contains("Something went wrong"));
    }

    #[test]
    fn a_renew_is_a_303_to_the_renew_endpoint() {
        let response = PageError::Renew("/admin/users?x=1".into()).error_response();
        assert_eq!(response.status(), 303);
        assert_eq!(
            response.headers().get("location").unwrap(),
            "/auth/renew?next=/admin/users%3Fx%3D1"
        );
    }

    /// Every failure a flow can end a page with, but the server's own, is a 4xx page (or
    /// the renew redirect), whether or not the page answered it first.
    #[test]
    fn every_flow_error_on_a_page_is_a_client_error() {
        let flow_errors = [
            ApiError::BadRequest("x".into()),
            ApiError::InvalidCredentials,
            ApiError::MfaRequired,
            ApiError::TooManyAttempts(90),
            ApiError::MissingToken,
            ApiError::InvalidToken,
            ApiError::TokenExpired,
            ApiError::SessionRevoked,
            ApiError::InvalidRefreshToken,
            ApiError::Forbidden,
            ApiError::CrossSite("x"),
            ApiError::Conflict("x".into()),
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType,
        ];
        for error in flow_errors {
            let shown = format!("{error:?}");
            let page = PageError::from(error);
            let status = page.status_code();
            assert!(
                status.is_client_error() || status == StatusCode::SEE_OTHER,
                "{shown} is a {status} page"
            );
            let response = page.error_response();
            assert_eq!(response.status(), status, "{shown}");
        }
        let refusals = [
            AuthError::InvalidCredentials,
            AuthError::MfaRequired,
            AuthError::TooManyAttempts(90),
            AuthError::InvalidRefreshToken,
            AuthError::BadRequest("x".into()),
            AuthError::Store(StoreError::NotFound),
            AuthError::Store(StoreError::Conflict("x".into())),
        ];
        for refusal in refusals {
            let shown = format!("{refusal:?}");
            let status = PageError::from(refusal).status_code();
            assert!(
                status.is_client_error() || status == StatusCode::SEE_OTHER,
                "{shown} is a {status} page"
            );
        }
        let locked = PageError::from(AuthError::TooManyAttempts(90)).error_response();
        assert_eq!(locked.headers().get(header::RETRY_AFTER).unwrap(), "90");
        let locked = PageError::from(ApiError::TooManyAttempts(90)).error_response();
        assert_eq!(locked.headers().get(header::RETRY_AFTER).unwrap(), "90");
        assert_eq!(
            PageError::from(ApiError::Unavailable).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
