//! The audit log: every documented event is written with its actor, client IP and user
//! agent, and in the same transaction as the change it records.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use latchkey::client::Client;
use latchkey::clock;
use latchkey::domain::{Role, UserId, Username};
use latchkey::store::audit::{self, AuditRow};
use latchkey::store::sessions::{self, Lifetimes, RevokeReason};
use latchkey::store::{lockout, users, Actor, StoreError};
use serde_json::Value;

use crate::helpers::*;

const AGENT: &str = "audit-probe/1.0";

fn probe() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn events(app: &TestApp) -> Vec<AuditRow> {
    let mut conn = app.conn();
    audit::list(&mut conn, None, None, 10_000).unwrap()
}

/// The one event of `kind` about `subject` (with `detail`, when given).
fn find<'a>(
    events: &'a [AuditRow],
    kind: &str,
    subject: &str,
    detail: Option<&str>,
) -> &'a AuditRow {
    let found: Vec<&AuditRow> = events
        .iter()
        .filter(|e| e.kind.as_str() == kind && e.subject_username.as_deref() == Some(subject))
        .filter(|e| detail.is_none() || e.detail.as_deref() == detail)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind} of {subject} ({detail:?}): {events:#?}"
    );
    found[0]
}

fn assert_from_probe(event: &AuditRow, actor: Option<UserId>) {
    assert_eq!(event.ip.as_deref(), Some("127.0.0.1"), "{event:?}");
    assert_eq!(event.user_agent.as_deref(), Some(AGENT), "{event:?}");
    assert_eq!(event.actor_user_id, actor, "{event:?}");
}

async fn sign_in(app: &TestApp, c: &reqwest::Client, username: &str) -> (String, String) {
    let response = app.post_token(c, username, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let refresh = cookie_value(response.headers(), "lk_refresh").unwrap();
    let body: Value = response.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_owned(), refresh)
}

