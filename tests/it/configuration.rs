//! Configuration as an operator meets it: what is refused and how the refusal names the
//! setting (variable, flag or file key), start-up errors, and the README's table against
//! the one declaration of the settings (`serve --help`).

use crate::cli::agentidp;

#[test]
fn bad_configuration_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentidp.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nunknown_key = 1\n").unwrap();
    let out = agentidp().args(["migrate", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown"));
    let out = agentidp().args(["serve", "--token-ttl", "1"]).output().unwrap();
    assert!(!out.status.success());
}

/// Start-up errors name the setting, where it points and the cause — at once, without
/// the password and without a backtrace.
#[test]
fn startup_errors_name_the_setting_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let out = agentidp()
        .args(["migrate", "--database-url", "postgres://u:hunter2@127.0.0.1:1/x"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("DATABASE_URL (127.0.0.1:1 database x)") && stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("hunter2") && !stderr.contains("backtrace"), "{stderr}");
    let started = std::time::Instant::now();
    let out = agentidp()
        .args(["serve", "--listen", "127.0.0.1:0", "--redis-url", "redis://127.0.0.1:1", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("REDIS_URL (127.0.0.1:1)") && stderr.contains("refused"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[test]
fn a_log_filter_that_does_not_parse_is_an_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out =
        agentidp().args(["migrate", "--data-dir"]).arg(&data).env("AGENTIDP_LOG", "agentidp=loud").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AGENTIDP_LOG=\"agentidp=loud\" is not a log filter"), "{err}");
}

/// Issue 15, item 7: an error names the setting as the operator gave it — the variable
/// when it came from the environment, the flag from the command line, the key and file
/// from the file — for values clap cannot parse and for values out of range alike.
#[test]
fn errors_name_the_variable_the_flag_or_the_file_key_that_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("agentidp.toml");
    std::fs::write(&config, "webhook_timeout = 99\n").unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = agentidp();
        cmd.args(["migrate", "--data-dir"]).arg(&data).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (&[], &[("AGENTIDP_TOKEN_TTL", "abc")], "AGENTIDP_TOKEN_TTL=\"abc\" is not a valid value"),
        (&["--token-ttl", "abc"], &[], "'--token-ttl <TOKEN_TTL>'"),
        (&[], &[("AGENTIDP_TOKEN_TTL", "5")], "AGENTIDP_TOKEN_TTL: the token TTL must be 10 to 86400 seconds"),
        (&["--token-ttl=5"], &[("AGENTIDP_TOKEN_TTL", "60")], "--token-ttl: the token TTL"),
        (&[], &[("AGENTIDP_ISSUER", "ftp://idp")], "AGENTIDP_ISSUER: the issuer must be an absolute http(s) URL"),
        (&["--config", config.to_str().unwrap()], &[], "webhook_timeout in "),
    ];
    for (args, env, expected) in cases {
        let err = run(args, env);
        assert!(err.contains(expected), "{args:?} {env:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Issue 15, item 7, and issue 29, item 5: the README's configuration table and the one
/// declaration of the settings (`serve --help`, generated from it) agree both ways: every
/// setting in the help has a row with its environment variable, its file key (the flag's
/// name in snake_case) and its default; every flag and variable of the table is in the help.
#[test]
fn serve_help_and_the_readme_table_list_the_same_settings() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Configuration").nth(1).unwrap();
    let out = agentidp().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let code = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_string).collect() };
    let rows: Vec<Vec<String>> = section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .map(|row| row.split('|').map(str::trim).map(str::to_string).collect())
        .collect();
    let mut checked = 0;
    for row in &rows {
        for name in code(&row[2]).iter().filter(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_')) {
            assert!(help.contains(name.as_str()), "{name} (README) is not in serve --help");
            checked += 1;
        }
        for flag in code(&row[1]).iter().filter(|f| f.starts_with("--")) {
            assert!(help.contains(flag.as_str()), "{flag} (README) is not in serve --help");
        }
    }
    assert!(checked >= 25, "only {checked} settings read from the README table");
    // Each setting of the help: `      --name <VALUE>` then its text, `[default: …]` and
    // `[env: NAME=]`.
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if line.starts_with("      --") || line.starts_with("  -") {
            let flag = trimmed.split([' ', '=', '[']).find(|w| w.starts_with("--")).unwrap_or_default();
            blocks.push((flag.to_string(), String::new()));
        } else if let Some((_, text)) = blocks.last_mut() {
            text.push_str(trimmed);
            text.push(' ');
        }
    }
    let mut settings = 0;
    for (flag, text) in blocks.iter().filter(|(f, _)| f != "--help" && f != "--json") {
        let env = text.split("[env: ").nth(1).and_then(|e| e.split(['=', ']']).next()).unwrap_or_default();
        let row = rows
            .iter()
            .find(|r| code(&r[1]).iter().any(|f| f == flag))
            .unwrap_or_else(|| panic!("{flag} (serve --help) has no row in the README's table"));
        assert!(code(&row[2]).iter().any(|e| e == env), "{flag}: the README names another variable than {env}");
        let key = flag.trim_start_matches("--").replace('-', "_");
        if flag != "--config" {
            let keys = code(&row[3]);
            assert!(keys.iter().any(|k| *k == key || *k == format!("{key}s")), "{flag}: file key {keys:?}");
        }
        if let Some(default) = text.split("[default: ").nth(1).and_then(|d| d.split(']').next()) {
            let default = default.split(' ').next().unwrap_or_default().trim_end_matches(',');
            assert!(row[4].contains(default), "{flag}: the help's default {default} is not the README's {}", row[4]);
        }
        settings += 1;
    }
    assert!(settings >= 30, "only {settings} settings read from serve --help");
}
