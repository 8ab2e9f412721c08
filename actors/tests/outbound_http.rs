//! The outbound HTTP port's adapter against a local server the test runs: bounded in
//! time and size, and redirects are not followed unless asked for.

use std::time::{Duration, Instant};

use agentidp_engine::runtime::outbound::reqwest::ReqwestClient;
use agentidp_engine::runtime::outbound::{HttpClient, OutboundRequest};
use agentidp_engine::EngineError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every connection with `answer` (after reading the head), or
/// never answers when `answer` is empty.
async fn serve(answer: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                if answer.is_empty() {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                let _ = s.write_all(&answer).await;
            });
        }
    });
    format!("http://{addr}")
}

fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n", body.len())
        .into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn answers_are_read_whole_and_keep_their_status() {
    let client = ReqwestClient::new().unwrap();
    let url = serve(response("200 OK", "content-type: application/json\r\n", b"{\"keys\":[]}")).await;
    let resp = client.send(OutboundRequest::get(format!("{url}/jwks"))).await.unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"{\"keys\":[]}"[..]));
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    let url = serve(response("503 Service Unavailable", "", b"down")).await;
    let resp = client.send(OutboundRequest::post(format!("{url}/hook"), b"{}".to_vec())).await.unwrap();
    assert_eq!(resp.status, 503, "an error status is an answer, not a failure");
}

#[tokio::test]
async fn a_body_past_the_cap_fails_with_or_without_a_length() {
    let client = ReqwestClient::new().unwrap();
    let big = vec![b'x'; 4096];
    let url = serve(response("200 OK", "", &big)).await;
    let request = OutboundRequest { max_response_bytes: 1024, ..OutboundRequest::get(url) };
    let err = client.send(request).await.unwrap_err();
    assert!(matches!(&err, EngineError::Unavailable(m) if m.contains("larger than 1024")), "{err:?}");
    // Chunked, no length announced: cut off as it streams.
    let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..8 {
        chunked.extend_from_slice(format!("{:x}\r\n", 512).as_bytes());
        chunked.extend_from_slice(&[b'y'; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let url = serve(chunked).await;
    let request = OutboundRequest { max_response_bytes: 1024, ..OutboundRequest::get(url) };
    assert!(client.send(request).await.is_err());
}

#[tokio::test]
async fn redirects_are_not_followed_by_default() {
    let client = ReqwestClient::new().unwrap();
    let target = serve(response("200 OK", "", b"elsewhere")).await;
    let url = serve(response("302 Found", &format!("location: {target}/\r\n"), b"")).await;
    let resp = client.send(OutboundRequest::get(url.clone())).await.unwrap();
    assert_eq!((resp.status, resp.header("location")), (302, Some(format!("{target}/").as_str())));
    let followed = client.send(OutboundRequest { max_redirects: 2, ..OutboundRequest::get(url) }).await.unwrap();
    assert_eq!((followed.status, followed.body.as_slice()), (200, &b"elsewhere"[..]));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_on_time() {
    let client = ReqwestClient::new().unwrap();
    let url = serve(Vec::new()).await;
    let started = Instant::now();
    let request = OutboundRequest { timeout: Duration::from_millis(300), ..OutboundRequest::get(url) };
    let err = client.send(request).await.unwrap_err();
    assert!(matches!(&err, EngineError::Unavailable(m) if m.contains("timed out")), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // Nothing listening at all: a connection failure, quickly.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = client.send(OutboundRequest::get(format!("http://127.0.0.1:{port}/"))).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)));
}
