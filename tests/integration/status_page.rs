//! The status page at `/`, as a browser renders it: headless Chromium (Debian's `chromium`)
//! loads the page from a running `serve`, the test reads every site's verdict from the
//! rendered DOM, compares it with `/api/v1/status`, and writes screenshots (desktop and
//! phone widths) to `tests/artifacts/`. Also `serve`'s exporter-style flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fleet::{Fleet, HOSTILE_NAME, wait_for_verdicts};
use crate::util::spawn_serve;
use crate::util::{certdrift, http_get, require, run_command, wait_for};

#[tokio::test]
async fn chromium_shows_every_site_with_its_verdict_as_the_api_reports_it() {
    let fleet = Fleet::start().await;
    let (_serve, base) = fleet.serve(&[]).await;
    let api = wait_for_verdicts(&base, &fleet.expected()).await;

    // The served HTML itself: a phone viewport, nothing fetched from elsewhere, and the
    // hostile name as text.
    let (status, html) = http_get(&format!("{base}/")).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#),
        "{html}"
    );
    for external in ["src=", "http://", "https://", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page refers to `{external}`:\n{html}"
        );
    }
    assert!(!html.contains(HOSTILE_NAME), "unescaped site name:\n{html}");
    assert!(
        html.contains("&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;&#x2f;script&gt;"),
        "{html}"
    );

    // What Chromium makes of it, scripts enabled.
    let dom = chromium_dom(&format!("{base}/")).await;
    assert!(
        dom.contains("<title>certdrift status</title>"),
        "the hostile name ran as a script, or the page did not load:\n{dom}"
    );
    let rows = dom_rows(&dom);
    let results = api["results"].as_array().unwrap();
    assert_eq!(rows.len(), results.len(), "one row per result:\n{dom}");
    for (site, verdict) in fleet.expected() {
        let row = rows
            .iter()
            .find(|row| row.site == site)
            .unwrap_or_else(|| panic!("no row for site `{site}` in the rendered page:\n{dom}"));
        assert_eq!(row.verdict, verdict, "site `{site}`");
        assert_eq!(row.badge, verdict, "site `{site}`'s visible verdict");
    }
    // Row for row, the page says what the API says: the verdict, both serials, the day each
    // certificate expires, and the error.
    let mut serials_compared = 0;
    for result in results {
        let site = result["site"].as_str().unwrap();
        let address = result["address"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|row| row.site == site && row.address == address)
            .unwrap_or_else(|| panic!("no row for {site} {address}"));
        assert_eq!(row.verdict, result["verdict"].as_str().unwrap());
        for side in ["served", "disk"] {
            let Some(serial) = result[side]["serial"].as_str() else {
                continue;
            };
            assert!(row.html.contains(serial), "{side} serial of {site}");
            // `2027-03-04T02:44:41Z` is shown as `2027-03-04 02:44:41 UTC`.
            let not_after = result[side]["not_after"].as_str().unwrap();
            let shown = not_after.replacen('T', " ", 1).replace('Z', " UTC");
            assert!(
                row.html.contains(&format!("expires {shown}")),
                "{side} expiry of {site}: `{shown}` in\n{}",
                row.html
            );
            serials_compared += 1;
        }
        if let Some(message) = result["error"]["message"].as_str() {
            let shown = unescape(&row.html);
            assert!(shown.contains(message), "{site}: `{message}` in\n{shown}");
        }
    }

    // synced and drifted have both sides, the unreachable site its file, and the site
    // with the unreadable file what it serves.
    assert_eq!(serials_compared, 6);

    // The drifted row says what to do and shows both serials.
    let drifted = rows.iter().find(|row| row.site == "drifted").unwrap();
    assert!(drifted.html.contains(&fleet.drifted.serial(1)));
    assert!(drifted.html.contains(&fleet.drifted.serial(2)));
    assert!(drifted.html.contains("What to do:"), "{}", drifted.html);
    assert!(
        drifted
            .html
            .contains(r#"<strong class="finding-kind">key_unreadable</strong>"#),
        "{}",
        drifted.html
    );
    assert!(
        drifted.html.contains("reload the server"),
        "{}",
        drifted.html
    );
    let synced = rows.iter().find(|row| row.site == "synced").unwrap();
    assert!(synced.html.contains(&fleet.synced.serial(1)));
    assert!(!synced.html.contains("What to do:"), "{}", synced.html);
    let down = rows.iter().find(|row| row.site == "down").unwrap();
    assert!(down.html.contains("error: "), "{}", down.html);

    // Screenshots at a desktop and a phone width, for people (and the README).
    for (name, size) in [
        ("status-page.png", "1280,900"),
        ("status-page-phone.png", "390,1400"),
    ] {
        let file = artifacts().join(name);
        chromium_screenshot(&format!("{base}/"), &file, size).await;
        let png = std::fs::read(&file).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{} is not a real screenshot ({} bytes)",
            file.display(),
            png.len()
        );
    }
}

