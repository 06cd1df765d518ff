//! Temporal's own client configuration file (`temporal.toml`, shared with the `temporal`
//! CLI and the other SDKs), read by the SDK's `envconfig`: the profile named by
//! `TEMPORAL_PROFILE` (default `default`) in `TEMPORAL_CONFIG_FILE` (default
//! `$XDG_CONFIG_HOME/temporalio/temporal.toml`, else `$HOME/.config/temporalio/temporal.toml`).
//! It is the lowest configured layer: the `OSP_CONFIG` file and the environment override it.
//!
//! The file is read through the injected reader and handed to `envconfig` as bytes, and the
//! profile is chosen here, so that neither the process environment nor the file system is
//! touched; `envconfig`'s own lookup of both is not used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config::ValueKind;
use temporalio_common::envconfig::{
    ClientConfig, ClientConfigFromTOMLOptions, ClientConfigProfile, ConfigError, DEFAULT_PROFILE,
    DataSource,
};

use super::keys::{
    TEMPORAL_ADDRESS, TEMPORAL_API_KEY, TEMPORAL_NAMESPACE, TEMPORAL_TLS,
    TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH,
};
use super::layers::{Layer, invalid_toml};
use super::values::Secret;

/// Environment variable naming the file.
pub const TEMPORAL_CONFIG_FILE: &str = "TEMPORAL_CONFIG_FILE";
/// Environment variable naming the profile.
pub const TEMPORAL_PROFILE: &str = "TEMPORAL_PROFILE";

/// The chosen profile: its shared settings as a layer under OSP's file keys, and what only a
/// profile can say.
pub(super) struct Profile {
    /// `address`, `namespace`, `api_key` and the TLS switch and paths.
    pub(super) layer: Layer,
    /// PEM contents given inline (`client_cert_data`, ...), under the file key of the path
    /// setting they stand in for, with the origin problems name them by.
    pub(super) data: BTreeMap<&'static str, (String, String)>,
    /// The TLS server name (SNI and certificate check) when it differs from the host.
    pub(super) server_name: Option<String>,
    /// gRPC metadata sent with every request; values may be credentials.
    pub(super) grpc_meta: BTreeMap<String, Secret>,
}

/// Problems are `(key, message)` pairs.
type Problems = Vec<(String, String)>;

