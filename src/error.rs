//! Every API failure as one enum, mapped to its status and JSON body here and nowhere
//! else. The cause of an unexpected failure goes to the log; the client sees plain words.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::flows::AuthError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("a second factor is required: send a current code or a recovery code as otp (an account without one sets it up on the dashboard first)")]
    MfaRequired,
    #[error("too many failed sign-ins; try again in {0} seconds")]
    TooManyAttempts(i64),
    #[error("the refresh token is missing, unknown, expired or revoked")]
    InvalidRefreshToken,
    #[error("an access token is required")]
    MissingToken,
    #[error("the access token is invalid")]
    InvalidToken,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the session of this access token has been revoked")]
    SessionRevoked,
    #[error("you do not have the role this needs")]
    Forbidden,
    #[error("{0}")]
    CrossSite(&'static str),
    #[error("no such resource")]
    NotFound,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("the request body is larger than 16 KiB")]
    PayloadTooLarge,
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Conflict(String),
    #[error("the service is busy or its database is unavailable; try again")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::MfaRequired => "mfa_required",
            ApiError::TooManyAttempts(_) => "too_many_attempts",
            ApiError::InvalidRefreshToken => "invalid_refresh_token",
            ApiError::MissingToken | ApiError::InvalidToken => "invalid_token",
            ApiError::TokenExpired => "token_expired",
            ApiError::SessionRevoked => "session_revoked",
            ApiError::Forbidden | ApiError::CrossSite(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal_error",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidCredentials
            | ApiError::MfaRequired
            | ApiError::InvalidRefreshToken
            | ApiError::MissingToken
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::SessionRevoked => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden | ApiError::CrossSite(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        // RFC 9110 §15.5.2: every 401 says how to authenticate. RFC 6750 §3: no error
        // attribute when the request carried no token.
        match self {
            ApiError::MissingToken | ApiError::InvalidCredentials | ApiError::MfaRequired => {
                response.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="latchkey""#));
            }
            ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::SessionRevoked
            | ApiError::InvalidRefreshToken => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="latchkey", error="invalid_token""#,
                ));
            }
            ApiError::TooManyAttempts(secs) => {
                response.insert_header((header::RETRY_AFTER, secs.max(&1).to_string()));
            }
            _ => {}
        }
        response.json(Body {
            error: self.code(),
            message: self.to_string(),
        })
    }
}

/// The RFC 6749 §5.2 errors of the native-client token grants (form-encoded
/// `POST /auth/token`), which OAuth client libraries parse instead of ours.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("grant_type must be password or refresh_token")]
    UnsupportedGrantType,
    /// Anything else the flow refused with: answered as the JSON API would, in this shape.
    #[error("{0}")]
    Api(ApiError),
}

impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidCredentials => OAuthError::InvalidGrant("wrong username or password"),
            ApiError::MfaRequired => OAuthError::InvalidGrant(
                "a second factor is required: send a current code or a recovery code as otp",
            ),
            ApiError::InvalidRefreshToken => {
                OAuthError::InvalidGrant("the refresh token is unknown, expired, revoked or reused")
            }
            ApiError::BadRequest(message) => OAuthError::InvalidRequest(message),
            other => OAuthError::Api(other),
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::Api(inner) => inner.status_code(),
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::Api(ApiError::TooManyAttempts(_)) => "invalid_grant",
            OAuthError::Api(ApiError::Unavailable) => "temporarily_unavailable",
            OAuthError::Api(ApiError::PayloadTooLarge | ApiError::UnsupportedMediaType) => {
                "invalid_request"
            }
            OAuthError::Api(_) => "server_error",
        };
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if let OAuthError::Api(ApiError::TooManyAttempts(secs)) = self {
            response.insert_header((header::RETRY_AFTER, secs.max(&1).to_string()));
        }
        response.json(serde_json::json!({
            "error": code,
            "error_description": self.to_string(),
        }))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Unavailable => {
                tracing::warn!("database unavailable (pool exhausted or locked)");
                ApiError::Unavailable
            }
            StoreError::Database(cause) => {
                tracing::error!(error = %cause, "database error");
                ApiError::Internal
            }
        }
    }
}

/// The flows' refusals as the API answers them.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => ApiError::InvalidCredentials,
            AuthError::MfaRequired => ApiError::MfaRequired,
            AuthError::TooManyAttempts(secs) => ApiError::TooManyAttempts(secs),
            AuthError::InvalidRefreshToken => ApiError::InvalidRefreshToken,
            AuthError::BadRequest(message) => ApiError::BadRequest(message),
            AuthError::Store(e) => e.into(),
            AuthError::Internal => ApiError::Internal,
        }
    }
}

impl From<AuthError> for OAuthError {
    fn from(e: AuthError) -> Self {
        ApiError::from(e).into()
    }
}

/// Maps actix's extractor failures (body too large, wrong content type, bad JSON) to
/// our codes. Used by the JSON, query and path configs.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge,
        E::ContentType => ApiError::UnsupportedMediaType,
        E::Deserialize(e) => ApiError::BadRequest(format!(
            "the JSON body is malformed: {}",
            short(&e.to_string())
        )),
        _ => ApiError::BadRequest("the request body could not be read".into()),
    }
    .into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!(
        "the query string is malformed: {}",
        short(&err.to_string())
    ))
    .into()
}

pub fn path_error(_: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::NotFound.into()
}

/// Keeps echoed parser messages short (they may quote the input).
fn short(message: &str) -> String {
    message.chars().take(120).collect()
}