#[tokio::test]
async fn serve_takes_exporter_style_flags() {
    let fleet = Fleet::start().await;
    let log = fleet.dir.path().join("flags.log");
    let (_serve, base) = spawn_serve(
        &fleet.config,
        &log,
        "--web.listen-address",
        &[
            "--web.telemetry-path",
            "/probe-metrics",
            "--log.format",
            "json",
            "--log.level",
            "debug",
        ],
        &[],
    )
    .await;
    wait_for(
        "metrics at the custom telemetry path",
        Duration::from_secs(30),
        || {
            let url = format!("{base}/probe-metrics");
            async move {
                match http_get(&url).await {
                    Ok((200, body)) if body.contains("certdrift_verdict{site=\"drifted\"") => {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let (status, _) = http_get(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(status, 404, "/metrics moved to /probe-metrics");

    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    assert!(
        events.iter().any(|event| event["level"] == "DEBUG"),
        "--log.level debug lets debug events through:\n{text}"
    );
    assert!(
        events
            .iter()
            .any(|event| event["fields"]["message"] == "certdrift serving"),
        "{text}"
    );
}

#[tokio::test]
async fn a_telemetry_path_that_is_not_a_path_or_is_taken_is_refused() {
    let fleet = Fleet::start().await;
    let config = fleet.config.to_str().unwrap();
    for (path, says) in [
        ("metrics", "is not a URL path"),
        ("/healthz", "is already one of serve's endpoints"),
        ("/", "is already one of serve's endpoints"),
    ] {
        let run = certdrift(&["serve", "--config", config, "--telemetry-path", path]).await;
        assert_eq!(run.status, 2, "{path}: {run:?}");
        assert!(run.stderr.contains(says), "{path}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("`{path}`")), "{}", run.stderr);
    }
}

/// One `<tr class="row ...">` of the rendered table.
#[derive(Debug)]
struct DomRow {
    site: String,
    address: String,
    verdict: String,
    /// The text of the coloured verdict badge.
    badge: String,
    html: String,
}

/// Every status row in Chromium's serialized DOM.
fn dom_rows(dom: &str) -> Vec<DomRow> {
    dom.split("<tr class=\"row ")
        .skip(1)
        .map(|chunk| {
            let html = chunk.split("</tr>").next().unwrap_or_default().to_owned();
            let badge = html
                .split("class=\"badge verdict ")
                .nth(1)
                .and_then(|rest| rest.split_once('>'))
                .and_then(|(_, rest)| rest.split_once('<'))
                .map(|(text, _)| text.to_owned())
                .unwrap_or_default();
            DomRow {
                site: unescape(&attribute(&html, "data-site")),
                address: unescape(&attribute(&html, "data-address")),
                verdict: attribute(&html, "data-verdict"),
                badge,
                html,
            }
        })
        .collect()
}

fn attribute(html: &str, name: &str) -> String {
    html.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|rest| rest.split_once('"'))
        .map(|(value, _)| value.to_owned())
        .unwrap_or_default()
}

/// Undoes the entity escapes a serializer uses.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&dir).expect("tests/artifacts can be created");
    dir
}

/// Headless Chromium's flags for a root user in a sandbox-less test, with a profile of its
/// own in `profile`.
fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// The DOM of `url` after Chromium loaded it and ran its scripts.
async fn chromium_dom(url: &str) -> String {
    let chromium = require("chromium");
    let profile = tempfile::tempdir().unwrap();
    let mut args = chromium_args(profile.path());
    args.extend(["--dump-dom".to_owned(), url.to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_command(chromium.to_str().unwrap(), &args).await;
    assert_eq!(run.status, 0, "chromium --dump-dom failed: {}", run.stderr);
    run.stdout
}

/// Writes a PNG of `url` at `size` ("W,H") to `file`.
pub async fn chromium_screenshot(url: &str, file: &Path, size: &str) {
    let chromium = require("chromium");
    let profile = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(file);
    let mut args = chromium_args(profile.path());
    args.extend([
        format!("--screenshot={}", file.display()),
        format!("--window-size={size}"),
        url.to_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_command(chromium.to_str().unwrap(), &args).await;
    assert_eq!(
        run.status, 0,
        "chromium --screenshot failed: {}",
        run.stderr
    );
    assert!(
        file.is_file(),
        "chromium wrote no {}: {}",
        file.display(),
        run.stderr
    );
}
