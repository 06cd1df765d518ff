//! Runs the configured deployer for `deployWorkerWorkflow`: an argv template (never a
//! shell), with placeholders filled from validated values, output captured and bounded.

use std::path::PathBuf;
use std::process::Stdio;

use osp_core::validate::ServiceSchema;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Keep this much of each stream; the registry's log stays readable and bounded.
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "{service_schema}",
    "{manifest_path}",
    "{task_queue}",
    "{registry_id}",
];

/// Where manifests go and what runs them.
#[derive(Debug, Clone)]
pub struct Deployer {
    /// `manifests/` in the seed.
    pub manifest_dir: PathBuf,
    /// e.g. `["helm", "upgrade", "--install", "osp-worker-{service_schema}", ...]`; `None`
    /// when no deployer is configured.
    pub command: Option<Vec<String>>,
}

/// The values a template is filled with.
#[derive(Debug)]
pub struct DeployerArgs<'a> {
    pub service_schema: &'a ServiceSchema,
    pub manifest_path: &'a str,
    pub task_queue: &'a str,
    pub registry_id: uuid::Uuid,
}

/// Why the deployer did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeployerError {
    /// Nothing to run.
    #[error("no deployer command is configured (OSP_DEPLOYER_COMMAND)")]
    NotConfigured,
    /// The template uses a placeholder that does not exist.
    #[error("deployer command argument `{argument}` has an unknown placeholder; known: {}", PLACEHOLDERS.join(", "))]
    UnknownPlaceholder { argument: String },
    /// A placeholder at the start of an argument would make it an option of the program.
    #[error(
        "deployer command argument `{argument}` would start with `-`: the value of {placeholder} starts with `-`, so the program would read it as an option"
    )]
    OptionLikeValue {
        argument: String,
        placeholder: &'static str,
    },
    /// The program could not be started (not installed, not executable).
    #[error("deployer `{program}` could not start: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("deployer `{program}` exited with {status}; output:\n{output}")]
    Failed {
        program: String,
        status: String,
        output: String,
    },
}

/// Fills a template; every `{...}` must be a known placeholder.
pub fn render(template: &[String], args: &DeployerArgs<'_>) -> Result<Vec<String>, DeployerError> {
    template
        .iter()
        .map(|argument| {
            let registry_id = args.registry_id.to_string();
            let values = [
                ("{service_schema}", args.service_schema.as_str()),
                ("{manifest_path}", args.manifest_path),
                ("{task_queue}", args.task_queue),
                ("{registry_id}", registry_id.as_str()),
            ];
            // argv has no shell, but the program still parses options: a value that opens
            // an argument must not turn it into one (`--kubeconfig=...` as a task queue).
            if let Some((placeholder, _)) = values.iter().find(|(placeholder, value)| {
                argument.starts_with(placeholder) && value.starts_with('-')
            }) {
                return Err(DeployerError::OptionLikeValue {
                    argument: argument.clone(),
                    placeholder,
                });
            }
            let filled = argument
                .replace("{service_schema}", args.service_schema.as_str())
                .replace("{manifest_path}", args.manifest_path)
                .replace("{task_queue}", args.task_queue)
                .replace("{registry_id}", &registry_id);
            let leftover = PLACEHOLDERS
                .iter()
                .fold(argument.clone(), |text, placeholder| {
                    text.replace(placeholder, "")
                });
            if leftover.contains('{') && leftover.contains('}') {
                return Err(DeployerError::UnknownPlaceholder {
                    argument: argument.clone(),
                });
            }
            Ok(filled)
        })
        .collect()
}

impl Deployer {
    /// Runs the deployer once and returns its bounded output.
    pub async fn run(&self, args: &DeployerArgs<'_>) -> Result<String, DeployerError> {
        let template = self.command.as_ref().ok_or(DeployerError::NotConfigured)?;
        let argv = render(template, args)?;
        let (program, rest) = argv.split_first().ok_or(DeployerError::NotConfigured)?;
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A cancelled or timed-out activity must not leave the deployer running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DeployerError::Spawn {
                program: program.clone(),
                source,
            })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (stdout, stderr, status) =
            tokio::join!(read_bounded(stdout), read_bounded(stderr), child.wait());
        let status = status.map_err(|source| DeployerError::Spawn {
            program: program.clone(),
            source,
        })?;
        let mut output = stdout;
        if !stderr.is_empty() {
            if !output.is_empty() && !output.ends_with('\n') {
                output.push('\n');
            }
            output.push_str(&stderr);
        }
        if status.success() {
            Ok(output)
        } else {
            Err(DeployerError::Failed {
                program: program.clone(),
                status: status.to_string(),
                output,
            })
        }
    }
}

