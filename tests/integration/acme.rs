//! A real ACME renewal: certbot against pebble, served by nginx, renewed without a reload
//! hook, as happens when a deploy hook is missing.

use std::path::Path;

use crate::servers::{Nginx, Pebble, check_until};
use crate::util::{certdrift, check_json_args, strs};

const NAME: &str = "acme.certdrift.test";

#[tokio::test]
async fn certbot_renewal_without_a_reload_hook_needs_a_reload() {
    let pebble = Pebble::start().await;
    let state = tempfile::tempdir().unwrap();
    let issue = pebble.certonly(state.path(), NAME).await;
    assert_eq!(issue.status, 0, "certbot certonly: {issue:?}");

    let live = state.path().join("le/live").join(NAME);
    let ca_file = state.path().join("pebble-root.pem");
    std::fs::write(&ca_file, pebble.issuing_root_pem().await).unwrap();
    let nginx = Nginx::start(
        &["127.0.0.1"],
        NAME,
        &live.join("fullchain.pem"),
        &live.join("privkey.pem"),
    )
    .await;
    let address = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let args = check_json_args(address, NAME, &live.join("fullchain.pem"), &ca_file);

    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 0, "{run:?}");
    let before = run.first_result();
    assert_eq!(before["verdict"], "in_sync");
    assert_eq!(
        before["served"]["verification"]["result"], "trusted",
        "{before}"
    );
    assert_eq!(before["served"]["dns_names"][0], NAME);

    let renew = pebble
        .certbot(
            state.path(),
            &[
                "renew",
                "--force-renewal",
                "--no-random-sleep-on-renew",
                "--cert-name",
                NAME,
            ],
        )
        .await;
    assert_eq!(renew.status, 0, "certbot renew: {renew:?}");
    let link = std::fs::read_link(live.join("cert.pem")).unwrap();
    assert_eq!(
        link,
        Path::new("../../archive").join(NAME).join("cert2.pem")
    );

    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 1, "{run:?}");
    let after = run.first_result();
    assert_eq!(after["verdict"], "reload_needed");
    assert_eq!(after["served"]["serial"], before["served"]["serial"]);
    assert_ne!(after["disk"]["serial"], before["disk"]["serial"]);

    nginx.reload().await;
    let run = check_until(&args, "in_sync").await;
    assert_eq!(run.status, 0);
    assert_eq!(
        run.first_result()["served"]["serial"],
        after["disk"]["serial"]
    );
}
