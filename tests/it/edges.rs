//! The HTTP edge (issue 9, defects 4 and 11): slow and idle clients cannot hold the
//! server, and malformed or hostile requests get a clear problem, not an empty answer.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::each_backend;
use crate::support::{Backend, JsonBody, Storage, TestApp};

/// Defect 4: ~3,000 half-sent requests were all still held after 106 s and a flood
/// exhausted the file descriptors. With a cap of 32 connections and a 1 s header
/// timeout, 200 slow clients are each dropped within the timeout, and a well-behaved
/// client that arrives behind all of them is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_flood_neither_holds_the_server_nor_locks_out_others() {
    let storage = Storage::new(&Backend::Sqlite).await;
    let limits =
        agentidp::HttpLimits { max_connections: 32, header_read_timeout: Duration::from_secs(1), ..Default::default() };
    let app = TestApp::start_limited(&storage, |_| {}, limits).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    let resp = reqwest::Client::new().get(app.url("/health")).timeout(Duration::from_secs(15)).send().await;
    let waited = started.elapsed();
    assert!(resp.is_ok_and(|r| r.status().is_success()), "a well-behaved client was not served");
    eprintln!("well-behaved client served after {waited:?} behind 200 slow ones (cap 32, timeout 1 s)");
    // Every slow connection has been closed by the server by now or soon.
    let deadline = Instant::now() + Duration::from_secs(10);
    for mut s in slow {
        let mut buf = [0u8; 256];
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let closed = tokio::time::timeout(left, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // hyper may answer 408 first
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow connection is still held");
    }
    // A kept-alive connection that sends nothing more is closed too.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle kept-alive connection is held past the header timeout");
    app.stop().await;
}

/// A client that pipelines `n` requests for `/openapi.json` and never reads. Its small
/// receive buffer makes the server's answers back up at once.
async fn slow_reader(addr: &str, n: usize) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr.parse().unwrap()).await.unwrap();
    s.write_all(&b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(n)).await.unwrap();
    s
}

/// Whether the server closes `s` within `within`. Probed by writing (a closed peer answers
/// with a reset), since reading would take the answers the server is stuck on.
async fn closed_by_server(s: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match s.try_write(b"\r\n") {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return true,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    false
}

/// Issue 28, item 5: connections that pipelined 200 requests each and never read stayed
/// established forever (there was no write timeout). Now a connection whose client takes
/// none of its pending response for `write_timeout` is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_closed_at_the_write_timeout() {
    let storage = Storage::new(&Backend::Sqlite).await;
    let limits = agentidp::HttpLimits { write_timeout: Duration::from_secs(1), ..Default::default() };
    let app = TestApp::start_limited(&storage, |_| {}, limits).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(slow_reader(&addr, 200).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, s) in slow.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(closed_by_server(s, left).await, "slow reader {i} is still held past the write timeout");
    }
    // The server is fine, and a client that reads is served as usual.
    let resp = reqwest::Client::new().get(app.url("/openapi.json")).send().await.unwrap();
    assert!(resp.status().is_success());
    assert!(resp.bytes().await.unwrap().len() > 10_000);
    app.stop().await;
}

/// Issue 28, item 5: with `--max-connections 300`, 300 slow readers held every slot and
/// `/health` from elsewhere timed out for as long as they stayed. Now a newcomer at the
/// cap sheds the connection that has waited longest on its reader: with a cap of 8 and a
/// write timeout far longer than the test, 24 slow readers cannot keep a well-behaved
/// client out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_read_flood_cannot_hold_every_slot() {
    let storage = Storage::new(&Backend::Sqlite).await;
    let limits =
        agentidp::HttpLimits { max_connections: 8, write_timeout: Duration::from_secs(120), ..Default::default() };
    let app = TestApp::start_limited(&storage, |_| {}, limits).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..24 {
        slow.push(slow_reader(&addr, 200).await);
    }
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let started = Instant::now();
        let resp = http.get(app.url("/health")).timeout(Duration::from_secs(20)).send().await;
        assert!(resp.is_ok_and(|r| r.status().is_success()), "a well-behaved client was kept out by slow readers");
        eprintln!("/health served after {:?} behind 24 slow readers (cap 8)", started.elapsed());
        // More slow readers keep arriving.
        for _ in 0..8 {
            slow.push(slow_reader(&addr, 200).await);
        }
    }
    // The oldest slow readers were shed to make room.
    assert!(closed_by_server(&slow[0], Duration::from_secs(10)).await, "the oldest slow reader was not shed");
    drop(slow);
    app.stop().await;
}

