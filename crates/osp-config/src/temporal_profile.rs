//! Temporal's own client configuration file (`temporal.toml`, shared with the `temporal`
//! CLI and the other SDKs): the profile named by `TEMPORAL_PROFILE` (default `default`) in
//! `TEMPORAL_CONFIG_FILE` (default `$XDG_CONFIG_HOME/temporalio/temporal.toml`, else
//! `$HOME/.config/temporalio/temporal.toml`). It is the lowest configured layer: the
//! `OSP_CONFIG` file and the environment override it.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Environment variable naming the file.
pub const TEMPORAL_CONFIG_FILE: &str = "TEMPORAL_CONFIG_FILE";
/// Environment variable naming the profile.
pub const TEMPORAL_PROFILE: &str = "TEMPORAL_PROFILE";

/// The chosen profile's settings under OSP's file keys (`temporal.address`, ...).
pub(super) struct ProfileLayer {
    /// `profile `default` in /path/temporal.toml`, for messages.
    pub(super) origin: String,
    pub(super) values: BTreeMap<&'static str, String>,
}

/// What [`load`] needs from its caller.
pub(super) struct Inputs<'a> {
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) read_file: &'a dyn Fn(&std::path::Path) -> std::io::Result<String>,
}

/// Reads the profile; problems are `(key, message)` pairs. A missing default file is no
/// problem; a missing named file or profile is.
pub(super) fn load(
    inputs: &Inputs<'_>,
    problems: &mut Vec<(String, String)>,
) -> Option<ProfileLayer> {
    let explicit_file = (inputs.env)(TEMPORAL_CONFIG_FILE);
    let path = match &explicit_file {
        Some(path) => PathBuf::from(path),
        None => {
            let config_home = (inputs.env)("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| (inputs.env)("HOME").map(|home| PathBuf::from(home).join(".config")))?;
            config_home.join("temporalio").join("temporal.toml")
        }
    };
    let text = match (inputs.read_file)(&path) {
        Ok(text) => text,
        Err(error) => {
            if explicit_file.is_some() {
                problems.push((
                    TEMPORAL_CONFIG_FILE.to_owned(),
                    format!("cannot read `{}`: {}", path.display(), error.kind()),
                ));
            }
            return None;
        }
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        // The parser's message may quote a line holding an API key: say where, not what.
        problems.push((
            TEMPORAL_CONFIG_FILE.to_owned(),
            format!("`{}` is not valid TOML", path.display()),
        ));
        return None;
    };
    let explicit_profile = (inputs.env)(TEMPORAL_PROFILE);
    let name = explicit_profile
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let Some(profile) = table
        .get("profile")
        .and_then(|profiles| profiles.get(&name))
        .and_then(toml::Value::as_table)
    else {
        if explicit_profile.is_some() {
            problems.push((
                TEMPORAL_PROFILE.to_owned(),
                format!("no profile `{name}` in `{}`", path.display()),
            ));
        }
        return None;
    };
    let origin = format!("profile `{name}` in {}", path.display());
    let mut values = BTreeMap::new();
    let text_of = |value: &toml::Value| match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    for (key, value) in profile {
        let target = match key.as_str() {
            "address" => "temporal.address",
            "namespace" => "temporal.namespace",
            "api_key" => "temporal.api_key",
            // The remote codec concerns the CLI and UI, not a worker.
            "codec" => continue,
            "tls" => {
                tls(value, &origin, &mut values, problems);
                continue;
            }
            other => {
                problems.push((
                    format!("{other} in {origin}"),
                    "is not supported by OSP".to_owned(),
                ));
                continue;
            }
        };
        match text_of(value) {
            Some(text) => {
                values.insert(target, text);
            }
            None => problems.push((format!("{key} in {origin}"), "must be a string".to_owned())),
        }
    }
    Some(ProfileLayer { origin, values })
}

fn tls(
    value: &toml::Value,
    origin: &str,
    values: &mut BTreeMap<&'static str, String>,
    problems: &mut Vec<(String, String)>,
) {
    let Some(tls) = value.as_table() else {
        problems.push((format!("tls in {origin}"), "must be a table".to_owned()));
        return;
    };
    // A `[profile.x.tls]` table turns TLS on unless it says `disabled = true`.
    let disabled = tls
        .get("disabled")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    values.insert("temporal.tls.enabled", (!disabled).to_string());
    for (key, value) in tls {
        let target = match key.as_str() {
            "disabled" => continue,
            "client_cert_path" => "temporal.tls.client_cert_path",
            "client_key_path" => "temporal.tls.client_key_path",
            "server_ca_cert_path" => "temporal.tls.server_ca_cert_path",
            "client_cert_data" | "client_key_data" | "server_ca_cert_data" => {
                problems.push((
                    format!("tls.{key} in {origin}"),
                    "is not supported by OSP: use the `_path` form".to_owned(),
                ));
                continue;
            }
            other => {
                problems.push((
                    format!("tls.{other} in {origin}"),
                    "is not supported by OSP".to_owned(),
                ));
                continue;
            }
        };
        match value.as_str() {
            Some(path) => {
                values.insert(target, path.to_owned());
            }
            None => problems.push((
                format!("tls.{key} in {origin}"),
                "must be a string".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use crate::{Sources, WorkerConfig};

    const PROFILE: &str = r#"
        [profile.default]
        address = "default.tmprl.cloud:7233"
        namespace = "default-ns"

        [profile.cloud]
        address = "cloud.tmprl.cloud:7233"
        namespace = "osp.a1b2c"
        api_key = "PROFILE-KEY-SENTINEL"

        [profile.mtls]
        address = "mtls.example.com:7233"
        [profile.mtls.tls]
        client_cert_path = "/certs/client.pem"
        client_key_path = "/certs/client.key"

        [profile.inline]
        address = "inline.example.com:7233"
        grpc_meta = { x = "y" }
        [profile.inline.tls]
        client_cert_data = "-----BEGIN CERTIFICATE-----"
    "#;

    fn load(env: &[(&str, &str)], osp_config: Option<&str>) -> Result<WorkerConfig, String> {
        let mut map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.insert("DATABASE_URL".into(), "postgres://u:pw@db/osp".into());
        let read = |path: &Path| -> std::io::Result<String> {
            match path.to_str() {
                Some("/etc/temporal.toml" | "/home/osp/.config/temporalio/temporal.toml") => {
                    Ok(PROFILE.to_owned())
                }
                Some("/etc/osp.toml") => Ok(osp_config.unwrap_or_default().to_owned()),
                Some("/certs/client.pem") => Ok("-----BEGIN CERTIFICATE-----\nx\n".into()),
                Some("/certs/client.key") => Ok("-----BEGIN PRIVATE KEY-----\nx\n".into()),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            }
        };
        if osp_config.is_some() {
            map.insert("OSP_CONFIG".into(), "/etc/osp.toml".into());
        }
        let config = WorkerConfig::load(&Sources {
            env: &map,
            read_file: &read,
        });
        match config {
            Ok(config) => {
                for shown in [format!("{config}"), format!("{config:?}")] {
                    assert!(!shown.contains("SENTINEL"), "{shown}");
                }
                Ok(config)
            }
            Err(error) => {
                let text = error.to_string();
                assert!(!text.contains("SENTINEL"), "{text}");
                Err(text)
            }
        }
    }

    #[test]
    fn a_profile_configures_temporal_and_the_environment_overrides_it() {
        let file = ("TEMPORAL_CONFIG_FILE", "/etc/temporal.toml");
        let config = load(&[file, ("TEMPORAL_PROFILE", "cloud")], None).unwrap();
        assert_eq!(
            config.temporal.address.to_string(),
            "cloud.tmprl.cloud:7233"
        );
        assert_eq!(config.temporal.namespace, "osp.a1b2c");
        assert_eq!(
            config.temporal.api_key.as_ref().map(|k| k.expose()),
            Some("PROFILE-KEY-SENTINEL")
        );
        assert!(config.temporal.tls.is_some(), "an API key turns TLS on");

        let config = load(
            &[
                file,
                ("TEMPORAL_PROFILE", "cloud"),
                ("TEMPORAL_NAMESPACE", "from-env"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(config.temporal.namespace, "from-env");

        let config = load(
            &[file, ("TEMPORAL_PROFILE", "cloud")],
            Some("[temporal]\nnamespace = \"from-osp-file\"\n"),
        )
        .unwrap();
        assert_eq!(config.temporal.namespace, "from-osp-file");

        let config = load(&[file, ("TEMPORAL_PROFILE", "mtls")], None).unwrap();
        let tls = config.temporal.tls.unwrap();
        assert!(tls.client_cert_pem.is_some() && tls.client_key_pem.is_some());
    }

    #[test]
    fn the_default_profile_of_the_default_file_applies_when_present() {
        let config = load(&[("HOME", "/home/osp")], None).unwrap();
        assert_eq!(
            config.temporal.address.to_string(),
            "default.tmprl.cloud:7233"
        );
        assert_eq!(config.temporal.namespace, "default-ns");
        // No file at the default place: no layer, no problem.
        let error = load(&[("HOME", "/home/nobody")], None).unwrap_err();
        assert!(error.contains("TEMPORAL_ADDRESS: is required"), "{error}");
        assert!(!error.contains("TEMPORAL_CONFIG_FILE"), "{error}");
    }

    #[test]
    fn a_named_file_or_profile_that_is_missing_and_unsupported_keys_are_problems() {
        let error = load(&[("TEMPORAL_CONFIG_FILE", "/etc/missing.toml")], None).unwrap_err();
        assert!(
            error.contains("TEMPORAL_CONFIG_FILE: cannot read `/etc/missing.toml`"),
            "{error}"
        );
        let error = load(
            &[
                ("TEMPORAL_CONFIG_FILE", "/etc/temporal.toml"),
                ("TEMPORAL_PROFILE", "staging"),
            ],
            None,
        )
        .unwrap_err();
        assert!(
            error.contains("TEMPORAL_PROFILE: no profile `staging` in `/etc/temporal.toml`"),
            "{error}"
        );
        let error = load(
            &[
                ("TEMPORAL_CONFIG_FILE", "/etc/temporal.toml"),
                ("TEMPORAL_PROFILE", "inline"),
            ],
            None,
        )
        .unwrap_err();
        assert!(error.contains("grpc_meta in profile `inline`"), "{error}");
        assert!(error.contains("tls.client_cert_data in profile `inline` in /etc/temporal.toml: is not supported by OSP: use the `_path` form"), "{error}");
    }
}
