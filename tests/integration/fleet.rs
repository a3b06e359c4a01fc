//! A small fleet with one site per kind of row a person must tell apart (in sync, drifted,
//! unreachable, unreadable file with a hostile name), watched by a running `certdrift serve`:
//! what the status page, the dashboard and Prometheus tests look at.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{ChildGuard, LocalSite, free_port, http_get, spawn_serve, wait_for};

/// A site name that would run a script if the page put it into markup unescaped.
pub const HOSTILE_NAME: &str = "<script>document.title='pwned'</script>";

/// The sites, their files and the config that lists them.
pub struct Fleet {
    pub synced: LocalSite,
    pub drifted: LocalSite,
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Fleet {
    /// Four sites: `synced` (in_sync), `drifted` (renewed on disk, not reloaded:
    /// reload_needed; its `key` file is missing: a key_unreadable finding), `down` (nothing
    /// listens: probe_failed) and [`HOSTILE_NAME`] (its file does not exist: disk_error).
    /// Alerts fire at once (no reload grace, one failure), so `certdrift_alerts_firing` has
    /// series to show.
    pub async fn start() -> Self {
        let synced = LocalSite::start("synced.certdrift.test").await;
        let mut drifted = LocalSite::start("drifted.certdrift.test").await;
        drifted.renew();
        let dir = tempfile::tempdir().expect("a temp dir");
        let dead_port = free_port();
        let config = dir.path().join("certdrift.toml");
        let missing = dir.path().join("missing").join("fullchain.pem");
        let text = format!(
            "interval = \"2s\"\ntimeout = \"2s\"\n\n{}{}\
             [[site]]\nname = \"down\"\nhost = \"127.0.0.1\"\nport = {dead_port}\n\
             sni = \"down.certdrift.test\"\ncert = \"{}\"\n\n\
             [[site]]\nname = \"{HOSTILE_NAME}\"\nhost = \"127.0.0.1\"\nport = {}\n\
             sni = \"synced.certdrift.test\"\ncert = \"{}\"\n\n\
             [alerts]\nreload_grace = \"0s\"\nfailure_count = 1\n",
            synced.site_table("synced"),
            drifted.site_table("drifted").replacen(
                "\n\n",
                &format!(
                    "\nkey = \"{}\"\n\n",
                    dir.path().join("missing.key").display()
                ),
                1
            ),
            synced.fullchain().display(),
            synced.address().port(),
            missing.display(),
        );
        std::fs::write(&config, text).expect("the config is written");
        Self {
            synced,
            drifted,
            dir,
            config,
        }
    }

    /// Every site with the verdict it must get.
    pub fn expected(&self) -> [(&'static str, &'static str); 4] {
        [
            ("synced", "in_sync"),
            ("drifted", "reload_needed"),
            ("down", "probe_failed"),
            (HOSTILE_NAME, "disk_error"),
        ]
    }

    /// Starts `serve` on this fleet; see [`spawn_serve`].
    pub async fn serve(&self, extra: &[&str]) -> (ChildGuard, String) {
        spawn_serve(
            &self.config,
            &self.dir.path().join("serve.log"),
            "--listen",
            extra,
            &[],
        )
        .await
    }
}

/// Polls `/api/v1/status` until every site in `expected` has its verdict, and returns the
/// document.
pub async fn wait_for_verdicts(base: &str, expected: &[(&str, &str)]) -> serde_json::Value {
    let url = format!("{base}/api/v1/status");
    wait_for(
        "every site's verdict on /api/v1/status",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let (_, body) = http_get(&url).await?;
                let document: serde_json::Value =
                    serde_json::from_str(&body).map_err(|err| format!("{err}: {body}"))?;
                let seen: Vec<(String, String)> = document["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|row| {
                        (
                            row["site"].as_str().unwrap_or_default().to_owned(),
                            row["verdict"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                let all = expected
                    .iter()
                    .all(|(site, verdict)| seen.iter().any(|(s, v)| s == site && v == verdict));
                if all {
                    Ok(document)
                } else {
                    Err(format!("{seen:?}"))
                }
            }
        },
    )
    .await
}
