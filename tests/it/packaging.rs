//! What an operator installs beside the binary (issue 15, item 12): shell completions and
//! man pages generated from the clap definitions, and the systemd unit — checked by
//! bash, man and systemd's own analyzers, and its command line run for real.

use std::path::Path;
use std::process::Command;

use crate::support::ServeProcess;

fn agentidp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentidp"));
    for var in ["DATABASE_URL", "REDIS_URL", "AGENTIDP_CONFIG", "AGENTIDP_LISTEN", "AGENTIDP_DATA_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completes_subcommands_and_flags_from_the_generated_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("agentidp.bash");
    std::fs::write(&script, stdout(agentidp().args(["completions", "bash"]))).unwrap();
    // Load the script into bash and ask its completion function what it offers.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {script:?}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE={line:?}; COMP_POINT={point}; \
             _agentidp agentidp \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = words.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(" "),
            cword = words.len() - 1,
            point = line.len(),
        );
        stdout(Command::new("bash").args(["--norc", "-c", &program]))
    };
    let top = complete("agentidp ");
    for sub in ["serve", "ctl", "bootstrap", "backup", "completions", "man"] {
        assert!(top.lines().any(|l| l == sub), "{sub} not offered: {top}");
    }
    let ctl = complete("agentidp ctl agents ");
    assert!(ctl.lines().any(|l| l == "suspend"), "{ctl}");
    let flags = complete("agentidp serve --tls");
    assert!(flags.lines().any(|l| l == "--tls-cert") && flags.lines().any(|l| l == "--tls-key"), "{flags}");
    for shell in ["zsh", "fish"] {
        assert!(stdout(agentidp().args(["completions", shell])).contains("ctl"), "{shell}");
    }
}

/// The man pages, in a MANPATH layout: `man` renders each, and every subcommand has one.
fn man_pages(dir: &Path) -> std::path::PathBuf {
    let man1 = dir.join("man1");
    stdout(agentidp().args(["man", "--output-dir"]).arg(&man1));
    man1
}

#[test]
fn man_pages_cover_every_subcommand_and_render() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = man_pages(dir.path());
    for page in ["agentidp", "agentidp-serve", "agentidp-ctl", "agentidp-ctl-audit-export", "agentidp-backup"] {
        assert!(man1.join(format!("{page}.1")).exists(), "{page}.1 missing");
    }
    let serve = stdout(Command::new("man").env("MANWIDTH", "200").arg("-l").arg(man1.join("agentidp-serve.1")));
    for flag in ["--tls-cert", "--issuer", "--data-dir", "AGENTIDP_TOKEN_TTL"] {
        assert!(serve.contains(flag), "the serve page names {flag}");
    }
    let top = stdout(agentidp().arg("man"));
    assert!(top.starts_with(".ie") || top.contains(".TH agentidp"), "roff on stdout: {}", &top[..top.len().min(200)]);
}

#[tokio::test]
async fn the_systemd_unit_verifies_is_hardened_and_its_command_serves() {
    let unit_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/agentidp.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let man1 = man_pages(dir.path());
    // The unit as installed, with this build at the path the unit names.
    let unit = dir.path().join("agentidp.service");
    std::fs::write(&unit, unit_text.replace("/usr/local/bin/agentidp", env!("CARGO_BIN_EXE_agentidp"))).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", man1.parent().unwrap())
        .output()
        .expect("systemd-analyze (Debian's systemd) must be installed");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // systemd's own exposure score: 0 (locked down) to 10; "OK" is below 2.
    let security =
        stdout(Command::new("systemd-analyze").args(["security", "--offline=true", "--no-pager"]).arg(&unit));
    let score: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for agentidp.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {security}"));
    assert!(score < 2.0, "exposure {score}: {security}");

    // The ExecStart command line, run with a temporary data dir and port: it serves.
    let exec = unit_text.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/agentidp"));
    let data = dir.path().join("data");
    let mut cmd = agentidp();
    let mut skip_next = false;
    for word in words {
        match word {
            _ if skip_next => skip_next = false,
            "--listen" => skip_next = true, // ServeProcess picks a free port
            "/var/lib/agentidp" => {
                cmd.arg(&data);
            }
            other => {
                cmd.arg(other);
            }
        }
    }
    let node = ServeProcess::start(cmd).await;
    assert!(reqwest::get(format!("{}/health", node.base)).await.unwrap().status().is_success());
    assert!(data.join("agentidp.db").exists(), "the unit's data dir holds the store");
}
