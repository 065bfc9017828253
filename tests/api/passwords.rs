//! The password policy (ASVS 6.2): 8..=1024 characters, no composition rules, none of
//! the most common passwords — wherever a password is set.

use latchkey::clock;
use latchkey::domain::{Role, Username};
use latchkey::store::{users, Actor};

use crate::helpers::*;

fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "the command should have failed");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    err
}

#[actix_web::test]
async fn user_add_refuses_common_passwords_in_any_case() {
    let app = spawn_app().await;
    for common in [
        "password", "Password", "12345678", "ILOVEYOU", "sunshine", "trustno1",
    ] {
        let out = app.cli_with_stdin(
            &["user", "add", "bob", "--password-stdin"],
            &format!("{common}\n"),
        );
        let err = refused(&out);
        assert!(err.contains("most common passwords"), "{common}: {err}");
    }
    let listed = String::from_utf8(app.cli(&["user", "list"]).stdout).unwrap();
    assert!(!listed.contains("bob"), "no user was created: {listed}");
}

#[actix_web::test]
async fn user_passwd_refuses_common_passwords_and_keeps_the_old_one() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&client(), "alice").await;

    let err = refused(&app.cli_with_stdin(
        &["user", "passwd", "alice", "--password-stdin"],
        "football\n",
    ));

    assert!(err.contains("most common passwords"), "{err}");
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        200,
        "the old password still works"
    );
    assert_eq!(
        app.get_bearer("/api/me", &access).await.status(),
        200,
        "a refused change revokes nothing"
    );
}

#[actix_web::test]
async fn length_is_the_only_other_rule() {
    let app = spawn_app().await;
    for (name, password, ok) in [
        ("short", "seven77", false),
        ("eight", "tangible", true),
        ("long", &"x".repeat(1024), true),
        ("toolong", &"x".repeat(1025), false),
        ("lower", "no digits or symbols needed here", true),
        ("emoji", "🦀🦀🦀🦀🦀🦀🦀🦀", true),
    ] {
        let out = app.cli_with_stdin(
            &["user", "add", name, "--password-stdin"],
            &format!("{password}\n"),
        );
        assert_eq!(out.status.success(), ok, "{name}: {out:?}");
        if ok {
            assert_eq!(
                app.post_token(&client(), name, password).await.status(),
                200,
                "{name} signs in"
            );
        } else {
            assert!(String::from_utf8_lossy(&out.stderr).contains("8 to 1024 characters"));
        }
    }
}

#[actix_web::test]
async fn a_common_password_set_before_the_policy_still_signs_in() {
    // Sign-in checks only the length, so growing the list never locks anyone out.
    let app = spawn_app().await;
    let mut conn = app.conn();
    users::create(
        &mut conn,
        clock::now(),
        &Username::parse("legacy").unwrap(),
        &legacy_hash("password"),
        Role::User,
        &Actor::cli(),
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        app.post_token(&client(), "legacy", "password")
            .await
            .status(),
        200
    );
}

/// An argon2id hash made outside the policy, as an older release could have stored.
fn legacy_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher as _;
    let params = argon2::Params::new(19_456, 2, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), b"a fixed test salt")
        .unwrap()
        .to_string()
}