/// Reads the profile. A missing default file is no problem; a missing named file or profile
/// is.
pub(super) fn load(
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
    problems: &mut Problems,
) -> Option<Profile> {
    let explicit_file = env(TEMPORAL_CONFIG_FILE);
    let path = match &explicit_file {
        Some(path) => PathBuf::from(path),
        None => {
            let config_home = env("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".config")))?;
            config_home.join("temporalio").join("temporal.toml")
        }
    };
    let text = match read_file(&path) {
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
    let mut profiles =
        match ClientConfig::from_toml(text.as_bytes(), ClientConfigFromTOMLOptions::default()) {
            Ok(config) => config.profiles,
            Err(error) => {
                problems.push((
                    TEMPORAL_CONFIG_FILE.to_owned(),
                    describe(&error, &path, &text),
                ));
                return None;
            }
        };
    let explicit_profile = env(TEMPORAL_PROFILE);
    let name = explicit_profile
        .clone()
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let Some(profile) = profiles.remove(&name) else {
        if explicit_profile.is_some() {
            problems.push((
                TEMPORAL_PROFILE.to_owned(),
                format!("no profile `{name}` in `{}`", path.display()),
            ));
        }
        return None;
    };
    let origin = format!("profile `{name}` in {}", path.display());
    Some(convert(profile, &origin, problems))
}

/// What went wrong with the file, without quoting it: the SDK's `LoadError` wraps a TOML or
/// serde error whose text shows the offending line or value, which may be an API key or key
/// data, so only its kind is told (with the place, for a syntax error). `InvalidConfig`
/// texts are the SDK's fixed sentences naming keys, never values.
fn describe(error: &ConfigError, path: &Path, text: &str) -> String {
    match error {
        ConfigError::InvalidConfig(reason) => format!("`{}`: {reason}", path.display()),
        ConfigError::ProfileNotFound(name) => {
            format!("no profile `{name}` in `{}`", path.display())
        }
        ConfigError::LoadError(_) => match text.parse::<toml::Table>() {
            Err(syntax) => invalid_toml(path, text, &syntax),
            Ok(_) => format!(
                "`{}` is not a Temporal client configuration: a key has a value of the wrong type (strings for `address`, `namespace`, `api_key` and the TLS keys, a boolean for `tls.disabled`, a table of strings for `grpc_meta`)",
                path.display()
            ),
        },
    }
}

fn convert(profile: ClientConfigProfile, origin: &str, problems: &mut Problems) -> Profile {
    let mut layer = Layer::default();
    let mut set =
        |file: &str, kind: ValueKind| layer.set(file, format!("{file} in {origin}"), kind);
    for (key, value) in [
        (&TEMPORAL_ADDRESS, profile.address),
        (&TEMPORAL_NAMESPACE, profile.namespace),
        (&TEMPORAL_API_KEY, profile.api_key),
    ] {
        if let Some(value) = value {
            set(key.file, ValueKind::String(value));
        }
    }
    let mut data = BTreeMap::new();
    let mut server_name = None;
    // The remote codec concerns the CLI and UI, not a worker, so `profile.codec` is unused.
    if let Some(tls) = profile.tls {
        // A `[profile.x.tls]` table turns TLS on unless it says `disabled = true`.
        set(
            TEMPORAL_TLS.file,
            ValueKind::Boolean(!tls.disabled.unwrap_or(false)),
        );
        for (key, name, source) in [
            (
                &TEMPORAL_TLS_CLIENT_CERT_PATH,
                "client_cert",
                tls.client_cert,
            ),
            (&TEMPORAL_TLS_CLIENT_KEY_PATH, "client_key", tls.client_key),
            (
                &TEMPORAL_TLS_SERVER_CA_CERT_PATH,
                "server_ca_cert",
                tls.server_ca_cert,
            ),
        ] {
            match source {
                None => {}
                Some(DataSource::Path(path)) => set(key.file, ValueKind::String(path)),
                Some(DataSource::Data(bytes)) => {
                    let at = format!("tls.{name}_data in {origin}");
                    match String::from_utf8(bytes) {
                        Ok(pem) => {
                            data.insert(key.file, (pem, at));
                        }
                        Err(_) => problems.push((at, "is not UTF-8 PEM text".to_owned())),
                    }
                }
                Some(_) => problems.push((
                    format!("tls.{name} in {origin}"),
                    "is a source OSP does not support: use `_path` or `_data`".to_owned(),
                )),
            }
        }
        server_name = tls.server_name;
        if tls.disable_host_verification {
            problems.push((
                format!("tls.disable_host_verification in {origin}"),
                "is not supported by OSP: the server's certificate is always verified (set `server_name` if it names another host)".to_owned(),
            ));
        }
    }
    Profile {
        layer,
        data,
        server_name,
        grpc_meta: profile
            .grpc_meta
            .into_iter()
            .map(|(name, value)| (name, Secret::new(value)))
            .collect(),
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
        [profile.inline.grpc_meta]
        authorization = "Bearer META-SENTINEL"
        x_tenant_id = "osp"
        [profile.inline.tls]
        client_cert_data = "-----BEGIN CERTIFICATE-----\ncert\n"
        client_key_data = "-----BEGIN PRIVATE KEY-----\nKEYDATA-SENTINEL\n"
        server_ca_cert_data = "-----BEGIN CERTIFICATE-----\nca\n"
        server_name = "frontend.internal"

        [profile.unverified]
        address = "unverified.example.com:7233"
        [profile.unverified.tls]
        disable_host_verification = true

        [profile.not_pem]
        address = "not-pem.example.com:7233"
        [profile.not_pem.tls]
        server_ca_cert_data = "CADATA-SENTINEL"
    "#;

    fn load(env: &[(&str, &str)], osp_config: Option<&str>) -> Result<WorkerConfig, String> {
        load_with(PROFILE, env, osp_config)
    }

    /// Loads a worker configuration with `profiles` as the `temporal.toml` file; asserts that
    /// no `SENTINEL` value shows in the result.
    fn load_with(
        profiles: &str,
        env: &[(&str, &str)],
        osp_config: Option<&str>,
    ) -> Result<WorkerConfig, String> {
        let mut map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.insert("DATABASE_URL".into(), "postgres://u:pw@db/osp".into());
        let read = |path: &Path| -> std::io::Result<String> {
            match path.to_str() {
                Some("/etc/temporal.toml" | "/home/osp/.config/temporalio/temporal.toml") => {
                    Ok(profiles.to_owned())
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
    fn a_named_file_or_profile_that_is_missing_is_a_problem() {
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
    }

    const FILE: (&str, &str) = ("TEMPORAL_CONFIG_FILE", "/etc/temporal.toml");

    #[test]
    fn inline_pem_data_the_server_name_and_grpc_meta_are_used() {
        let config = load(&[FILE, ("TEMPORAL_PROFILE", "inline")], None).unwrap();
        let temporal = &config.temporal;
        let tls = temporal.tls.as_ref().unwrap();
        assert_eq!(
            tls.client_cert_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\ncert\n")
        );
        assert_eq!(
            tls.client_key_pem.as_ref().map(|k| k.expose()),
            Some("-----BEGIN PRIVATE KEY-----\nKEYDATA-SENTINEL\n")
        );
        assert_eq!(
            tls.server_ca_cert_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nca\n")
        );
        assert_eq!(tls.server_name.as_deref(), Some("frontend.internal"));
        // Names as the CLI sends them: lowercased, underscores as hyphens.
        let meta: Vec<(&str, &str)> = temporal
            .grpc_meta
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose()))
            .collect();
        assert_eq!(
            meta,
            [
                ("authorization", "Bearer META-SENTINEL"),
                ("x-tenant-id", "osp")
            ]
        );
        let shown = config.to_string();
        for want in [
            "temporal.tls.server_name=frontend.internal",
            "temporal.tls.client_cert=set",
            "temporal.tls.server_ca=custom",
            "temporal.grpc_meta=authorization,x-tenant-id",
        ] {
            assert!(
                shown.split(' ').any(|field| field == want),
                "{want} in {shown}"
            );
        }
        // A path from the environment is a higher layer than the profile's inline data.
        let config = load(
            &[
                FILE,
                ("TEMPORAL_PROFILE", "inline"),
                ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/certs/client.pem"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            config.temporal.tls.unwrap().client_cert_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nx\n")
        );
    }

    #[test]
    fn what_osp_cannot_honour_or_check_is_a_problem() {
        let error = load(&[FILE, ("TEMPORAL_PROFILE", "unverified")], None).unwrap_err();
        assert!(
            error.contains("tls.disable_host_verification in profile `unverified` in /etc/temporal.toml: is not supported by OSP"),
            "{error}"
        );
        let error = load(&[FILE, ("TEMPORAL_PROFILE", "not_pem")], None).unwrap_err();
        assert!(
            error.contains("tls.server_ca_cert_data in profile `not_pem` in /etc/temporal.toml: the value is not a PEM file (no -----BEGIN line)"),
            "{error}"
        );
    }

    #[test]
    fn errors_in_the_file_never_quote_its_secrets() {
        // `load_with` checks that no SENTINEL shows; each message says what and where.
        for (text, expected) in [
            (
                "[profile.default]\naddress = \"a:1\"\napi_key = [\"KEY-SENTINEL\"]\n",
                "TEMPORAL_CONFIG_FILE: `/etc/temporal.toml` is not a Temporal client configuration: a key has a value of the wrong type",
            ),
            (
                "[profile.default]\napi_key = \"KEY-SENTINEL\n",
                "TEMPORAL_CONFIG_FILE: `/etc/temporal.toml` is not valid TOML at line 2, column",
            ),
            (
                "[profile.default.tls]\nclient_key_path = \"/k\"\nclient_key_data = \"KEYDATA-SENTINEL\"\n",
                "TEMPORAL_CONFIG_FILE: `/etc/temporal.toml`: Cannot specify both client_key_path and client_key_data",
            ),
        ] {
            let error = load_with(text, &[FILE, ("TEMPORAL_ADDRESS", "t:1")], None).unwrap_err();
            assert!(error.contains(expected), "{expected} in\n{error}");
        }
    }
}