/// A body that trickles in is cut off at the body read timeout with a 408 problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_refused_with_408() {
    let storage = Storage::new(&Backend::Sqlite).await;
    let limits = agentidp::HttpLimits { body_read_timeout: Duration::from_secs(1), ..Default::default() };
    let app = TestApp::start_limited(&storage, |_| {}, limits).await;
    let mut s = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    s.write_all(
        b"POST /api/v1/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("answered").unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    app.stop().await;
}

/// Defect 11: the edge cases the probe found, each now a clear answer that agrees with
/// docs/openapi.json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_cases_get_problems_that_agree_with_the_contract() {
    use reqwest::{Method, StatusCode};
    use serde_json::{json, Value};
    let app = crate::support::spawn_app(&Backend::Sqlite).await;
    let admin = app.admin_token().await;
    let is_problem =
        |resp: &reqwest::Response| resp.headers().get("content-type").is_some_and(|v| v == "application/problem+json");
    // Two Authorization headers.
    let resp = app
        .http
        .get(app.url("/api/v1/agents"))
        .header("authorization", format!("Bearer {admin}"))
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(is_problem(&resp));
    // Oversized heads and targets.
    let resp = app.http.get(app.url("/health")).header("x-big", "a".repeat(20_000)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(is_problem(&resp));
    let resp = app.http.get(app.url("/health")).header("x-big", "a".repeat(100_000)).send().await;
    assert!(resp.is_err() || resp.unwrap().status() == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let resp = app.http.get(app.url(&format!("/api/v1/agents?cursor={}", "a".repeat(10_000)))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::URI_TOO_LONG);
    assert!(is_problem(&resp));
    // Wrong methods: 405 with Allow, also on the documents.
    for (method, path, allow) in [
        (Method::POST, "/.well-known/jwks.json", "GET, HEAD"),
        (Method::PUT, "/.well-known/biscuit-public-key", "GET, HEAD"),
        (Method::DELETE, "/.well-known/oauth-authorization-server", "GET, HEAD"),
        (Method::TRACE, "/health", "GET, HEAD"),
        (Method::GET, "/api/v1/oauth2/token", "POST"),
        (Method::HEAD, "/api/v1/oauth2/token", "POST"),
        (Method::PUT, "/api/v1/agents/00000000-0000-0000-0000-000000000000", "DELETE, GET, HEAD, PATCH"),
    ] {
        let resp = app.http.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert!(is_problem(&resp));
    }
    // HEAD on a GET route: the GET's status and headers, no body.
    for path in ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/health"] {
        let get = app.http.get(app.url(path)).send().await.unwrap();
        let length = get.bytes().await.unwrap().len();
        let resp = app.http.head(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(resp.headers()["content-length"], length.to_string().as_str(), "HEAD {path}");
        assert!(resp.bytes().await.unwrap().is_empty(), "HEAD {path} sent a body");
    }
    let resp = app.http.head(app.url("/api/v1/agents")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.http.get(app.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A trailing slash is a 404 naming the canonical path, on every kind of route.
    for (method, path) in [
        (Method::GET, "/.well-known/jwks.json/"),
        (Method::GET, "/health/"),
        (Method::GET, "/api/v1/agents/"),
        (Method::POST, "/api/v1/oauth2/token/"),
        (Method::GET, "/api/v1/webhooks/event-types/"),
    ] {
        let resp = app.http.request(method.clone(), app.url(path)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert!(is_problem(&resp));
        let body: Value = resp.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains(path.trim_end_matches('/')), "{body}");
    }
    // Query and body rules as the contract states them.
    let (status, body) = app.call(Method::GET, "/api/v1/agents?limit=201", &admin, None).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")), "{body}");
    assert_eq!(app.call(Method::GET, "/api/v1/agents?limit=200&cursor=", &admin, None).await.0, StatusCode::OK);
    let agent = format!("/api/v1/agents/{}", app.boot.agent_id);
    let platform = app.platform_token().await;
    let org = format!("/api/v1/organizations/{}", app.boot.org_id);
    for (path, token, body) in [
        (agent.as_str(), &admin, json!({"name": null})),
        (agent.as_str(), &admin, json!({"scopes": null})),
        (org.as_str(), &platform, json!({"name": null})),
        (org.as_str(), &platform, json!(["renamed", "pro"])),
    ] {
        let (status, problem) = app.call(Method::PATCH, path, token, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
    }
    // Every operation of the contract is routed: none answers "no such endpoint".
    let doc: Value = app.http.get(app.url("/openapi.json")).json_body().await;
    let nil = "00000000-0000-0000-0000-000000000000";
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete"].iter().filter(|m| item.get(**m).is_some()) {
            assert!(item[*method]["operationId"].is_string(), "{method} {path} has no operationId");
            let url = app.url(&path.replace("{id}", nil).replace("{cid}", nil));
            let resp = app
                .http
                .request(method.to_uppercase().parse().unwrap(), url)
                .bearer_auth(&platform)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && body["detail"] != "no such endpoint",
                "{method} {path} is in the contract but not served: {status} {body}"
            );
        }
    }
    app.stop().await;
}

// The OAuth forms and their contract agree (found by schemathesis' positive and negative
// data checks): unknown parameters are ignored even when repeated (RFC 6749 §3.2), a
// known one twice is refused, and introspection with a Bearer token and client
// credentials in the body is two authentication methods, refused.
each_backend!(oauth_forms_ignore_unknown_parameters_and_refuse_two_methods, |app| {
    let form = |pairs: &[(&str, &str)]| {
        let (http, url) = (app.http.clone(), app.url("/api/v1/oauth2/token"));
        let body = serde_urlencoded::to_string(pairs).unwrap();
        async move {
            let resp = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (id, secret) = (app.boot.client_id.as_str(), app.boot.client_secret.as_str());
    let base = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    let (status, body) = form(&[&base[..], &[("x-extension", "1"), ("x-extension", "2")]].concat()).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let (status, body) = form(&[&base[..], &[("scope", "agents:read"), ("scope", "agents:write")]].concat()).await;
    assert_eq!((status, body["error"].as_str()), (reqwest::StatusCode::BAD_REQUEST, Some("invalid_request")));

    let bearer = app.admin_token().await;
    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/introspect"))
        .bearer_auth(&bearer)
        .form(&[("token", bearer.as_str()), ("client_assertion_type", "AAA")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
});

/// Defect 11, the rest of it: what hyper refuses before any route runs — a malformed
/// Content-Length, a head past its 64 KiB read cap, a broken request line — was an empty
/// canned answer. It is now the same status with a problem document, and the server goes
/// on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_problem_documents() {
    let storage = Storage::new(&Backend::Sqlite).await;
    let app = TestApp::start(&storage).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let raw = |request: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            // The server may answer (and close) before it has read all of a huge head.
            let _ = s.write_all(&request).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let mut huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 300_000));
    huge.extend(b"\r\n\r\n");
    for (request, status, kind) in [
        (
            b"POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            "400",
            "malformed-request",
        ),
        (
            b"POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
            "400",
            "malformed-request",
        ),
        (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "400", "malformed-request"),
        (huge, "431", "headers-too-large"),
    ] {
        let answer = raw(request).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("\r\ncontent-type: application/problem+json\r\n"), "{answer}");
        let body: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(body["type"], format!("urn:agentidp:problem:{kind}"), "{answer}");
        assert_eq!(body["status"].to_string(), status);
    }
    let health = raw(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()).await;
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");
    app.stop().await;
}

/// Issue 15, item 5: CORS for browser clients of discovery, the JWKS and the token
/// endpoint — the configured origin only, preflights answered, the management API never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_configured_origins_on_the_browser_facing_paths_only() {
    use reqwest::{Method, StatusCode};
    let storage = Storage::new(&Backend::Sqlite).await;
    let limits = agentidp::HttpLimits { cors_origins: vec!["https://app.example".into()], ..Default::default() };
    let app = TestApp::start_limited(&storage, |_| {}, limits).await;
    let http = reqwest::Client::new();
    let allow = |resp: &reqwest::Response| {
        resp.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
    };
    for path in ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/.well-known/did.json"] {
        let resp = http.get(app.url(path)).header("origin", "https://app.example").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(allow(&resp).as_deref(), Some("https://app.example"), "{path}");
        assert!(resp.headers().get_all("vary").iter().any(|v| v == "Origin"), "{path}");
        let other = http.get(app.url(path)).header("origin", "https://evil.example").send().await.unwrap();
        assert_eq!(allow(&other), None, "{path} answered another origin");
    }
    // The token endpoint's preflight, then the request itself (a refusal carries it too).
    let pre = http
        .request(Method::OPTIONS, app.url("/api/v1/oauth2/token"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(allow(&pre).as_deref(), Some("https://app.example"));
    assert_eq!(pre.headers()["access-control-allow-methods"], "POST");
    assert!(pre.headers()["access-control-allow-headers"].to_str().unwrap().contains("content-type"));
    let refused = http
        .post(app.url("/api/v1/oauth2/token"))
        .header("origin", "https://app.example")
        .form(&[("grant_type", "client_credentials"), ("client_id", "x"), ("client_secret", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(allow(&refused).as_deref(), Some("https://app.example"));
    // Not for another origin's preflight, and never on the management API.
    let pre = http
        .request(Method::OPTIONS, app.url("/api/v1/oauth2/token"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(allow(&pre), None);
    let api = http.get(app.url("/api/v1/agents")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(allow(&api), None);
    let pre = http
        .request(Method::OPTIONS, app.url("/api/v1/agents"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await;
}
