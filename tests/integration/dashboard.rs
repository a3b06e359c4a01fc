//! `dashboards/certdrift.json` and `deploy/prometheus/scrape.yml` against the real thing:
//! the dashboard is Grafana JSON with the expected variables and mappings, promtool parses
//! every query in it, every metric it names is in a real scrape of `serve`, and a real
//! Prometheus (Debian's `prometheus`), configured from the scrape example, scrapes a running
//! certdrift on loopback and answers the dashboard's queries with the drifted site's verdict.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use certdrift::verdict::Verdict;

use crate::fleet::{Fleet, wait_for_verdicts};
use crate::serve::scrape_until;
use crate::util::{ChildGuard, free_port, http_get, require, run_command, wait_for};

#[test]
fn the_dashboard_is_grafana_json_with_variables_and_verdict_colours() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    assert_eq!(dashboard["uid"], "certdrift");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` variable"))
    };
    assert_eq!(variable("DS_PROMETHEUS")["type"], "datasource");
    assert_eq!(variable("DS_PROMETHEUS")["query"], "prometheus");
    for name in ["site", "address"] {
        assert_eq!(variable(name)["type"], "query");
        assert_eq!(variable(name)["includeAll"], true);
        assert_eq!(variable(name)["multi"], true);
    }

    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel `{}` uses the datasource variable",
            panel["title"]
        );
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}");
        }
    }

    // The main table maps every verdict to a text and a colour.
    let table = panels
        .iter()
        .find(|p| p["title"] == "Every site and address")
        .expect("the main table");
    let verdict_column = table["fieldConfig"]["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["matcher"]["options"] == "Verdict")
        .expect("an override for the Verdict column");
    let properties = verdict_column["properties"].as_array().unwrap();
    let mappings = properties
        .iter()
        .find(|p| p["id"] == "mappings")
        .expect("value mappings")["value"][0]["options"]
        .clone();
    for verdict in Verdict::ALL {
        let mapping = &mappings[verdict.as_str()];
        assert!(
            mapping["text"].is_string() && mapping["color"].is_string(),
            "no mapping for {verdict}: {mappings}"
        );
    }
    assert_eq!(mappings["in_sync"]["color"], "green");
    assert!(
        properties
            .iter()
            .any(|p| p["id"] == "custom.cellOptions" && p["value"]["type"] == "color-background")
    );
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for title in [
        "Alerts firing",
        "Findings",
        "Days left: served vs disk",
        "Probe duration",
        "Probe success",
        "Verdict over time",
    ] {
        assert!(titles.contains(&title), "no `{title}` panel in {titles:?}");
    }
}

#[tokio::test]
async fn the_dashboard_grid_has_no_overlaps_and_its_layout_renders() {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    // Grafana's grid is 24 columns wide; every cell belongs to one panel at most.
    let mut owner: std::collections::HashMap<(u64, u64), String> = Default::default();
    for panel in panels {
        let title = panel["title"].as_str().unwrap().to_owned();
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap());
        assert!(x + w <= 24 && w > 0 && h > 0, "`{title}` at {grid}");
        for cell in (x..x + w).flat_map(|col| (y..y + h).map(move |row| (col, row))) {
            if let Some(other) = owner.insert(cell, title.clone()) {
                panic!("`{title}` overlaps `{other}` at {cell:?}");
            }
        }
    }

    // A schematic of the grid (Grafana itself is not packaged for Debian): one box per
    // panel at its grid position, with its type, and the columns of the main table.
    let mut boxes = String::new();
    for panel in panels {
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap());
        let columns = panel["transformations"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["id"] == "organize"))
            .and_then(|step| step["options"]["renameByName"].as_object())
            .map(|names| {
                let mut order: Vec<(u64, &str)> = names
                    .iter()
                    .map(|(key, name)| {
                        let index = step_index(panel, key);
                        (index, name.as_str().unwrap())
                    })
                    .collect();
                order.sort();
                order
                    .iter()
                    .map(|(_, name)| format!("<span>{name}</span>"))
                    .collect::<String>()
            })
            .unwrap_or_default();
        boxes.push_str(&format!(
            "<div class=\"panel {}\" style=\"left:{}px;top:{}px;width:{}px;height:{}px\">\
             <b>{}</b><i>{}</i><div class=\"cols\">{columns}</div></div>\n",
            panel["type"].as_str().unwrap(),
            x * 50,
            y * 30 + 40,
            w * 50 - 6,
            h * 30 - 6,
            panel["title"].as_str().unwrap(),
            panel["type"].as_str().unwrap(),
        ));
    }
    let height = panels
        .iter()
        .map(|p| p["gridPos"]["y"].as_u64().unwrap() + p["gridPos"]["h"].as_u64().unwrap())
        .max()
        .unwrap()
        * 30
        + 50;
    let html = format!(
        "<!doctype html><meta charset=utf-8><style>\
         body{{margin:0;font:13px system-ui,sans-serif;background:#111217;color:#ccccdc}}\
         header{{position:absolute;left:0;top:0;height:34px;width:1200px;padding:8px;box-sizing:border-box;background:#181b1f}}\
         .panel{{position:absolute;box-sizing:border-box;border:1px solid #34373d;background:#181b1f;padding:6px;overflow:hidden}}\
         .panel b{{display:block}} .panel i{{color:#8e8e8e;font-size:11px}}\
         .stat{{border-top:3px solid #73bf69}} .table{{border-top:3px solid #5794f2}}\
         .timeseries{{border-top:3px solid #ff9830}} .state-timeline{{border-top:3px solid #b877d9}}\
         .cols span{{display:inline-block;margin:4px 4px 0 0;padding:1px 5px;background:#22252b;border-radius:3px;font-size:11px}}\
         </style><header>certdrift &middot; Data source: DS_PROMETHEUS &middot; Site: All &middot; Address: All</header>\n{boxes}"
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("layout.html");
    std::fs::write(&page, html).unwrap();
    let file = crate::status_page::artifacts().join("dashboard-layout.png");
    crate::status_page::chromium_screenshot(
        &format!("file://{}", page.display()),
        &file,
        &format!("1200,{height}"),
    )
    .await;
    assert!(std::fs::read(&file).unwrap().starts_with(b"\x89PNG"));
}

/// Where the organize step puts `key` (the column order of the main table).
fn step_index(panel: &serde_json::Value, key: &str) -> u64 {
    panel["transformations"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == "organize"))
        .and_then(|step| step["options"]["indexByName"][key].as_u64())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn promtool_parses_every_query_in_the_dashboard() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("dashboard.rules.yml");
    std::fs::write(&rules, rules_file(&queries)).unwrap();
    let promtool = require("promtool");
    let run = run_command(
        promtool.to_str().unwrap(),
        &["check", "rules", rules.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{}",
        run.stdout
    );

    // The same check rejects a query that does not parse.
    let mut broken = queries.clone();
    broken.push("sum by (site (certdrift_verdict)".to_owned());
    std::fs::write(&rules, rules_file(&broken)).unwrap();
    let run = run_command(
        promtool.to_str().unwrap(),
        &["check", "rules", rules.to_str().unwrap()],
    )
    .await;
    assert_ne!(run.status, 0, "promtool accepted a broken query");
}

#[tokio::test]
async fn prometheus_scrapes_certdrift_and_answers_the_dashboard_queries() {
    let fleet = Fleet::start().await;
    let (_serve, base) = fleet.serve(&[]).await;
    wait_for_verdicts(&base, &fleet.expected()).await;

    // Every metric the dashboard names is in a real scrape. Alerts are evaluated just after
    // the verdict is stored, so wait for the drifted site's alert too.
    let firing = format!(
        "certdrift_alerts_firing{{alert=\"ReloadNeeded\",site=\"drifted\",address=\"{}\",severity=\"warning\"}} 1",
        fleet.drifted.address()
    );
    let scrape = scrape_until(&base, &firing).await;
    assert_metrics_exported(&scrape);

    // The scrape example as shipped is a valid Prometheus config.
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo().join("deploy/prometheus/scrape.yml")).unwrap();
    let shipped = dir.path().join("scrape.yml");
    std::fs::write(&shipped, &example).unwrap();
    let promtool = require("promtool");
    let run = run_command(
        promtool.to_str().unwrap(),
        &["check", "config", shipped.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);

    // The same config, pointed at this certdrift and made fast.
    let target = base.trim_start_matches("http://");
    let mut config = example.clone();
    for (from, to) in [
        ("127.0.0.1:10159", target),
        ("scrape_interval: 60s", "scrape_interval: 1s"),
        ("evaluation_interval: 60s", "evaluation_interval: 1s"),
        ("scrape_timeout: 10s", "scrape_timeout: 1s"),
    ] {
        assert!(config.contains(from), "scrape.yml no longer has `{from}`");
        config = config.replace(from, to);
    }
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let port = free_port();
    let prometheus_url = format!("http://127.0.0.1:{port}");
    let _prometheus = ChildGuard::spawn(
        &require("prometheus"),
        &[
            &format!("--config.file={}", config_file.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        &[],
        &dir.path().join("prometheus.log"),
    );

    // Prometheus' own view of the drifted site.
    let drifted = fleet.drifted.address().to_string();
    let series = wait_for(
        "certdrift_verdict in Prometheus",
        Duration::from_secs(60),
        || {
            let url = prometheus_url.clone();
            async move {
                let result =
                    instant_query(&url, r#"certdrift_verdict{site="drifted"} == 1"#).await?;
                if result.is_empty() {
                    Err("no series yet".to_owned())
                } else {
                    Ok(result)
                }
            }
        },
    )
    .await;
    assert_eq!(series.len(), 1, "{series:?}");
    let metric = &series[0]["metric"];
    assert_eq!(metric["verdict"], "reload_needed", "{series:?}");
    assert_eq!(metric["address"], drifted.as_str());
    assert_eq!(metric["job"], "certdrift");
    assert_eq!(series[0]["value"][1], "1");
    let others = instant_query(
        &prometheus_url,
        r#"certdrift_verdict{site="drifted",verdict!="reload_needed"}"#,
    )
    .await
    .unwrap();
    assert_eq!(others.len(), Verdict::ALL.len() - 1);
    assert!(others.iter().all(|s| s["value"][1] == "0"), "{others:?}");

    // Every dashboard query runs, and the headline numbers are right.
    for query in dashboard_queries() {
        instant_query(&prometheus_url, &query)
            .await
            .unwrap_or_else(|err| panic!("`{query}`: {err}"));
    }
    let panels = dashboard()["panels"].as_array().unwrap().clone();
    let stat = |title: &str| {
        let panel = panels.iter().find(|p| p["title"] == title).unwrap();
        substitute(panel["targets"][0]["expr"].as_str().unwrap())
    };
    for (title, want) in [
        ("Addresses in sync", "1"),
        ("Addresses drifting", "1"),
        ("Addresses not checked", "2"),
    ] {
        let result = instant_query(&prometheus_url, &stat(title)).await.unwrap();
        assert_eq!(result[0]["value"][1], want, "`{title}`: {result:?}");
    }
}

/// Fails unless every `certdrift_*` metric the dashboard names appears in `scrape`.
fn assert_metrics_exported(scrape: &str) {
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap_or_default())
        .collect();
    let used = metric_names(&dashboard_queries().join("\n"));
    assert!(used.len() >= 8, "{used:?}");
    for name in &used {
        assert!(
            exported.contains(name.as_str()),
            "the dashboard uses `{name}`, which a real scrape does not have:\n{scrape}"
        );
    }
}

/// Every PromQL expression in the dashboard, with the variables replaced by match-all
/// values: the panels' queries, and the series selectors of the variables' queries.
fn dashboard_queries() -> Vec<String> {
    let dashboard = dashboard();
    let mut queries = Vec::new();
    collect_exprs(&dashboard["panels"], &mut queries);
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(definition) = variable["definition"].as_str() {
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|rest| rest.rsplit_once(','))
                .map(|(selector, _)| selector.to_owned())
                .unwrap_or_else(|| panic!("unexpected variable query `{definition}`"));
            queries.push(inner);
        }
    }
    queries.iter().map(|query| substitute(query)).collect()
}

fn collect_exprs(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(expr) if key == "expr" => into.push(expr.to_owned()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_exprs(item, into);
            }
        }
        _ => {}
    }
}

/// The query as Grafana sends it with "All" selected for both variables.
fn substitute(query: &str) -> String {
    let query = query.replace("$site", ".*").replace("$address", ".*");
    assert!(!query.contains('$'), "an unknown variable in `{query}`");
    query
}

/// Every `certdrift_...` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("certdrift_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// A rules file with one recording rule per query, for `promtool check rules`.
fn rules_file(queries: &[String]) -> String {
    let mut text = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, query) in queries.iter().enumerate() {
        text.push_str(&format!(
            "      - record: certdrift:dashboard_query_{index}\n        expr: |-\n          {query}\n"
        ));
    }
    text
}

/// Runs `query` at Prometheus' `/api/v1/query`; the result vector, or why not.
async fn instant_query(base: &str, query: &str) -> Result<Vec<serde_json::Value>, String> {
    let url = format!("{base}/api/v1/query?query={}", percent_encode(query));
    let (status, body) = http_get(&url).await?;
    let document: serde_json::Value =
        serde_json::from_str(&body).map_err(|err| format!("{err}: {body}"))?;
    if status != 200 || document["status"] != "success" {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(document["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn dashboard() -> serde_json::Value {
    let path = repo().join("dashboards/certdrift.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
