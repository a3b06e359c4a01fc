//! Real nginx serving a certbot-style lineage: it keeps what it loaded until reloaded.

use certdrift::demo::ca::{LeafSpec, TestCa};
use certdrift::demo::layout::CertbotLineage;

use crate::serve::{scrape_until, start_serve};
use crate::servers::{Nginx, check_until};
use crate::util::{certdrift, check_json_args, strs};

const NAME: &str = "nginx.certdrift.test";

#[tokio::test]
async fn nginx_serves_the_old_generation_until_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("nginx test CA");
    let lineage = CertbotLineage::new(dir.path().join("letsencrypt"), NAME);
    let first = ca.issue(&LeafSpec::new([NAME]));
    let second = {
        let later = first.summary().not_before + time::Duration::hours(1);
        ca.issue(&LeafSpec::new([NAME]).valid_between(later, later + time::Duration::days(90)))
    };
    lineage.write_generation(1, &first).unwrap();
    lineage.point_live_at(1).unwrap();
    let ca_file = dir.path().join("root.pem");
    std::fs::write(&ca_file, ca.root_pem()).unwrap();

    let nginx = Nginx::start(
        &["127.0.0.1"],
        NAME,
        &lineage.live_path("fullchain"),
        &lineage.live_path("privkey"),
    )
    .await;
    let address = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let args = check_json_args(address, NAME, &lineage.live_path("fullchain"), &ca_file);

    // Generation 1 on disk and served.
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 0, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(result["served"]["serial"], first.summary().serial);
    assert_eq!(result["served"]["verification"]["result"], "trusted");
    assert_eq!(result["served"]["chain_length"], 2);

    // certbot-style renewal: generation 2 written, live/ re-pointed, nginx not reloaded.
    lineage.write_generation(2, &second).unwrap();
    lineage.point_live_at(2).unwrap();
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "reload_needed");
    assert_eq!(result["served"]["serial"], first.summary().serial);
    assert_eq!(result["disk"]["serial"], second.summary().serial);

    // serve exports the same.
    let config = dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1s\"\n[[site]]\nname = \"nginx\"\nhost = \"127.0.0.1\"\nport = {}\nsni = \"{NAME}\"\ncert = \"{}\"\nca_file = \"{}\"\n",
            nginx.port,
            lineage.live_path("fullchain").display(),
            ca_file.display()
        ),
    )
    .unwrap();
    let (_serve, base) = start_serve(&config, &dir.path().join("serve.log")).await;
    let address = format!("127.0.0.1:{}", nginx.port);
    scrape_until(
        &base,
        &format!(
            "certdrift_verdict{{site=\"nginx\",address=\"{address}\",verdict=\"reload_needed\"}} 1"
        ),
    )
    .await;

    // nginx -s reload: in sync again, in check and in serve.
    nginx.reload().await;
    let run = check_until(&args, "in_sync").await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        run.first_result()["served"]["serial"],
        second.summary().serial
    );
    scrape_until(
        &base,
        &format!("certdrift_verdict{{site=\"nginx\",address=\"{address}\",verdict=\"in_sync\"}} 1"),
    )
    .await;

    // live/ pointed back at generation 1 while 2 is served: do not reload.
    lineage.point_live_at(1).unwrap();
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "disk_older");
    assert_eq!(result["served"]["serial"], second.summary().serial);
    assert_eq!(result["disk"]["serial"], first.summary().serial);
    assert!(nginx.pid() > 0);
}