/// Reads a stream to its end, keeping the last [`OUTPUT_LIMIT`] bytes (the end of a failing
/// command's output is what explains it).
async fn read_bounded(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0usize;
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > OUTPUT_LIMIT {
                    let excess = kept.len() - OUTPUT_LIMIT;
                    kept.drain(..excess);
                    dropped += excess;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        format!("[{dropped} earlier bytes dropped]\n{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(schema: &ServiceSchema) -> DeployerArgs<'_> {
        DeployerArgs {
            service_schema: schema,
            manifest_path: "manifests/billing.json",
            task_queue: "billing-tasks",
            registry_id: uuid::Uuid::nil(),
        }
    }

    fn template(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    #[test]
    fn templates_fill_known_placeholders_only() {
        let schema = ServiceSchema::parse("billing").unwrap();
        assert_eq!(
            render(
                &template(&[
                    "helm",
                    "upgrade",
                    "osp-worker-{service_schema}",
                    "--set",
                    "manifest={manifest_path}"
                ]),
                &args(&schema)
            )
            .unwrap(),
            [
                "helm",
                "upgrade",
                "osp-worker-billing",
                "--set",
                "manifest=manifests/billing.json"
            ]
        );
        let error = render(&template(&["x", "{namespace}"]), &args(&schema)).unwrap_err();
        assert!(error.to_string().contains("`{namespace}`"), "{error}");
    }

    #[test]
    fn point_12_a_placeholder_value_starting_with_a_dash_cannot_become_an_option() {
        let schema = ServiceSchema::parse("billing").unwrap();
        let hostile = DeployerArgs {
            task_queue: "--kubeconfig=/tmp/evil",
            manifest_path: "-rf",
            ..args(&schema)
        };
        for argument in ["{task_queue}", "{manifest_path}", "{task_queue}-suffix"] {
            let error = render(&template(&["helm", argument]), &hostile).unwrap_err();
            assert!(
                matches!(error, DeployerError::OptionLikeValue { .. }),
                "{argument}: {error}"
            );
            assert!(error.to_string().contains("starts with `-`"), "{error}");
        }
        // Inside an argument, after other text, a leading `-` is only text.
        assert_eq!(
            render(
                &template(&["helm", "--set", "queue={task_queue}"]),
                &hostile
            )
            .unwrap(),
            ["helm", "--set", "queue=--kubeconfig=/tmp/evil"]
        );
    }

    #[tokio::test]
    async fn arguments_reach_the_program_unchanged_without_a_shell() {
        let schema = ServiceSchema::parse("billing").unwrap();
        let deployer = Deployer {
            manifest_dir: PathBuf::from("."),
            command: Some(template(&["echo", "$(id) ; rm -rf / {service_schema}"])),
        };
        let output = deployer.run(&args(&schema)).await.unwrap();
        assert_eq!(output, "$(id) ; rm -rf / billing\n");
    }

    #[tokio::test]
    async fn a_failing_deployer_reports_its_status_and_output() {
        let schema = ServiceSchema::parse("billing").unwrap();
        let deployer = Deployer {
            manifest_dir: PathBuf::from("."),
            command: Some(template(&["sh", "-c", "echo boom >&2; exit 3"])),
        };
        let error = deployer.run(&args(&schema)).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("boom"),
            "{text}"
        );

        let missing = Deployer {
            manifest_dir: PathBuf::from("."),
            command: Some(template(&["/nonexistent/deployer"])),
        };
        assert!(matches!(
            missing.run(&args(&schema)).await.unwrap_err(),
            DeployerError::Spawn { .. }
        ));
    }

    #[tokio::test]
    async fn long_output_keeps_its_end() {
        let schema = ServiceSchema::parse("billing").unwrap();
        let deployer = Deployer {
            manifest_dir: PathBuf::from("."),
            command: Some(template(&[
                "sh",
                "-c",
                "head -c 100000 /dev/zero | tr '\\0' a; echo END",
            ])),
        };
        let output = deployer.run(&args(&schema)).await.unwrap();
        assert!(output.len() <= OUTPUT_LIMIT + 64, "{}", output.len());
        assert!(output.starts_with("[") && output.ends_with("END\n"));
    }
}
