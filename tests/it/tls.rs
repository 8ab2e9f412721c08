//! `serve --tls-cert/--tls-key` (issue 15, item 9): HTTPS with a self-signed certificate
//! (made by `openssl`), checked by a client that verifies it; the default issuer turns
//! https; a certificate without its key, or with another's, is refused at startup.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn self_signed(dir: &Path, name: &str) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server certificate, not a CA: webpki (rustls) refuses a CA as the end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}-key.pem")))
        .arg("-out")
        .arg(dir.join(format!("{name}-cert.pem")))
        .output()
        .expect("openssl must be installed (scripts/test installs it)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
}

fn agentidp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentidp"));
    for var in ["DATABASE_URL", "REDIS_URL", "AGENTIDP_CONFIG", "AGENTIDP_LISTEN", "AGENTIDP_ISSUER"] {
        cmd.env_remove(var);
    }
    cmd.env("AGENTIDP_LOG", "warn");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_https_with_the_given_certificate_and_an_https_issuer() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path(), "a");
    self_signed(dir.path(), "b");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = agentidp()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(dir.path().join("a-cert.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("a-key.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "agentidp serve --tls-cert did not listen");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/tls_client.py");
    let base = format!("https://localhost:{port}");
    let ca = dir.path().join("a-cert.pem");
    let out = tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(&base).arg(ca).output())
        .await
        .unwrap()
        .unwrap();
    // `agentidp ctl` trusts the certificate it is given, and only then: the server's OAuth
    // answer comes back over HTTPS with --cacert, and without it the handshake fails.
    let ctl = |cacert: Option<std::path::PathBuf>| {
        let mut cmd = agentidp();
        cmd.args(["ctl", "--server", &format!("https://localhost:{port}"), "token", "get"])
            .args(["--client-id", "aidp_ci_unknown", "--client-secret", "aidp_sk_unknown"])
            .env_remove("AGENTIDP_CREDENTIALS");
        if let Some(ca) = cacert {
            cmd.arg("--cacert").arg(ca);
        }
        tokio::task::spawn_blocking(move || cmd.output())
    };
    let trusted = ctl(Some(dir.path().join("a-cert.pem"))).await.unwrap().unwrap();
    let untrusted = ctl(None).await.unwrap().unwrap();
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/health")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(got["status"], 200);
    assert_eq!(got["issuer"], format!("https://127.0.0.1:{port}"), "the default issuer is https");
    assert_eq!(got["token_endpoint"], format!("https://127.0.0.1:{port}/api/v1/oauth2/token"));
    assert!(got["keys"].as_u64().unwrap() >= 1);
    assert_eq!((got["token_status"].as_u64(), got["token_error"].as_str()), (Some(401), Some("invalid_client")));
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let trusted = String::from_utf8_lossy(&trusted.stderr);
    assert!(trusted.contains("401 invalid_client"), "an answer over HTTPS: {trusted}");
    let untrusted = String::from_utf8_lossy(&untrusted.stderr);
    assert!(untrusted.contains("cannot reach") && untrusted.to_lowercase().contains("certificate"), "{untrusted}");

    // A certificate with another's key, or without one, is refused with what is wrong.
    let refuse = |args: Vec<std::ffi::OsString>| {
        let out = agentidp().arg("migrate").arg("--data-dir").arg(dir.path().join("data")).args(args).output();
        let out = out.unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (cert, other_key) = (dir.path().join("a-cert.pem"), dir.path().join("b-key.pem"));
    let err = refuse(vec!["--tls-cert".into(), cert.clone().into(), "--tls-key".into(), other_key.into()]);
    assert!(err.contains("do not make a usable pair"), "{err}");
    let err = refuse(vec!["--tls-cert".into(), cert.into()]);
    assert!(err.contains("--tls-key"), "{err}");
    let err = refuse(vec!["--tls-cert".into(), dir.path().join("none.pem").into(), "--tls-key".into(), "x".into()]);
    assert!(err.contains("--tls-cert") && err.contains("not a readable PEM certificate chain"), "{err}");
    // A path from the environment is named by its variable.
    let out = agentidp()
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("AGENTIDP_TLS_CERT", dir.path().join("a-cert.pem"))
        .env("AGENTIDP_TLS_KEY", dir.path().join("none.pem"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("AGENTIDP_TLS_KEY"), "{err}");
}

/// `serve --tls-cert dir/{name}-cert.pem` on a free port, once it listens.
async fn serve_tls(dir: &Path, name: &str) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = agentidp()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.join(format!("{name}-data")))
        .arg("--tls-cert")
        .arg(dir.join(format!("{name}-cert.pem")))
        .arg("--tls-key")
        .arg(dir.join(format!("{name}-key.pem")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("agentidp serve --tls-cert did not listen");
}

/// Issue 28, item 17: `ctl --cacert` refused the certificate `openssl req -x509` makes
/// by default — marked `CA:TRUE`, which webpki refuses as a server's own
/// (`CaUsedAsEndEntity`). The very certificate given is now trusted for the names it
/// carries; another name, or another such certificate, is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_trusts_the_default_openssl_self_signed_certificate_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, san: &str| {
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "1", "-subj", "/CN=localhost", "-addext", san, "-keyout"])
            .arg(dir.path().join(format!("{name}-key.pem")))
            .arg("-out")
            .arg(dir.path().join(format!("{name}-cert.pem")))
            .output()
            .expect("openssl must be installed (scripts/test installs it)");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.path().join(format!("{name}-cert.pem")))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"), "openssl's default is a CA certificate");
    };
    make("ca", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    make("other", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    let (mut server, port) = serve_tls(dir.path(), "ca").await;
    let ctl = |host: &str, cacert: &str| {
        let mut cmd = agentidp();
        cmd.args(["ctl", "--server", &format!("https://{host}:{port}"), "token", "get"])
            .args(["--client-id", "aidp_ci_unknown", "--client-secret", "aidp_sk_unknown", "--cacert"])
            .arg(dir.path().join(cacert))
            .env_remove("AGENTIDP_CREDENTIALS");
        tokio::task::spawn_blocking(move || cmd.output())
    };
    let by_name = ctl("localhost", "ca-cert.pem").await.unwrap().unwrap();
    let by_address = ctl("127.0.0.1", "ca-cert.pem").await.unwrap().unwrap();
    let another = ctl("localhost", "other-cert.pem").await.unwrap().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    for out in [&by_name, &by_address] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("401 invalid_client"), "an answer over HTTPS: {stderr}");
    }
    let stderr = String::from_utf8_lossy(&another.stderr);
    assert!(stderr.contains("cannot reach") && stderr.to_lowercase().contains("certificate"), "{stderr}");

    // A certificate for another name is refused even when it is the one given.
    make("elsewhere", "subjectAltName=DNS:idp.example");
    let (mut server, port) = serve_tls(dir.path(), "elsewhere").await;
    let mut cmd = agentidp();
    cmd.args(["ctl", "--server", &format!("https://localhost:{port}"), "token", "get"])
        .args(["--client-id", "aidp_ci_unknown", "--client-secret", "aidp_sk_unknown", "--cacert"])
        .arg(dir.path().join("elsewhere-cert.pem"))
        .env_remove("AGENTIDP_CREDENTIALS");
    let wrong_name = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&wrong_name.stderr);
    assert!(!wrong_name.status.success() && stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(!stderr.contains("401"), "{stderr}");
}
