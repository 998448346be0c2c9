//! OIDC JWTs against a JWKS served by a tiny server on loopback (its discovery
//! document and key set): a good token works with the role and tenant it carries;
//! `alg: none`, HS256 signed with the public key, an unknown `kid`, another issuer or
//! audience, an expired token and one without a role are all refused.

mod common;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::req;
use cp_server::{AppState, OidcConfig};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

struct Issuer {
    url: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

async fn issuer() -> Issuer {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let public = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig", "x": B64.encode(&public)}]});
    let disc = json!({"issuer": url, "jwks_uri": format!("{url}/jwks.json")});
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(disc) }),
        )
        .route(
            "/jwks.json",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer { url, pkcs8, public }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(i: &Issuer, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(&i.pkcs8)).unwrap()
}

fn claims(i: &Issuer) -> Value {
    json!({"iss": i.url, "aud": "controlplane", "sub": "alice", "exp": now() + 600, "controlplane_role": "editor"})
}

fn unsigned(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(claims).unwrap()),
        B64.encode(sig)
    )
}

#[tokio::test]
async fn jwts_from_the_issuer_are_accepted_and_forgeries_refused() {
    let i = issuer().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut c = common::config(
        vec!["platform=process".into()],
        &tmp.path().join("dev"),
        &tmp.path().join("server"),
    );
    c.oidc = Some(OidcConfig::new(&i.url, "controlplane"));
    c.auth_failures_per_minute = 1000;
    let state = AppState::new(c);
    let who = |t: String| {
        let state = state.clone();
        async move {
            req(Method::GET, "/api/v1/whoami")
                .bearer(&t)
                .send(&state)
                .await
        }
    };

    let good = who(sign(&i, "k1", &claims(&i))).await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text());
    assert_eq!(
        good.json(),
        json!({"actor": "oidc:alice", "role": "editor", "tenant": null, "via": "oidc"})
    );
    // A list of roles: the highest counts; a tenant claim scopes.
    let mut c2 = claims(&i);
    c2["controlplane_role"] = json!(["viewer", "admin"]);
    c2["controlplane_tenant"] = json!("acme");
    let scoped = who(sign(&i, "k1", &c2)).await.json();
    assert_eq!(
        (scoped["role"].clone(), scoped["tenant"].clone()),
        (json!("admin"), json!("acme"))
    );
    // Within the leeway, an expired token still passes; beyond it, not.
    let mut skew = claims(&i);
    skew["exp"] = json!(now() - 30);
    assert_eq!(who(sign(&i, "k1", &skew)).await.status, StatusCode::OK);

    let refused = |name: &'static str, token: String| async move {
        let a = who(token).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{name}: {}", a.text());
        assert_eq!(a.json()["message"], "invalid credentials", "{name}");
    };
    let c = claims(&i);
    refused(
        "alg none",
        unsigned(&json!({"alg": "none", "typ": "JWT", "kid": "k1"}), &c, b""),
    )
    .await;
    refused("alg none, no signature part", {
        let t = unsigned(&json!({"alg": "none", "kid": "k1"}), &c, b"");
        t.trim_end_matches('.').to_owned()
    })
    .await;
    let hs = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(&i.public)).unwrap()
    };
    refused("HS256 signed with the public key", hs).await;
    let hs_x = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(
            &h,
            &c,
            &EncodingKey::from_secret(B64.encode(&i.public).as_bytes()),
        )
        .unwrap()
    };
    refused("HS256 signed with the JWK's x", hs_x).await;
    refused("unknown kid", sign(&i, "k2", &c)).await;
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = None;
    refused(
        "no kid",
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_der(&i.pkcs8)).unwrap(),
    )
    .await;
    let mut other = claims(&i);
    other["iss"] = json!("http://127.0.0.1:1");
    refused("another issuer", sign(&i, "k1", &other)).await;
    let mut aud = claims(&i);
    aud["aud"] = json!("someone-else");
    refused("another audience", sign(&i, "k1", &aud)).await;
    let mut old = claims(&i);
    old["exp"] = json!(now() - 3600);
    refused("expired", sign(&i, "k1", &old)).await;
    let mut none = claims(&i);
    none.as_object_mut().unwrap().remove("controlplane_role");
    refused("no role", sign(&i, "k1", &none)).await;
    let mut exp = claims(&i);
    exp.as_object_mut().unwrap().remove("exp");
    refused("no exp", sign(&i, "k1", &exp)).await;
    // A signature from another key under the right kid.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let stranger = Ed25519KeyPair::generate_pkcs8(&rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("k1".into());
    refused(
        "another key",
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_der(&stranger)).unwrap(),
    )
    .await;
    refused("garbage", "a.b.c".into()).await;
}