async fn with_refresh(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    probe()
        .post(app.url(path))
        .header("cookie", format!("lk_refresh={token}"))
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn http_events_carry_actor_ip_and_user_agent() {
    let app = spawn_app_with(|s| {
        s.refresh_reuse_grace = Duration::from_secs(1);
        s.login_max_failures = 2;
    })
    .await;
    let alice = app.add_user("alice", Role::User);
    let root = app.add_user("root", Role::Admin);
    let c = probe();

    // Sign-in failure, success; a lockout of an unknown name.
    app.post_token(&c, "alice", "wrong password!").await;
    let (_, stolen) = sign_in(&app, &c, "alice").await;
    for _ in 0..2 {
        app.post_token(&c, "nobody", "wrong password!").await;
    }
    // Refresh reuse after the grace revokes the session.
    let rotated = with_refresh(&app, "/auth/refresh", &stolen).await;
    assert_eq!(rotated.status(), 200);
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        with_refresh(&app, "/auth/refresh", &stolen).await.status(),
        401
    );
    // Sign-out; revoking one's own session; an admin revoking someone else's.
    let (_, refresh) = sign_in(&app, &c, "alice").await;
    assert_eq!(
        with_refresh(&app, "/auth/logout", &refresh).await.status(),
        204
    );
    let (own, _) = sign_in(&app, &c, "alice").await;
    let own_id = app.session_id(&own).await;
    let response = c
        .delete(app.url(&format!("/api/sessions/{own_id}")))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (victim, _) = sign_in(&app, &c, "alice").await;
    let victim_id = app.session_id(&victim).await;
    let (admin, _) = sign_in(&app, &c, "root").await;
    let response = c
        .delete(app.url(&format!("/api/admin/sessions/{victim_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let events = events(&app);
    assert_from_probe(find(&events, "sign_in_failed", "alice", None), None);
    assert_eq!(
        find(&events, "sign_in_failed", "alice", None).subject_user_id,
        Some(alice)
    );
    let succeeded: Vec<_> = events
        .iter()
        .filter(|e| e.kind.as_str() == "sign_in_succeeded")
        .collect();
    assert_eq!(succeeded.len(), 5);
    for event in succeeded {
        assert_from_probe(event, event.subject_user_id);
        assert!(event.session_id.is_some());
    }
    assert_from_probe(find(&events, "locked_out", "nobody", None), None);
    assert_from_probe(find(&events, "refresh_token_reused", "alice", None), None);
    for (reason, actor) in [
        ("refresh_token_reused", None),
        ("signed_out", Some(alice)),
        ("signed_out_by_user", Some(alice)),
        ("revoked_by_admin", Some(root)),
    ] {
        let event = find(&events, "session_revoked", "alice", Some(reason));
        assert_from_probe(event, actor);
        assert!(event.session_id.is_some(), "{event:?}");
    }
    assert!(
        !events
            .iter()
            .any(|e| format!("{e:?}").contains(PASSWORD) || format!("{e:?}").contains(&stolen)),
        "no secret in the audit log"
    );
}

#[actix_web::test]
async fn cli_events_name_the_cli_as_the_actor() {
    let app = spawn_app().await;
    let add = app.cli_with_stdin(
        &["user", "add", "carol", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(add.status.success());
    app.sign_in(&client(), "carol").await;
    for args in [
        &["user", "set-role", "carol", "admin"][..],
        &["user", "set-role", "carol", "user"],
        &["user", "disable", "carol"],
        &["user", "enable", "carol"],
        &["keys", "rotate"],
        &["sessions", "revoke", "--user", "carol"],
    ] {
        let out = app.cli(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = app.cli_with_stdin(
        &["user", "passwd", "carol", "--password-stdin"],
        "carol's second password\n",
    );
    assert!(out.status.success());

    let events = events(&app);
    for (kind, detail) in [
        ("user_created", Some("role user")),
        ("role_changed", Some("user -> admin")),
        ("role_changed", Some("admin -> user")),
        ("user_disabled", None),
        ("user_enabled", None),
        ("password_changed", None),
    ] {
        let event = find(&events, kind, "carol", detail);
        assert_eq!(
            event.user_agent.as_deref(),
            Some("latchkey-cli"),
            "{event:?}"
        );
        assert_eq!((event.ip.as_deref(), event.actor_user_id), (None, None));
    }
    // The demotion from admin revoked carol's session; disabling found none left.
    let revoked = find(&events, "session_revoked", "carol", Some("role_changed"));
    assert_eq!(revoked.user_agent.as_deref(), Some("latchkey-cli"));
    // One key from the server's first start (no actor: the system), one from the CLI.
    let rotated: Vec<_> = events
        .iter()
        .filter(|e| e.kind.as_str() == "key_rotated")
        .map(|e| e.user_agent.as_deref())
        .collect();
    assert_eq!(rotated, [Some("latchkey-cli"), None], "{events:#?}");
    // And the CLI shows them.
    let listed = String::from_utf8(app.cli(&["audit", "list", "--user", "carol"]).stdout).unwrap();
    for kind in [
        "user_created",
        "role_changed",
        "user_disabled",
        "user_enabled",
        "password_changed",
    ] {
        assert!(listed.contains(kind), "{kind}: {listed}");
    }
}

#[actix_web::test]
async fn a_change_and_its_audit_event_commit_together() {
    if sqlite_only("fails audit inserts with a SQLite TEMP trigger") {
        return;
    }
    let app = spawn_app().await;
    let alice = app.add_user("alice", Role::User);
    let life = Lifetimes {
        refresh_ttl: Duration::from_millis(60_000),
        session_max: Duration::from_millis(120_000),
        reuse_grace: Duration::from_millis(1_000),
    };
    let client = Client {
        ip: "127.0.0.1".into(),
        user_agent: AGENT.into(),
    };
    let mut conn = app.conn();
    let now = clock::now();
    let user = users::find_by_id(&mut conn, alice).unwrap();
    let (session, _) = sessions::start(&mut conn, now, (&user).into(), &client, &[7u8; 32], life)
        .unwrap()
        .expect("alice is unchanged");
    let before = audit::list(&mut conn, None, None, 1000).unwrap().len();

    // From now on every audit insert fails: each change must roll back with it.
    conn.batch_execute(
        "CREATE TEMP TRIGGER audit_down BEFORE INSERT ON main.audit_events
         BEGIN SELECT RAISE(ABORT, 'audit is down'); END;",
    )
    .unwrap();
    let actor = Actor::cli();
    let failed = |r: Result<(), StoreError>, what: &str| assert!(r.is_err(), "{what} succeeded");
    failed(
        users::create(
            &mut conn,
            now,
            &Username::parse("bob").unwrap(),
            "x",
            Role::User,
            &actor,
        )
        .map(drop),
        "create",
    );
    failed(
        users::set_role(&mut conn, now, alice, Role::Admin, &actor).map(drop),
        "set_role",
    );
    failed(
        users::set_disabled(&mut conn, now, alice, true, &actor).map(drop),
        "disable",
    );
    failed(
        users::set_password(&mut conn, now, alice, "x", None, &actor).map(drop),
        "passwd",
    );
    failed(
        sessions::revoke(
            &mut conn,
            now,
            session.id,
            None,
            RevokeReason::RevokedByAdmin,
            &actor,
        )
        .map(drop),
        "revoke",
    );
    failed(
        sessions::start(&mut conn, now, (&user).into(), &client, &[8u8; 32], life).map(drop),
        "start",
    );
    let policy = lockout::Policy {
        max_failures: 1,
        ip_max_failures: 1,
        window: Duration::from_millis(60_000),
    };
    failed(
        record_failure(
            &mut conn,
            now,
            "alice",
            Some(alice),
            &Actor::of(None, &client),
            policy,
        )
        .map(drop),
        "record_failure",
    );
    conn.batch_execute("DROP TRIGGER audit_down").unwrap();

    let after = users::find_by_id(&mut conn, alice).unwrap();
    assert_eq!(
        (
            after.role.as_str(),
            after.disabled,
            after.password_hash == user.password_hash
        ),
        ("user", false, true),
        "alice is unchanged"
    );
    assert!(
        users::find_by_name(&mut conn, &Username::parse("bob").unwrap())
            .unwrap()
            .is_none()
    );
    assert_eq!(
        sessions::find(&mut conn, session.id)
            .unwrap()
            .session
            .revoked_at,
        None
    );
    assert_eq!(
        sessions::list_active(&mut conn, now, Some(alice), None, 10)
            .unwrap()
            .len(),
        1,
        "no second session"
    );
    assert_eq!(
        locked_until(&mut conn, now, "alice", "127.0.0.1"),
        None,
        "no lockout without its audit"
    );
    assert_eq!(
        audit::list(&mut conn, None, None, 1000).unwrap().len(),
        before
    );
}
