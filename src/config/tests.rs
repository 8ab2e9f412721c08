//! The settings' layers, checked.

use super::*;

fn resolve(toml: &str) -> anyhow::Result<Resolved> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("agentidp.toml");
    std::fs::write(&path, toml)?;
    Settings { config: Some(path), ..Settings::default() }.resolve()
}

/// The defaults the help states (`[default: …]`, what the README's table is checked
/// against) are the real ones: giving a setting its stated default changes nothing.
#[test]
fn every_default_the_help_states_is_the_default() {
    use clap::{Args, FromArgMatches};
    let command = Settings::augment_args(clap::Command::new("agentidp").no_binary_name(true));
    let resolved = |argv: &[String]| {
        let matches = command.clone().try_get_matches_from(argv).unwrap();
        let settings = Settings::from_arg_matches(&matches).unwrap();
        format!("{:?}", settings.resolve().unwrap())
    };
    let none = resolved(&[]);
    let mut checked = 0;
    for arg in command.get_arguments() {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let Some(default) = help.split("[default: ").nth(1).and_then(|d| d.split(']').next()) else { continue };
        let Some(flag) = arg.get_long() else { continue };
        // A default in words ("the issuer", "<data_dir>/master.key") describes it.
        if default.contains([' ', '<']) {
            continue;
        }
        let argv = [format!("--{flag}"), default.to_string()];
        // Nor is one the flag cannot take ("never"), or that needs another setting.
        let Ok(matches) = command.clone().try_get_matches_from(&argv) else { continue };
        let Ok(given) = Settings::from_arg_matches(&matches).unwrap().resolve() else { continue };
        assert_eq!(format!("{given:?}"), none, "--{flag}: the help's default {default:?} is not the default");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} stated defaults checked");
}

#[test]
fn tier_limits_come_from_the_file_and_default_otherwise() {
    let r = resolve(
        "[tiers.free]\nmax_agents = 3\ncalls_per_day = \"unlimited\"\n[tiers.enterprise]\nmax_agents = 50000\n",
    )
    .unwrap();
    let t = &r.engine.tiers;
    assert_eq!((t.free.max_agents, t.free.calls_per_day, t.free.max_webhooks), (Some(3), None, Some(1)));
    assert_eq!(t.pro, agentidp_engine::kernel::tiers::TierTable::default().pro);
    assert_eq!(t.enterprise.max_agents, Some(50_000));
    let err = resolve("[tiers.pro]\nmax_agents = \"lots\"\n").unwrap_err();
    assert!(format!("{err:#}").contains("tiers.pro.max_agents"), "{err:#}");
    assert!(resolve("[tiers.gold]\nmax_agents = 1\n").is_err(), "an unknown tier is refused");
}

#[test]
fn the_issuer_is_an_absolute_http_url_and_a_relative_data_dir_is_the_files() {
    for bad in
        ["idp.example.com", "ftp://idp.example.com", "https://", "https://idp.example.com/?x=1", "https://u:p@idp"]
    {
        let err = resolve(&format!("issuer = {bad:?}\n")).unwrap_err();
        assert!(format!("{err:#}").contains("absolute http(s) URL"), "{bad}: {err:#}");
    }
    assert_eq!(
        resolve("issuer = \"https://idp.example.com/tenant/\"\n").unwrap().engine.issuer,
        "https://idp.example.com/tenant"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentidp.toml");
    std::fs::write(&path, "data_dir = \"state\"\n").unwrap();
    let r = Settings { config: Some(path), ..Settings::default() }.resolve().unwrap();
    assert_eq!(r.engine.data_dir, dir.path().join("state"));
    let r = resolve("listen = \"0.0.0.0:8080\"\n").unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("--issuer")), "{:?}", r.warnings);
    assert!(resolve("listen = \"0.0.0.0:8080\"\nissuer = \"https://idp.example.com\"\n").unwrap().warnings.is_empty());
    let origins = resolve("cors_origins = [\"https://app.example\", \"*\"]\n").unwrap().http.cors_origins;
    assert_eq!(origins, vec!["https://app.example".to_string(), "*".to_string()]);
    for bad in ["app.example", "https://app.example/path", "ftp://app.example"] {
        assert!(resolve(&format!("cors_origins = [{bad:?}]\n")).is_err(), "{bad}");
    }
}
