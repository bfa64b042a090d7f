//! `check-config` reports every problem of a config at once and exits non-zero, so an
//! installer fixes a file in one go; the annotated example configs parse.

use std::process::Command;
use vaka_e2e::*;

fn check(binary: &str, config: &std::path::Path) -> (i32, String) {
    let out = Command::new(bin(binary))
        .args(["check-config", "--config", &config.display().to_string()])
        .output()
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn agent_check_config_lists_every_problem_and_fails() {
    let dir = temp_dir("check-agent");
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        r#"device_id = "Home 1"
site = "skelleftea"
[mqtt]
url = "mqtt://broker.example:1883"
[uplink]
heartbeat = "-5s"
max_in_flight = 0
[outbox]
path = "/var/lib/vaka/outbox.db"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (code, text) = check("vaka-agent", &path);
    assert_ne!(code, 0, "{text}");
    for expected in ["device", "allow_plaintext", "heartbeat", "max_in_flight"] {
        assert!(text.contains(expected), "no problem about `{expected}` in:\n{text}");
    }
}

#[test]
fn unknown_key_is_refused_with_its_name_and_line() {
    let dir = temp_dir("check-unknown");
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, "[store]\npath = \"/tmp/x.db\"\n\n[http]\nlisten = \"127.0.0.1:8080\"\napi_token = \"a-long-enough-token-for-the-test-1234\"\nverbose = true\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, text) = check("vaka-hub", &path);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("verbose"), "{text}");
    assert!(text.contains("line 7") || text.contains(":7:") || text.contains("7 |"), "no line number in:\n{text}");
}

#[test]
fn annotated_example_configs_parse_and_only_miss_the_installed_files() {
    for (binary, file) in [("vaka-agent", "agent.toml"), ("vaka-hub", "hub.toml")] {
        let path = workspace_root().join("config").join(file);
        let (code, text) = check(binary, &path);
        // On a developer machine the certificates under /etc/vaka do not exist, and an agent
        // built without the camera-v4l2 feature cannot drive the example's camera; nothing
        // else may be wrong with the examples.
        // Problem lines are every line but the header, which ends with a colon.
        let problems: Vec<&str> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.ends_with(':')).collect();
        assert_eq!(code != 0, !problems.is_empty(), "{file}: exit {code} but problems {problems:?}");
        for line in problems {
            assert!(
                line.contains("/etc/vaka/") || line.contains("feature camera-v4l2"),
                "{file}: unexpected problem: {line}\n{text}"
            );
        }
        assert!(!text.contains("unknown field"), "{file}:\n{text}");
    }
}

#[test]
fn https_certificate_problems_name_the_file_and_why() {
    let dir = temp_dir("check-tls");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    };
    let hub = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap_or_else(|e| panic!("{e}"));
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap_or_else(|e| panic!("{e}"));
    let cert = write("hub.pem", &hub.cert.pem());
    let other_key = write("other.key", &other.signing_key.serialize_pem());
    let config = |http: &str| {
        write(
            "hub.toml",
            &format!("[store]\npath = \"/tmp/x.db\"\n[http]\nlisten = \"127.0.0.1:8080\"\napi_token = \"a-long-enough-token-for-the-test-1234\"\n{http}"),
        )
    };
    let path = config(&format!("tls_cert = {:?}\ntls_key = {:?}\n", cert.display().to_string(), other_key.display().to_string()));
    let (code, text) = check("vaka-hub", &path);
    assert_eq!(code, 2, "{text}");
    let expected = format!("http.tls_key: {} is not the key of the certificate in {}", other_key.display(), cert.display());
    assert!(text.contains(&expected), "{text}");
    let path = config(&format!("tls_cert = {:?}\n", cert.display().to_string()));
    let (code, text) = check("vaka-hub", &path);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("http.tls_cert and http.tls_key come together"), "{text}");
    // `serve` refuses to start with the same explanation, without a panic.
    let out = Command::new(bin("vaka-hub"))
        .args(["serve", "--config", &path.display().to_string()])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("http.tls_key: missing") && !text.contains("panicked"), "{text}");
}

#[test]
fn a_postgresql_database_url_is_checked_for_syntax_and_reachability() {
    let dir = temp_dir("check-pg");
    let write = |name: &str, url: &str| {
        let path = dir.path().join(name);
        let text = format!(
            "[store]\npath = \"{}\"\ndatabase_url = \"{url}\"\n\n[http]\nlisten = \"127.0.0.1:8080\"\napi_token = \"a-long-enough-token-for-the-test-1234\"\n",
            dir.path().join("hub.db").display()
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    };
    let (code, text) = check("vaka-hub", &write("bad.toml", "mysql://nowhere"));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("store.database_url") && text.contains("postgres://"), "{text}");
    // Port 9 (discard) has no PostgreSQL: the problem names where, never the password.
    let (code, text) = check("vaka-hub", &write("down.toml", "postgres://vaka:hemligt@127.0.0.1:9/vaka"));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot connect to PostgreSQL") && text.contains("port 9"), "{text}");
    assert!(!text.contains("hemligt"), "{text}");
}
