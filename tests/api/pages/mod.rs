//! The HTML pages, black-box: forms, CSRF, cookies, redirects, error pages.

mod admin;
mod browser;
mod dashboard;
mod login;
mod mfa;
mod passkeys;

use reqwest::{Response, StatusCode};

use crate::helpers::*;

/// The value of the first `csrf_token` field in a page.
pub fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("the page has a csrf_token field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts an HTML page in the site's layout with `status`, and returns its body.
pub async fn html_page(response: Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status, "{:?}", response.url());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let body = response.text().await.unwrap();
    assert!(body.contains("<!doctype html>"), "{body}");
    assert!(
        body.contains(r#"class="topbar""#),
        "not in the layout: {body}"
    );
    body
}

impl TestApp {
    pub async fn get_page(&self, client: &reqwest::Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_form(
        &self,
        client: &reqwest::Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// A CSRF token from the sign-in form, for `client`'s cookie session.
    pub async fn login_csrf(&self, client: &reqwest::Client) -> String {
        let response = self.get_page(client, "/login").await;
        csrf_of(&html_page(response, 200).await)
    }

    /// Signs in through the form; returns the response (a 303 on success).
    pub async fn page_sign_in_as(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
        next: &str,
    ) -> Response {
        let csrf = self.login_csrf(client).await;
        self.post_form(
            client,
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", &csrf),
                ("next", next),
            ],
        )
        .await
    }

    /// A browser-like client signed in as `username` through the form.
    pub async fn page_client(&self, username: &str) -> reqwest::Client {
        let client = client();
        let response = self.page_sign_in_as(&client, username, PASSWORD, "").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        client
    }

    /// The CSRF token on a signed-in page.
    pub async fn page_csrf(&self, client: &reqwest::Client, path: &str) -> String {
        let response = self.get_page(client, path).await;
        csrf_of(&html_page(response, 200).await)
    }
}
